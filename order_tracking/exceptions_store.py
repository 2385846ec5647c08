"""The exceptions store: ``settlement_ods.order_tracking_exceptions`` (DESIGN.md section 4).

Contract:

- at most one unresolved row per (order_id, exception_type); re-detection moves ``last_seen_at``
  (and refreshes ``notes``) instead of inserting a duplicate;
- a resolved row is never touched again: a resolved exception that recurs opens a new row;
- all rows of one check are written in ONE transaction, set-based, in the warehouse
  (UPDATE ... FROM and INSERT ... SELECT): findings are never fetched into Python, so memory
  stays flat whatever their number;
- two runs writing at once stay correct: the table is locked first, so writers serialize.
  Redshift has no unique constraint to fall back on; PostgreSQL/SQLite also carry a partial
  unique index (schema.py) as a second line of defence.

The DAG's ``check_unresolved_exceptions`` task calls :func:`check_unresolved`; the CLI's
``exceptions`` and ``resolve`` commands call :func:`list_exceptions`, :func:`summary_by_type`
and :func:`resolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.ddl import CreateTableAs

from order_tracking import schema
from order_tracking import settings as settings_mod
from order_tracking.errors import UserError
from order_tracking.schema import TS, Tables

log = logging.getLogger(__name__)

NOTES_MAX = 1024  # the width of notes / resolution_notes in schema.py


@dataclass(frozen=True)
class RecordResult:
    """What one check wrote: ``found`` distinct orders = ``new`` rows + ``already_open`` rows."""

    exception_type: str
    found: int
    new: int
    already_open: int


class UnresolvedExceptionsError(Exception):
    """Raised by :func:`check_unresolved` when unresolved exceptions remain; carries the summary."""

    def __init__(self, summary: dict[str, int]) -> None:
        self.summary = dict(summary)
        self.total = sum(summary.values())
        parts = ", ".join(f"{t}={n}" for t, n in summary.items())
        super().__init__(f"{self.total} unresolved exception{'s' if self.total != 1 else ''}: {parts}")


# --- writing findings -----------------------------------------------------------------------


@contextmanager
def locked_transaction(engine: Engine, table: sa.Table) -> Iterator[Connection]:
    """One transaction that holds an exclusive write lock on ``table`` from its first statement.

    - PostgreSQL: ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`` conflicts with itself and with
      every writer, yet lets readers (the CLI, Data Docs) go on reading.
    - Redshift: ``LOCK t`` (Redshift's LOCK takes no mode; it is always exclusive).
    - SQLite: ``BEGIN IMMEDIATE`` takes the write lock on the main file and every ATTACHed file at
      once. pysqlite would otherwise open a DEFERRED transaction lazily before the first DML, so
      two writers could both read and then one would fail with "database is locked" on upgrade.
      The connection is switched to driver-level autocommit (``isolation_level=None``, what
      SQLAlchemy's AUTOCOMMIT does for pysqlite, undone when the connection goes back to the
      pool), so that pysqlite emits nothing by itself and we issue BEGIN IMMEDIATE / COMMIT /
      ROLLBACK explicitly. This touches only this one checkout, unlike an engine-wide ``begin``
      event which would change every other user of the shared engine. The engine's busy timeout
      (db.create_engine, 60 s) makes the second writer wait instead of failing.
    """
    backend = engine.dialect.name
    if backend == "sqlite":
        with engine.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL).
                if conn.connection.dbapi_connection.in_transaction:
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        return
    with engine.begin() as conn:
        conn.execute(sa.text(lock_statement(conn.dialect, table)))
        yield conn


def lock_statement(dialect: sa.engine.Dialect, table: sa.Table) -> str:
    """The table lock statement for ``dialect`` (Core has no LOCK construct)."""
    name = dialect.identifier_preparer.format_table(table)
    if dialect.name == "redshift":
        return f"LOCK {name}"
    if dialect.name == "postgresql":
        return f"LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"
    raise ValueError(f"no table lock statement for {dialect.name}")


def record_statements(
    tables: Tables, exception_type: str, findings: sa.Select, seen_at: datetime
) -> tuple[sa.Update, sa.Insert]:
    """The UPDATE (re-detected, still open) and INSERT ... SELECT (new) for one check.

    ``findings`` must label its columns ``order_id`` and ``notes``. It is grouped by order_id so
    that an order listed twice is recorded once (and the UPDATE ... FROM joins one row per order).
    UPDATE ... FROM is used instead of a correlated subquery in SET: it is Redshift's documented
    form for "update from another relation" and PostgreSQL / SQLite (>= 3.33) run it too.
    """
    update, insert, _ = _write_statements(tables, exception_type, _per_order(findings).subquery("f"), seen_at)
    return update, insert


def _per_order(findings: sa.Select) -> sa.Select:
    """One row per order (``order_id``, ``notes``), whatever ``findings`` repeats."""
    src = findings.subquery("findings")
    return sa.select(src.c.order_id, sa.func.max(src.c.notes).label("notes")).group_by(src.c.order_id)


def _write_statements(
    tables: Tables,
    exception_type: str,
    per_order: sa.FromClause,
    seen_at: datetime,
    *,
    skip_open: bool = True,
) -> tuple[sa.Update, sa.Insert, sa.ColumnElement[bool]]:
    """UPDATE of the open rows, INSERT of the findings (without an open row if ``skip_open``), and
    the "this finding has an open row" predicate."""
    ex = tables.exceptions
    seen = sa.literal(seen_at, TS)
    notes = sa.func.substr(per_order.c.notes, 1, NOTES_MAX)
    open_row = sa.exists().where(
        ex.c.order_id == per_order.c.order_id,
        ex.c.exception_type == exception_type,
        ex.c.resolved_at.is_(None),
    )
    update = (
        ex.update()
        .where(
            ex.c.exception_type == exception_type,
            ex.c.resolved_at.is_(None),
            ex.c.order_id == per_order.c.order_id,
        )
        .values(last_seen_at=seen, notes=notes)
    )
    rows = sa.select(
        per_order.c.order_id, sa.literal(exception_type, ex.c.exception_type.type), seen, seen, notes
    )
    insert = ex.insert().from_select(
        ["order_id", "exception_type", "detected_at", "last_seen_at", "notes"],
        rows.where(~open_row) if skip_open else rows,
    )
    return update, insert, open_row


STAGED_FINDINGS = "order_tracking_staged_findings"  # a TEMPORARY table, inside one transaction


def record_findings(
    engine: Engine,
    tables: Tables,
    exception_type: str,
    findings: sa.Select,
    seen_at: datetime,
    *,
    stage: bool = False,
) -> RecordResult:
    """Write one check's findings in one locked transaction; nothing is fetched into Python.

    Order matters: the UPDATE first refreshes the open rows (its rowcount is ``already_open``),
    then the INSERT adds the orders that still have no open row (rowcount ``new``).

    Both statements read ``findings``, so an expensive rule would run twice. ``stage=True`` runs
    it once into a temporary table (``CREATE TEMPORARY TABLE ... AS SELECT``: PostgreSQL,
    Redshift, SQLite), which the UPDATE and INSERT then read; the table is dropped before the
    commit. Use it when ``findings`` is a full rule over the window; a rule already narrowed to a
    few order ids is cheaper to run twice than to stage.
    """
    _check_type(exception_type)
    if stage:
        return _record_staged(engine, tables, exception_type, findings, seen_at)
    update, insert = record_statements(tables, exception_type, findings, seen_at)
    with locked_transaction(engine, tables.exceptions) as conn:
        already_open = conn.execute(update).rowcount
        new = conn.execute(insert).rowcount
    return _logged(RecordResult(exception_type, new + already_open, new, already_open))


def _record_staged(
    engine: Engine, tables: Tables, exception_type: str, findings: sa.Select, seen_at: datetime
) -> RecordResult:
    """``record_findings(stage=True)``: the rule runs once, into a temporary table.

    1. CREATE TEMPORARY TABLE staged AS the findings, one row per order;
    2. UPDATE the open rows FROM staged (rowcount: ``already_open``);
    3. DELETE from staged the orders that have an open row;
    4. INSERT everything left in staged (rowcount: ``new``); 5. DROP staged.

    Step 3 keeps the INSERT from reading the table it writes. ``INSERT ... WHERE NOT EXISTS (open
    row)`` did, and on PostgreSQL with an exceptions table that was empty at its last ANALYZE the
    planner picks a nested loop whose inner seq scan re-reads every row inserted so far: 500k
    findings did not finish in 10 minutes (benchmark, issue 6). Each step here reads a table that
    the same statement does not change.
    """
    ex = tables.exceptions
    create = CreateTableAs(_per_order(findings), STAGED_FINDINGS, temporary=True)
    staged = create.table
    # Orders with an open row are deleted from staged before the INSERT, which then takes all.
    update, insert, open_row = _write_statements(tables, exception_type, staged, seen_at, skip_open=False)
    with locked_transaction(engine, ex) as conn:
        conn.execute(create)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(staged)}"))
        already_open = conn.execute(update).rowcount
        conn.execute(staged.delete().where(open_row))
        new = conn.execute(insert).rowcount
        conn.execute(sa.schema.DropTable(staged))
    return _logged(RecordResult(exception_type, new + already_open, new, already_open))


def _logged(result: RecordResult) -> RecordResult:
    log.info(
        "%s: %d found, %d new, %d already open",
        result.exception_type,
        result.found,
        result.new,
        result.already_open,
    )
    return result


# --- reading --------------------------------------------------------------------------------


def unresolved_summary(engine: Engine, tables: Tables) -> dict[str, int]:
    """Unresolved rows by type, most first (the spec's first manual query)."""
    ex = tables.exceptions
    cnt = sa.func.count().label("cnt")
    query = (
        sa.select(ex.c.exception_type, cnt)
        .where(ex.c.resolved_at.is_(None))
        .group_by(ex.c.exception_type)
        .order_by(cnt.desc(), ex.c.exception_type)
    )
    with engine.connect() as conn:
        return {t: int(n) for t, n in conn.execute(query)}


def check_unresolved(engine: Engine, tables: Tables) -> dict[str, int]:
    """Log the unresolved summary; raise :class:`UnresolvedExceptionsError` if any remain."""
    summary = unresolved_summary(engine, tables)
    total = sum(summary.values())
    if total:
        err = UnresolvedExceptionsError(summary)
        log.warning("%s", err)
        raise err
    log.info("no unresolved exceptions")
    return summary


@dataclass(frozen=True)
class TypeSummary:
    exception_type: str
    count: int
    oldest_detected_at: datetime
    newest_last_seen_at: datetime


def summary_by_type(engine: Engine, tables: Tables, include_resolved: bool = False) -> list[TypeSummary]:
    """Count, oldest ``detected_at`` and newest ``last_seen_at`` per type (open rows by default)."""
    ex = tables.exceptions
    cnt = sa.func.count().label("cnt")
    query = (
        sa.select(ex.c.exception_type, cnt, sa.func.min(ex.c.detected_at), sa.func.max(ex.c.last_seen_at))
        .group_by(ex.c.exception_type)
        .order_by(cnt.desc(), ex.c.exception_type)
    )
    if not include_resolved:
        query = query.where(ex.c.resolved_at.is_(None))
    with engine.connect() as conn:
        return [TypeSummary(t, int(n), lo, hi) for t, n, lo, hi in conn.execute(query)]


@dataclass(frozen=True)
class ExceptionRow:
    order_id: int
    exception_type: str
    detected_at: datetime
    last_seen_at: datetime
    age: timedelta  # now - detected_at: how long the problem has been known
    notes: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_notes: str | None


def list_exceptions(
    engine: Engine,
    tables: Tables,
    type: str | None = None,  # the name mirrors the CLI's --type
    order_ids: Sequence[int] | None = None,
    include_resolved: bool = False,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[ExceptionRow]:
    """Exception rows, newest detection first; open rows only unless ``include_resolved``."""
    if type is not None:
        _check_type(type)
    ex = tables.exceptions
    query = sa.select(
        ex.c.order_id,
        ex.c.exception_type,
        ex.c.detected_at,
        ex.c.last_seen_at,
        ex.c.notes,
        ex.c.resolved_at,
        ex.c.resolved_by,
        ex.c.resolution_notes,
    ).order_by(ex.c.detected_at.desc(), ex.c.order_id, ex.c.exception_type)
    if type is not None:
        query = query.where(ex.c.exception_type == type)
    if order_ids:
        query = query.where(ex.c.order_id.in_(list(order_ids)))
    if not include_resolved:
        query = query.where(ex.c.resolved_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    now = now or _utc_now()
    with engine.connect() as conn:
        return [
            ExceptionRow(r.order_id, r.exception_type, r.detected_at, r.last_seen_at, now - r.detected_at,
                         r.notes, r.resolved_at, r.resolved_by, r.resolution_notes)
            for r in conn.execute(query)
        ]  # fmt: skip


# --- resolving ------------------------------------------------------------------------------


def resolve(
    engine: Engine,
    tables: Tables,
    *,
    order_ids: Sequence[int] | None,
    exception_type: str | None,
    all_of_type: bool,
    by: str,
    notes: str,
    now: datetime | None = None,
) -> int:
    """Close open exceptions (resolved_at IS NULL only) in one transaction; return how many.

    Either ``order_ids`` (every one must have an open row, else nothing changes) or
    ``all_of_type`` with ``exception_type``. Already-resolved rows are never touched, so a
    repeated call finds nothing open and fails instead of rewriting history.
    """
    by, notes = (by or "").strip(), (notes or "").strip()
    if not by:
        raise UserError("--by is empty: say who resolves the exceptions")
    if not notes:
        raise UserError("--notes is empty: say why the exceptions are resolved")
    if len(by) > 128:
        raise UserError(f"--by is {len(by)} characters long; at most 128")
    if len(notes) > NOTES_MAX:
        raise UserError(f"--notes is {len(notes)} characters long; at most {NOTES_MAX}")
    if exception_type is not None:
        _check_type(exception_type)
    ids = sorted(set(order_ids or ()))
    if all_of_type and ids:
        raise UserError("give either --order-id or --all-of-type, not both")
    if all_of_type and exception_type is None:
        raise UserError("--all-of-type needs --type")
    if not all_of_type and not ids:
        raise UserError("give at least one --order-id, or --all-of-type with --type")

    ex = tables.exceptions
    cond = [ex.c.resolved_at.is_(None)]
    if exception_type is not None:
        cond.append(ex.c.exception_type == exception_type)
    if ids:
        cond.append(ex.c.order_id.in_(ids))
    what = f"open {exception_type} exceptions" if exception_type else "open exceptions"
    with engine.begin() as conn:
        if ids:
            # The ids were typed by a person: refuse all if one is wrong, naming it.
            found = {r[0] for r in conn.execute(sa.select(ex.c.order_id).where(*cond).distinct())}
            missing = [i for i in ids if i not in found]
            if missing:
                raise UserError(f"no {what} for order_id {', '.join(map(str, missing))}; nothing was changed")
        closed = conn.execute(
            ex.update()
            .where(*cond)
            .values(resolved_at=now or _utc_now(), resolved_by=by, resolution_notes=notes)
        ).rowcount
        if closed == 0:
            raise UserError(f"no {what} to resolve; nothing was changed")
    log.info("closed %d %s (by %s)", closed, what, by)
    return closed


# --- helpers --------------------------------------------------------------------------------


def _check_type(exception_type: str) -> None:
    if exception_type not in settings_mod.EXCEPTION_TYPES:
        raise UserError(
            f"unknown exception type {exception_type!r}; valid types: "
            + ", ".join(settings_mod.EXCEPTION_TYPES)
        )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def require_table(engine: Engine, tables: Tables) -> None:
    """Fail in one line, pointing at ``init-db``, when the exceptions table does not exist."""
    schema.require_table(engine, tables.exceptions)
