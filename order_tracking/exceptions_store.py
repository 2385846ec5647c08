"""The exceptions store: ``settlement_ods.order_tracking_exceptions`` (DESIGN.md section 4).

Contract:

- at most one unresolved row per (order_id, exception_type); re-detection moves ``last_seen_at``
  (and refreshes ``notes``) instead of inserting a duplicate;
- a resolved row is never touched again: a resolved exception that recurs opens a new row;
- all rows of one check are written in ONE transaction, set-based, in the warehouse
  (UPDATE ... FROM and INSERT ... SELECT from a staged temporary table);
- the rule runs at most once per write: when validation already fetched every finding
  (``rules.SAMPLE_SIZE`` or fewer) those rows are staged as they are (:func:`record_rows`) and the
  rule is not run again; otherwise the rule runs once into the staged table
  (:func:`record_findings`, CREATE TEMPORARY TABLE ... AS): the findings are never fetched into
  Python, so memory stays flat whatever their number;
- the exceptions table is locked only for the UPDATE / DELETE / INSERT from the staged rows,
  never while the rule runs (Redshift's LOCK blocks readers too);
- rows whose ``order_id`` is NULL cannot be keyed: they are left out (validation counts them);
- two runs writing at once stay correct: the table is locked before the first read of it, so
  writers serialize. Redshift has no unique constraint to fall back on; PostgreSQL/SQLite also
  carry a partial unique index (schema.py) as a second line of defence.

The DAG's ``check_unresolved_exceptions`` task calls :func:`check_unresolved`; the CLI's
``exceptions`` and ``resolve`` commands call :func:`list_exceptions`, :func:`summary_by_type`
and :func:`resolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
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
BY_MAX = 128  # the width of resolved_by in schema.py


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
    """One transaction that holds an exclusive write lock on ``table`` from its first statement."""
    with _session(engine) as conn, _locked(conn, table):
        yield conn


@contextmanager
def _session(engine: Engine) -> Iterator[Connection]:
    """A connection for :func:`_locked` (and the temporary tables that live in its session).

    SQLite: the connection is switched to driver-level autocommit (``isolation_level=None``, what
    SQLAlchemy's AUTOCOMMIT does for pysqlite, undone when the connection goes back to the pool),
    so that pysqlite emits nothing by itself and :func:`_locked` issues BEGIN IMMEDIATE / COMMIT /
    ROLLBACK explicitly. This touches only this one checkout, unlike an engine-wide ``begin``
    event which would change every other user of the shared engine.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def _locked(conn: Connection, table: sa.Table) -> Iterator[Connection]:
    """A transaction on ``conn`` whose FIRST statement takes an exclusive write lock on ``table``.

    - PostgreSQL: ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`` conflicts with itself and with
      every writer, yet lets readers (the CLI, Data Docs) go on reading.
    - Redshift: ``LOCK t`` (Redshift's LOCK takes no mode; it is always exclusive and blocks
      readers too: keep what runs under it short). It must come first: the transaction's
      snapshot starts with its first statement, and locking every table at the start is how
      Redshift avoids serializable isolation errors (1023).
    - SQLite: ``BEGIN IMMEDIATE`` takes the write lock on the main file and every ATTACHed file at
      once. pysqlite would otherwise open a DEFERRED transaction lazily before the first DML, so
      two writers could both read and then one would fail with "database is locked" on upgrade.
      The engine's busy timeout (db.create_engine, 60 s) makes the second writer wait.
    """
    if conn.dialect.name == "sqlite":
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
    with conn.begin():
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


STAGED_FINDINGS = "order_tracking_staged_findings"  # a TEMPORARY table of the writing session
# Staged notes are cut to NOTES_MAX characters; Redshift's VARCHAR(n) counts bytes (UTF-8: <= 4).
STAGED_NOTES_WIDTH = 4 * NOTES_MAX

Finding = tuple[int, str | None]  # (order_id, notes)


def record_findings(
    engine: Engine, tables: Tables, exception_type: str, findings: sa.Select, seen_at: datetime
) -> RecordResult:
    """Write one check's findings, given as the rule's SELECT: it runs exactly once.

    ``findings`` must label its columns ``order_id`` and ``notes``. It runs once, outside the
    lock, into a temporary table (``CREATE TEMPORARY TABLE ... AS SELECT``: PostgreSQL, Redshift,
    SQLite), one row per order (an order listed twice is recorded once; rows whose ``order_id``
    is NULL cannot be keyed and are left out); then :func:`_write_staged`. Nothing is fetched
    into Python, so memory stays flat whatever the number of findings.
    """
    _check_type(exception_type)
    create = CreateTableAs(_per_order(findings), STAGED_FINDINGS, temporary=True)

    def stage(conn: Connection) -> sa.Table:
        conn.execute(create)
        return create.table

    return _write_staged(engine, tables, exception_type, seen_at, stage, analyze=True)


def record_rows(
    engine: Engine, tables: Tables, exception_type: str, rows: Sequence[Finding], seen_at: datetime
) -> RecordResult:
    """Write one check's findings that validation already fetched: the rule is not run again.

    ``rows`` are ``(order_id, notes)`` pairs (at most ``rules.SAMPLE_SIZE`` in practice). They are
    staged with ONE multi-row INSERT into a temporary table (Redshift has no ``VALUES`` list as a
    table, so the same :func:`_write_staged` as the large case reads them from there). An order
    given twice keeps its largest notes, like ``MAX(notes)`` in :func:`record_findings`; a NULL
    ``order_id`` is left out.
    """
    _check_type(exception_type)
    per_order: dict[int, str | None] = {}
    for order_id, notes in rows:
        if order_id is None:
            continue
        notes = None if notes is None else str(notes)[:NOTES_MAX]
        known = per_order.get(int(order_id))
        per_order[int(order_id)] = notes if known is None or (notes is not None and notes > known) else known
    if not per_order:
        return _logged(RecordResult(exception_type, 0, 0, 0))
    staged = sa.Table(
        STAGED_FINDINGS,
        sa.MetaData(),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("notes", sa.String(STAGED_NOTES_WIDTH)),
        prefixes=["TEMPORARY"],
    )
    values = [{"order_id": o, "notes": n} for o, n in sorted(per_order.items())]

    def stage(conn: Connection) -> sa.Table:
        conn.execute(sa.schema.CreateTable(staged))
        conn.execute(staged.insert().values(values))  # one statement, not executemany
        return staged

    return _write_staged(engine, tables, exception_type, seen_at, stage, analyze=False)


def _per_order(findings: sa.Select) -> sa.Select:
    """One row per keyed order (``order_id``, ``notes``), whatever ``findings`` repeats."""
    src = findings.subquery("findings")
    return (
        sa.select(src.c.order_id, sa.func.max(src.c.notes).label("notes"))
        .where(src.c.order_id.is_not(None))
        .group_by(src.c.order_id)
    )


def write_statements(
    tables: Tables, exception_type: str, staged: sa.Table, seen_at: datetime
) -> tuple[sa.Update, sa.Delete, sa.Insert]:
    """The three statements run under the lock, reading the staged findings (one row per order).

    1. UPDATE the open rows FROM staged (rowcount: ``already_open``). UPDATE ... FROM rather than
       a correlated subquery in SET: Redshift's documented form; PostgreSQL / SQLite run it too.
    2. DELETE from staged the orders that have an open row. ``order_id IN (SELECT ...)`` is not
       correlated at all: sqlalchemy-redshift 1.0.0 compiles ``DELETE ... WHERE EXISTS (...)``
       WITHOUT correlation (the staged table reappears in the subquery's FROM), which deleted
       every staged row as soon as one finding had an open row (issue 10 item 3).
    3. INSERT everything left in staged (rowcount: ``new``).

    Step 2 keeps the INSERT from reading the table it writes. ``INSERT ... WHERE NOT EXISTS (open
    row)`` did, and on PostgreSQL with an exceptions table that was empty at its last ANALYZE the
    planner picked a nested loop whose inner seq scan re-read every row inserted so far: 500k
    findings did not finish in 10 minutes (benchmark, issue 6).
    """
    ex = tables.exceptions
    seen = sa.literal(seen_at, TS)
    notes = sa.func.substr(staged.c.notes, 1, NOTES_MAX)
    update = (
        ex.update()
        .where(
            ex.c.exception_type == exception_type,
            ex.c.resolved_at.is_(None),
            ex.c.order_id == staged.c.order_id,
        )
        .values(last_seen_at=seen, notes=notes)
    )
    open_ids = sa.select(ex.c.order_id).where(
        ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None)
    )
    delete = staged.delete().where(staged.c.order_id.in_(open_ids))
    rows = sa.select(
        staged.c.order_id, sa.literal(exception_type, ex.c.exception_type.type), seen, seen, notes
    )
    insert = ex.insert().from_select(
        ["order_id", "exception_type", "detected_at", "last_seen_at", "notes"], rows
    )
    return update, delete, insert


def _write_staged(
    engine: Engine,
    tables: Tables,
    exception_type: str,
    seen_at: datetime,
    stage: Callable[[Connection], sa.Table],
    *,
    analyze: bool,
) -> RecordResult:
    """Stage the findings (``stage``), then UPDATE / DELETE / INSERT under the lock, in one session.

    The staging runs in a transaction of its own, committed BEFORE the lock is taken: on Redshift
    the lock blocks readers of the exceptions table too, so it covers only the three short
    statements of :func:`write_statements`, which all read the staged table. They are one
    transaction: all rows of the check or none. The temporary table lives in this session only
    (concurrent writers each have their own); it is dropped in the write's own transaction (one
    commit fewer), or, after a failure, on its own; if even that fails the connection is
    discarded, which drops it too. ``analyze``: give PostgreSQL's planner statistics of a big
    staged table (without them it guesses the size from its pages, good enough for 200 rows).
    """
    with _session(engine) as conn:
        try:
            with _transaction(conn):
                staged = stage(conn)
                if analyze and conn.dialect.name == "postgresql":
                    conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(staged)}"))
            update, delete, insert = write_statements(tables, exception_type, staged, seen_at)
            with _locked(conn, tables.exceptions):
                already_open = conn.execute(update).rowcount
                conn.execute(delete)
                new = conn.execute(insert).rowcount
                conn.execute(sa.schema.DropTable(staged))
        except BaseException:
            _drop_staged(conn)
            raise
    return _logged(RecordResult(exception_type, new + already_open, new, already_open))


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """A plain transaction on a :func:`_session` connection (SQLite's is in autocommit mode)."""
    if conn.dialect.name == "sqlite":
        yield  # each statement commits by itself; the staging needs no atomicity
        return
    with conn.begin():
        yield


def _drop_staged(conn: Connection) -> None:
    staged = sa.Table(STAGED_FINDINGS, sa.MetaData())
    try:
        with _transaction(conn):
            conn.execute(sa.schema.DropTable(staged, if_exists=True))
    except Exception:
        # Never hide the error that brought us here; a discarded session drops its temp tables.
        log.debug("could not drop %s; discarding the connection", STAGED_FINDINGS, exc_info=True)
        conn.invalidate()


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
    by = check_text("--by", by, BY_MAX, "say who resolves the exceptions")
    notes = check_text("--notes", notes, NOTES_MAX, "say why the exceptions are resolved")
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


def check_text(flag: str, value: str | None, limit: int, purpose: str) -> str:
    """``value`` stripped, or a :class:`UserError` when it is empty or too long for its column.

    The limit is in UTF-8 bytes: Redshift's VARCHAR(n) counts bytes, not characters, so 128
    characters of "é" (256 bytes) would fail the write there (PostgreSQL would accept them).
    """
    value = (value or "").strip()
    if not value:
        raise UserError(f"{flag} is empty: {purpose}")
    size = len(value.encode("utf-8"))
    if size > limit:
        raise UserError(
            f"{flag} is {size} bytes long in UTF-8 ({len(value)} characters); at most {limit} bytes "
            "(Redshift VARCHAR counts bytes)"
        )
    return value


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
