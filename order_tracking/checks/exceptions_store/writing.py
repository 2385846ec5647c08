"""Writing one check's findings into the exceptions table: staged, locked, set-based."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.ddl import CreateTableAs

from order_tracking.checks.exceptions_store.common import (
    NOTES_MAX,
    RecordResult,
    check_exception_type,
)
from order_tracking.checks.rules import Annotate
from order_tracking.locked_write import locked, locked_write, session
from order_tracking.schema import TS, Tables

log = logging.getLogger(__name__)

# --- writing findings -----------------------------------------------------------------------


@contextmanager
def locked_transaction(engine: Engine, table: sa.Table) -> Iterator[Connection]:
    """One transaction that holds an exclusive write lock on ``table`` from its first statement."""
    with session(engine) as conn, locked(conn, [table]):
        yield conn


STAGED_FINDINGS = "order_tracking_staged_findings"  # a TEMPORARY table of the writing session
STAGED_CORE = "order_tracking_staged_core"  # the failing orders before their annotation (Test 3)
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
    check_exception_type(exception_type)
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
    check_exception_type(exception_type)
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
    ).where(staged.c.order_id.is_not(None))  # staged for validation too: its NULL group stays out
    insert = ex.insert().from_select(
        ["order_id", "exception_type", "detected_at", "last_seen_at", "notes"], rows
    )
    return update, delete, insert


def stage(conn: Connection, findings: sa.Select, annotate: Annotate | None = None) -> sa.Table:
    """``CREATE TEMPORARY TABLE ... AS findings`` on a :func:`session` connection, committed on its
    own (never under the lock); the staged table, with ANALYZE on PostgreSQL (planner statistics
    for the UPDATE ... FROM of a big staged table).

    With ``annotate`` (evidence that costs a lookup per failing order: Test 3's history table),
    ``findings`` is staged first and the annotation runs over those rows, in the same transaction.
    Inside the scan, PostgreSQL planned the lookup for the window's size and hashed whole history
    tables for a handful of findings (the staging took twice the rule's ``COUNT(*)`` at 3M orders);
    over a staged, analyzed table it looks up just the failing orders.
    """
    with _transaction(conn):
        if annotate is None:
            create = CreateTableAs(findings, STAGED_FINDINGS, temporary=True)
            conn.execute(create)
        else:
            core = CreateTableAs(findings, STAGED_CORE, temporary=True)
            conn.execute(core)
            analyze_staged(conn, core.table)
            create = CreateTableAs(annotate(core.table), STAGED_FINDINGS, temporary=True)
            conn.execute(create)
            conn.execute(sa.schema.DropTable(core.table))
        analyze_staged(conn, create.table)
    return create.table


def analyze_staged(conn: Connection, table: sa.Table) -> None:
    """Planner statistics of a freshly staged temporary table (PostgreSQL; Redshift and SQLite
    plan without them): its real size, not a guess from its pages."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))


def record_staged(
    conn: Connection, tables: Tables, exception_type: str, staged: sa.Table, seen_at: datetime
) -> RecordResult:
    """Write the findings :func:`stage` put in ``staged`` (this session's), as :func:`write_staged`."""
    check_exception_type(exception_type)
    new, already_open = write_staged(conn, tables, exception_type, staged, seen_at)
    return _logged(RecordResult(exception_type, new + already_open, new, already_open))


def write_staged(
    conn: Connection, tables: Tables, exception_type: str, staged: sa.Table, seen_at: datetime
) -> tuple[int, int]:
    """UPDATE / DELETE / INSERT from ``staged`` (a temporary table of ``conn``'s session) under the
    exceptions table's lock, then drop ``staged``; ``(new, already_open)``.

    One transaction (all rows of the check or none) through :func:`locked_write`: error 1023
    reruns it whole. A rerun starts from the staged rows as they were: the DELETE from staged and
    the DROP are rolled back with the rest.
    """
    update, delete, insert = write_statements(tables, exception_type, staged, seen_at)

    def write(conn: Connection) -> tuple[int, int]:
        already_open = conn.execute(update).rowcount
        conn.execute(delete)
        new = conn.execute(insert).rowcount
        conn.execute(sa.schema.DropTable(staged))
        return new, already_open

    return locked_write(conn, [tables.exceptions], write, what=f"{exception_type} exceptions write")


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
    with session(engine) as conn:
        try:
            with _transaction(conn):
                staged = stage(conn)
                if analyze:
                    analyze_staged(conn, staged)
            new, already_open = write_staged(conn, tables, exception_type, staged, seen_at)
        except BaseException:
            drop_staged(conn)
            raise
    return _logged(RecordResult(exception_type, new + already_open, new, already_open))


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """A plain transaction on a :func:`session` connection (SQLite's is in autocommit mode)."""
    if conn.dialect.name == "sqlite":
        yield  # each statement commits by itself; the staging needs no atomicity
        return
    with conn.begin():
        yield


def drop_staged(conn: Connection) -> None:
    """Drop this session's staged findings (and a core left by a failed annotation, on SQLite)."""
    try:
        with _transaction(conn):
            for name in (STAGED_FINDINGS, STAGED_CORE):
                conn.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData()), if_exists=True))
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
