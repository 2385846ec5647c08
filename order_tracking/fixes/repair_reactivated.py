"""Repair REACTIVATED_ORDER_MISSING_ECS: move an order's row from history back into the mart.

The spec's manual fix is ``INSERT INTO mart_ecs SELECT * FROM hist_ecs_order_info_2025_h2 WHERE
order_id = N`` then ``DELETE FROM hist_ecs ...``. Done by hand it is easy to get wrong (wrong half
year, the INSERT committed but not the DELETE, a duplicate in the mart). Here, per order:

- :func:`locate` finds the one history table that holds the order (discovered by name, so a new
  half-year table needs no code change), refuses when that is ambiguous or already repaired, and
  reflects both tables' columns: the row is copied with EVERY column (what ``SELECT *`` means),
  by name, and the repair is refused when the two tables' columns differ;
- :func:`repair_statements` builds the INSERT ... SELECT, the DELETE and the UPDATE that closes the
  open exception, as Core statements (shown compiled for the dry run, executed as they are);
- :func:`apply` runs them in ONE transaction that first locks every table it touches (exceptions,
  mart_ecs, the history table: on Redshift this is how serializable isolation error 1023 against
  the ETL is avoided), re-checks the location inside it, rolls everything back unless exactly one
  row was inserted and one deleted, and retries error 1023 a bounded number of times.

An order without an open REACTIVATED_ORDER_MISSING_ECS exception is refused unless ``force``: a
mistyped id must not un-archive an order nobody flagged.

The exception is closed with the same columns and semantics as ``exceptions_store.resolve`` (open
rows only), but inside this transaction: ``resolve`` opens its own, and a row moved without its
exception closed (or the reverse) is the inconsistency this module exists to prevent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from order_tracking import locked_write, schema
from order_tracking.checks import exceptions_store, rules
from order_tracking.errors import UserError
from order_tracking.locked_write import SERIALIZATION_RETRY, RetryPolicy
from order_tracking.schema import TS, Tables
from order_tracking.settings import REACTIVATED_ORDER_MISSING_ECS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """Where one order's creation row lives now, and how to copy it."""

    order_id: int
    hist: sa.Table
    open_exceptions: int  # open REACTIVATED_ORDER_MISSING_ECS rows for the order (0 or 1)
    columns: tuple[str, ...]  # every column of mart_ecs (= of the history table), mart order


@dataclass(frozen=True)
class RepairStatements:
    insert: sa.Insert
    delete: sa.Delete
    resolve: sa.Update

    def all(self) -> list[sa.Executable]:
        return [self.insert, self.delete, self.resolve]


@dataclass(frozen=True)
class RepairResult:
    order_id: int
    hist_name: str
    moved: int
    closed: int
    attempts: int = 1


def qualified(table: sa.Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def _count(conn: Connection, table: sa.Table, order_id: int) -> int:
    return int(conn.execute(sa.select(sa.func.count()).where(table.c.order_id == order_id)).scalar_one())


def locate(conn: Connection, tables: Tables, order_id: int) -> Location:
    """The history table holding ``order_id``; :class:`UserError` for every refusal case."""
    mart = tables.mart_ecs
    if _count(conn, mart, order_id):
        raise UserError(
            f"order {order_id} is already in {qualified(mart)}; nothing to repair, nothing changed"
        )
    names = schema.discover_hist_tables(conn, tables.settings.mart_schema, schema.HIST_ECS_PREFIX)
    holders: list[tuple[sa.Table, int]] = []
    for name in names:
        hist = tables.hist_by_name(name)
        n = _count(conn, hist, order_id)
        if n:
            holders.append((hist, n))
    if not holders:
        where = f"{tables.settings.mart_schema}.{schema.HIST_ECS_PREFIX}*"
        raise UserError(
            f"order {order_id} is in no history table ({where}: {len(names)} found); nothing changed"
        )
    if len(holders) > 1 or holders[0][1] > 1:
        found = ", ".join(f"{qualified(t)} ({n} row{'s' if n > 1 else ''})" for t, n in holders)
        raise UserError(
            f"order {order_id} has more than one history row: {found}; "
            "decide by hand which one is right; nothing changed"
        )
    hist = holders[0][0]
    return Location(order_id, hist, _open_count(conn, tables, order_id), copy_columns(conn, mart, hist))


def copy_columns(conn: Connection, mart: sa.Table, hist: sa.Table) -> tuple[str, ...]:
    """The columns to copy (all of them), after checking both tables have the same ones.

    The real tables carry more columns than the three this project models, so they are read from
    the database. They are matched by name, not position; any difference in names or types is
    refused, naming it: an INSERT ... SELECT * would lose, misplace or truncate data.
    """
    mart_cols = dict(schema.table_columns(conn, mart.schema, mart.name))
    hist_cols = dict(schema.table_columns(conn, hist.schema, hist.name))

    problems = []
    only_hist = [n for n in hist_cols if n not in mart_cols]
    only_mart = [n for n in mart_cols if n not in hist_cols]
    if only_hist:
        problems.append(f"only in {qualified(hist)}: {', '.join(only_hist)}")
    if only_mart:
        problems.append(f"only in {qualified(mart)}: {', '.join(only_mart)}")
    retyped = [
        f"{n} ({hist_cols[n]} vs {t})" for n, t in mart_cols.items() if n in hist_cols and hist_cols[n] != t
    ]
    if retyped:
        problems.append(f"different types: {', '.join(retyped)}")
    if problems:
        raise UserError(
            f"{qualified(hist)} and {qualified(mart)} do not have the same columns "
            f"({'; '.join(problems)}): copying the row would lose or change data; nothing changed"
        )
    return tuple(mart_cols)


def repair_statements(tables: Tables, where: Location, by: str, now: datetime) -> RepairStatements:
    """INSERT ... SELECT of every column into the mart, DELETE from history, close the exception."""
    mart, hist, ex = tables.mart_ecs, where.hist, tables.exceptions
    cols = where.columns
    # Lightweight table clauses carry the reflected columns (the Core tables model only three).
    mart_all = sa.table(mart.name, *(sa.column(c) for c in cols), schema=mart.schema)
    hist_all = sa.table(hist.name, *(sa.column(c) for c in cols), schema=hist.schema)
    insert = mart_all.insert().from_select(
        cols, sa.select(*(hist_all.c[c] for c in cols)).where(hist_all.c.order_id == where.order_id)
    )
    delete = hist.delete().where(hist.c.order_id == where.order_id)
    note = f"moved order {where.order_id} from {qualified(hist)} to {qualified(mart)}"
    resolve = (
        ex.update()
        .where(*_open_exception(tables, where.order_id))
        .values(resolved_at=sa.literal(now, TS), resolved_by=by, resolution_notes=note)
    )
    return RepairStatements(insert, delete, resolve)


def render(statements: RepairStatements, dialect: Dialect, start: list[str]) -> list[str]:
    """The transaction as SQL text for ``dialect``, values inlined (what the dry run prints)."""
    body = [rules.compile_sql(s, dialect).strip() for s in statements.all()]
    return [*start, *body, "COMMIT"]


def check_by(by: str) -> str:
    return exceptions_store.check_text("--by", by, exceptions_store.BY_MAX, "say who repairs the orders")


def check_flagged(where: Location, force: bool) -> None:
    """Refuse an order nobody flagged (a mistyped id would un-archive it) unless ``force``."""
    if not where.open_exceptions and not force:
        raise UserError(
            f"order {where.order_id} has no open {REACTIVATED_ORDER_MISSING_ECS} exception (was the "
            "id mistyped? the monitor never flagged it, or it was resolved already); nothing changed; "
            "add --force to move it anyway"
        )


def plan(
    engine: Engine, tables: Tables, order_ids: list[int], by: str, *, force: bool = False
) -> list[Location]:
    """Locate every order first: one refusal refuses the whole command before anything changes."""
    check_by(by)
    if not order_ids:
        raise UserError("give at least one --order-id")
    if len(set(order_ids)) != len(order_ids):
        raise UserError("an --order-id is given twice")
    with engine.connect() as conn:
        locations = [locate(conn, tables, oid) for oid in order_ids]
    for where in locations:
        check_flagged(where, force)
    return locations


def written_tables(tables: Tables, hist: sa.Table) -> list[sa.Table]:
    """The three tables the repair writes, locked first in the order every writer uses."""
    return [tables.exceptions, tables.mart_ecs, hist]


def transaction_start(dialect: Dialect, tables: Tables, hist: sa.Table) -> list[str]:
    """How :func:`apply` opens its transaction: every table it touches locked first."""
    return locked_write.transaction_start(dialect, written_tables(tables, hist))


def apply(
    engine: Engine,
    tables: Tables,
    order: int | Location,
    by: str,
    now: datetime,
    *,
    force: bool = False,
    retry: RetryPolicy = SERIALIZATION_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> RepairResult:
    """Move one order (an id, or where :func:`plan` located it) in one transaction; a
    serialization conflict reruns the transaction (bounded)."""
    by = check_by(by)
    if isinstance(order, Location):
        where = order
    else:
        with engine.connect() as conn:
            where = locate(conn, tables, order)
        check_flagged(where, force)
    closed, attempts = locked_write.locked_write_counted(
        engine,
        written_tables(tables, where.hist),
        lambda conn: _move(conn, tables, where, by, now, force),
        what=f"order {where.order_id}",
        policy=retry,
        sleep=sleep,
    )
    log.info("moved order %d from %s; closed %d exception(s)", where.order_id, qualified(where.hist), closed)
    return RepairResult(where.order_id, qualified(where.hist), 1, closed, attempts)


def _move(conn: Connection, tables: Tables, where: Location, by: str, now: datetime, force: bool) -> int:
    """The transaction's body, on the locked tables; returns how many exceptions it closed."""
    order_id, mart, hist = where.order_id, tables.mart_ecs, where.hist
    # Again, on the locked tables: the data may have changed since the plan.
    if _count(conn, mart, order_id):
        raise UserError(f"order {order_id} is already in {qualified(mart)}; nothing changed")
    in_hist = _count(conn, hist, order_id)
    if in_hist != 1:
        raise UserError(
            f"order {order_id}: {qualified(hist)} now holds {in_hist} rows for it (changed since "
            "it was located); nothing changed"
        )
    check_flagged(Location(order_id, hist, _open_count(conn, tables, order_id), where.columns), force)
    stmts = repair_statements(tables, where, by, now)
    inserted = conn.execute(stmts.insert).rowcount
    if inserted != 1:
        raise UserError(
            f"order {order_id}: INSERT into {qualified(mart)} wrote {inserted} rows, "
            "expected 1; rolled back, nothing changed"
        )
    deleted = conn.execute(stmts.delete).rowcount
    if deleted != 1:
        raise UserError(
            f"order {order_id}: DELETE from {qualified(hist)} removed {deleted} rows, "
            "expected 1; rolled back, nothing changed"
        )
    closed = conn.execute(stmts.resolve).rowcount
    if closed > 1:  # the store keeps at most one open row per (order, type)
        raise UserError(
            f"order {order_id}: {closed} open {REACTIVATED_ORDER_MISSING_ECS} rows; "
            "rolled back, nothing changed"
        )
    return closed


def _open_count(conn: Connection, tables: Tables, order_id: int) -> int:
    query = sa.select(sa.func.count()).where(*_open_exception(tables, order_id))
    return int(conn.execute(query).scalar_one())


def _open_exception(tables: Tables, order_id: int) -> list[sa.ColumnElement[bool]]:
    ex = tables.exceptions
    return [
        ex.c.order_id == order_id,
        ex.c.exception_type == REACTIVATED_ORDER_MISSING_ECS,
        ex.c.resolved_at.is_(None),
    ]
