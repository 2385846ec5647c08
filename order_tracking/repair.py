"""Repair REACTIVATED_ORDER_MISSING_ECS: move an order's row from history back into the mart.

The spec's manual fix is ``INSERT INTO mart_ecs SELECT * FROM hist_ecs_order_info_2025_h2 WHERE
order_id = N`` then ``DELETE FROM hist_ecs ...``. Done by hand it is easy to get wrong (wrong half
year, the INSERT committed but not the DELETE, a duplicate in the mart). Here, per order:

- :func:`locate` finds the one history table that holds the order (discovered by name, so a new
  half-year table needs no code change) and refuses when that is ambiguous or already repaired;
- :func:`repair_statements` builds the INSERT ... SELECT, the DELETE and the UPDATE that closes the
  open exception, as Core statements (shown compiled for the dry run, executed as they are);
- :func:`apply` runs them in ONE transaction that also holds the exceptions-table lock the monitor
  writers take, re-checks the location inside it, and rolls everything back unless exactly one
  row was inserted and one deleted.

The exception is closed with the same columns and semantics as ``exceptions_store.resolve`` (open
rows only), but inside this transaction: ``resolve`` opens its own, and a row moved without its
exception closed (or the reverse) is the inconsistency this module exists to prevent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from order_tracking import exceptions_store, rules, schema
from order_tracking.errors import UserError
from order_tracking.schema import TS, Tables
from order_tracking.settings import REACTIVATED_ORDER_MISSING_ECS

log = logging.getLogger(__name__)

BY_MAX = 128  # width of resolved_by in schema.py


@dataclass(frozen=True)
class Location:
    """Where one order's creation row lives now."""

    order_id: int
    hist: sa.Table
    open_exceptions: int  # open REACTIVATED_ORDER_MISSING_ECS rows for the order (0 or 1)


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


def qualified(table: sa.Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def locate(conn: Connection, tables: Tables, order_id: int) -> Location:
    """The history table holding ``order_id``; :class:`UserError` for every refusal case."""
    mart = tables.mart_ecs
    in_mart = conn.execute(sa.select(sa.func.count()).where(mart.c.order_id == order_id)).scalar_one()
    if in_mart:
        raise UserError(
            f"order {order_id} is already in {qualified(mart)}; nothing to repair, nothing changed"
        )
    names = schema.discover_hist_tables(conn, tables.settings.mart_schema, schema.HIST_ECS_PREFIX)
    holders: list[tuple[sa.Table, int]] = []
    for name in names:
        hist = tables.hist_by_name(name)
        n = conn.execute(sa.select(sa.func.count()).where(hist.c.order_id == order_id)).scalar_one()
        if n:
            holders.append((hist, int(n)))
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
    open_count = conn.execute(
        sa.select(sa.func.count()).where(*_open_exception(tables, order_id))
    ).scalar_one()
    return Location(order_id, holders[0][0], int(open_count))


def repair_statements(
    tables: Tables, order_id: int, hist: sa.Table, by: str, now: datetime
) -> RepairStatements:
    """INSERT ... SELECT into the mart, DELETE from history, close the open exception."""
    mart, ex = tables.mart_ecs, tables.exceptions
    cols = ["order_id", "partner_id", "add_time"]
    insert = mart.insert().from_select(
        cols, sa.select(*(hist.c[c] for c in cols)).where(hist.c.order_id == order_id)
    )
    delete = hist.delete().where(hist.c.order_id == order_id)
    note = f"moved order {order_id} from {qualified(hist)} to {qualified(mart)}"
    resolve = (
        ex.update()
        .where(*_open_exception(tables, order_id))
        .values(resolved_at=sa.literal(now, TS), resolved_by=by, resolution_notes=note)
    )
    return RepairStatements(insert, delete, resolve)


def render(statements: RepairStatements, dialect: Dialect, start: list[str]) -> list[str]:
    """The transaction as SQL text for ``dialect``, values inlined (what the dry run prints)."""
    body = [rules.compile_sql(s, dialect).strip() for s in statements.all()]
    return [*start, *body, "COMMIT"]


def check_by(by: str) -> str:
    by = (by or "").strip()
    if not by:
        raise UserError("--by is empty: say who repairs the orders")
    if len(by) > BY_MAX:
        raise UserError(f"--by is {len(by)} characters long; at most {BY_MAX}")
    return by


def plan(engine: Engine, tables: Tables, order_ids: list[int], by: str) -> list[Location]:
    """Locate every order first: one refusal refuses the whole command before anything changes."""
    check_by(by)
    if not order_ids:
        raise UserError("give at least one --order-id")
    if len(set(order_ids)) != len(order_ids):
        raise UserError("an --order-id is given twice")
    with engine.connect() as conn:
        return [locate(conn, tables, oid) for oid in order_ids]


def transaction_start(dialect: Dialect, tables: Tables) -> list[str]:
    """How :func:`apply` opens its transaction: with the exceptions-table write lock."""
    if dialect.name == "sqlite":
        return ["BEGIN IMMEDIATE"]  # write lock on the main and every attached file
    return ["BEGIN", exceptions_store.lock_statement(dialect, tables.exceptions)]


def apply(engine: Engine, tables: Tables, order_id: int, by: str, now: datetime) -> RepairResult:
    """Move one order in one transaction; any surprise rolls back all three statements."""
    by = check_by(by)
    # The lock serializes with monitor runs writing exceptions (and, on SQLite, makes the
    # re-check below and the writes one atomic unit).
    with exceptions_store.locked_transaction(engine, tables.exceptions) as conn:
        where = locate(conn, tables, order_id)  # again: the data may have changed since the plan
        stmts = repair_statements(tables, order_id, where.hist, by, now)
        inserted = conn.execute(stmts.insert).rowcount
        if inserted != 1:
            raise UserError(
                f"order {order_id}: INSERT into {qualified(tables.mart_ecs)} wrote {inserted} rows, "
                "expected 1; rolled back, nothing changed"
            )
        deleted = conn.execute(stmts.delete).rowcount
        if deleted != 1:
            raise UserError(
                f"order {order_id}: DELETE from {qualified(where.hist)} removed {deleted} rows, "
                "expected 1; rolled back, nothing changed"
            )
        closed = conn.execute(stmts.resolve).rowcount
        if closed > 1:  # the store keeps at most one open row per (order, type)
            raise UserError(
                f"order {order_id}: {closed} open {REACTIVATED_ORDER_MISSING_ECS} rows; "
                "rolled back, nothing changed"
            )
    log.info("moved order %d from %s; closed %d exception(s)", order_id, qualified(where.hist), closed)
    return RepairResult(order_id, qualified(where.hist), inserted, closed)


def _open_exception(tables: Tables, order_id: int) -> list[sa.ColumnElement[bool]]:
    ex = tables.exceptions
    return [
        ex.c.order_id == order_id,
        ex.c.exception_type == REACTIVATED_ORDER_MISSING_ECS,
        ex.c.resolved_at.is_(None),
    ]
