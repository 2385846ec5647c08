"""Run a targeted backfill (issue 23): per order, the pipeline's DELETE + INSERT, then the rule again.

For each planned order (:mod:`order_tracking.fixes.backfill_plan`):

1. ONE warehouse transaction that first locks the mart tables it writes, in a fixed order
   (``mart_uni_tracking_info`` for Test 1, then ``mart_uni_tracking_spath``: on Redshift this is how
   serializable isolation error 1023 against the ETL is avoided), deletes the order's rows and
   inserts the source's, and rolls back unless every row went in. Error 1023 reruns the whole
   transaction, bounded, with repair-reactivated's policy.
2. After the commit, the check's own rule (``checks/rules.py``, the SQL the monitor runs) for that
   order, scoped by its id (``rules.OrderIds``) so that the order is looked at wherever its
   ``update_time`` now is (the window it was flagged in, or later if the copy moved it).
3. Passing: the open exception is resolved (``resolved_by`` = who, the notes say what was copied),
   under the exceptions table's lock like every writer. Still failing: it stays open, and the
   rule's own note says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from order_tracking import locked_write
from order_tracking.checks import exceptions_store, rules
from order_tracking.errors import UserError
from order_tracking.fixes.backfill_plan import OrderPlan, check_statement_sizes, lock_tables
from order_tracking.locked_write import SERIALIZATION_RETRY, RetryPolicy
from order_tracking.schema import TS, Tables
from order_tracking.settings import UTI_UTS_TIME_MISMATCH

log = logging.getLogger(__name__)

CLOSED, STILL_FAILING, BACKFILLED = "closed", "still_failing", "backfilled"


@dataclass(frozen=True)
class Outcome:
    """What happened to one order after its transaction committed."""

    order_id: int
    status: str  # CLOSED | STILL_FAILING | BACKFILLED (passes, but no open exception to close)
    message: str
    attempts: int = 1


# --- the statements ---------------------------------------------------------------------------


def transaction_start(dialect: Dialect, tables: Tables, plan: OrderPlan) -> list[str]:
    """How the transaction opens: every table it writes locked first (SQLite: one write lock)."""
    return locked_write.transaction_start(dialect, lock_tables(plan, tables))


def render(plan: OrderPlan, dialect: Dialect, tables: Tables) -> list[str]:
    """The transaction as the SQL text sent for ``dialect``, values inlined (the dry run)."""
    return [*transaction_start(dialect, tables, plan), *check_statement_sizes(plan, dialect), "COMMIT"]


def resolve_statement(tables: Tables, plan: OrderPlan, by: str, now: datetime, note: str) -> sa.Update:
    ex = tables.exceptions
    return (
        ex.update()
        .where(
            ex.c.order_id == plan.order_id,
            ex.c.exception_type == plan.exception_type,
            ex.c.resolved_at.is_(None),
        )
        .values(resolved_at=sa.literal(now, TS), resolved_by=by, resolution_notes=note)
    )


def resolution_note(plan: OrderPlan) -> str:
    note = f"backfilled from the source: {plan.summary()}; the {plan.exception_type} rule passes again"
    data = note.encode("utf-8")
    limit = exceptions_store.NOTES_MAX
    return note if len(data) <= limit else data[: limit - 3].decode("utf-8", "ignore") + "..."


# --- the transaction --------------------------------------------------------------------------


def _copy(tables: Tables, plan: OrderPlan) -> Callable[[Connection], None]:
    """The order's DELETE + INSERTs, as a body for :func:`locked_write.locked_write`."""

    def body(conn: Connection) -> None:
        for copy in plan.copies:
            conn.execute(copy.delete())
            inserted = sum(conn.execute(i).rowcount for i in copy.inserts())
            if inserted != len(copy.rows):
                raise UserError(
                    f"order {plan.order_id}: INSERT into {copy.mart_name} wrote {inserted} rows, "
                    f"expected {len(copy.rows)}; rolled back, nothing changed"
                )

    return body


def copy_rows(
    engine: Engine,
    tables: Tables,
    plan: OrderPlan,
    *,
    retry: RetryPolicy = SERIALIZATION_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run the order's transaction (tables locked first; error 1023 reruns it, bounded). Returns
    the number of attempts."""
    _, attempts = locked_write.locked_write_counted(
        engine,
        lock_tables(plan, tables),
        _copy(tables, plan),
        what=f"order {plan.order_id}",
        policy=retry,
        sleep=sleep,
    )
    return attempts


# --- after the commit -------------------------------------------------------------------------


def _rule(conn: Connection, tables: Tables, exception_type: str, scope: rules.Scope) -> rules.RuleQuery:
    """The check's own rule (checks/rules.py: the SQL the monitor runs), in ``scope``."""
    if exception_type == UTI_UTS_TIME_MISMATCH:
        return rules.uti_uts_time_mismatch(tables, scope)
    hist = rules.hist_uts_tables(conn, tables, tables.settings.hist_uts_tables)
    return rules.order_missing_spath(tables, scope, hist)


def recheck(engine: Engine, tables: Tables, plan: OrderPlan) -> str | None:
    """The rule's note if the order still fails its check, else None.

    The rule is scoped to the order by id (``rules.OrderIds``), whatever its ``update_time``: the
    copy may move it out of the window it was flagged in, and an order outside the window would
    "pass" without being looked at. An order gone from the mart is not passing either.
    """
    scope = rules.OrderIds()
    params = {scope.param: [plan.order_id]}
    with engine.connect() as conn:
        if conn.execute(rules.in_scope(tables, scope), params).first() is None:
            return f"no {tables.mart_uti.name} row: the rule cannot see the order"
        failing = _rule(conn, tables, plan.exception_type, scope).core.subquery("failing")
        row = conn.execute(sa.select(failing.c.notes).limit(1), params).first()
    return None if row is None else str(row[0])


def close(engine: Engine, tables: Tables, plan: OrderPlan, by: str, now: datetime, note: str) -> int:
    """Resolve the order's open exception of its type, under the table lock every writer takes."""
    statement = resolve_statement(tables, plan, by, now, note)
    return locked_write.locked_write(
        engine,
        [tables.exceptions],
        lambda conn: conn.execute(statement).rowcount,
        what=f"order {plan.order_id}",
    )


def backfill_order(
    engine: Engine,
    tables: Tables,
    plan: OrderPlan,
    by: str,
    now: datetime,
    *,
    retry: RetryPolicy = SERIALIZATION_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Copy, re-check, and close the exception if the rule now passes."""
    attempts = copy_rows(engine, tables, plan, retry=retry, sleep=sleep)
    copied = f"order {plan.order_id}: copied {plan.summary()}"
    still = recheck(engine, tables, plan)
    if still is not None:
        return Outcome(
            plan.order_id,
            STILL_FAILING,
            f"{copied}; the {plan.exception_type} rule still fails: {still}; exception left open",
            attempts,
        )
    closed = close(engine, tables, plan, by, now, resolution_note(plan))
    if not closed:
        return Outcome(
            plan.order_id, BACKFILLED, f"{copied}; the rule passes; no open exception to close", attempts
        )
    return Outcome(
        plan.order_id,
        CLOSED,
        f"{copied}; the rule passes again; closed the {plan.exception_type} exception",
        attempts,
    )
