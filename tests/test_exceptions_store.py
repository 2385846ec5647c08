"""The exceptions store (docs/design.md section 4) on real PostgreSQL, the Redshift twin and SQLite,
plus its CLI.

Findings come from a small ``findings_src(order_id, notes, round)`` table of the test's own in
the mart schema, standing in for the rule SQL (a Select labelled ``order_id``, ``notes``).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import ROOT, run_cli
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

import tests.fake_redshift  # noqa: F401 - the one registration of redshift+fakeredshift
from order_tracking import db, schema
from order_tracking.checks import exceptions_store as store
from order_tracking.errors import UserError
from order_tracking.settings import (
    ORDER_MISSING_SPATH,
    REACTIVATED_ORDER_MISSING_ECS,
    UTI_UTS_TIME_MISMATCH,
    Settings,
)

T0 = datetime(2026, 1, 10, 3, 0, 0)

# The spec's "Querying exceptions manually" block, copied verbatim.
SPEC_MANUAL_SQL = """\
-- All unresolved exceptions
SELECT exception_type, COUNT(*) AS cnt
FROM settlement_ods.order_tracking_exceptions
WHERE resolved_at IS NULL
GROUP BY exception_type
ORDER BY cnt DESC;

-- Detail for a specific exception type
SELECT order_id, detected_at, notes
FROM settlement_ods.order_tracking_exceptions
WHERE exception_type = 'UTI_UTS_TIME_MISMATCH'
  AND resolved_at IS NULL
ORDER BY detected_at DESC;

-- Resolve an exception after manual fix
UPDATE settlement_ods.order_tracking_exceptions
SET resolved_at = CURRENT_TIMESTAMP, resolved_by = 'your-name', resolution_notes = 'reason'
WHERE order_id = <id> AND exception_type = '<type>' AND resolved_at IS NULL;
"""


def findings_table(md: sa.MetaData, mart_schema: str) -> sa.Table:
    return sa.Table(
        "findings_src",
        md,
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("notes", sa.String(200)),
        sa.Column("round", sa.Integer, nullable=False, server_default="0"),
        schema=mart_schema,
    )


@dataclass
class Warehouse:
    engine: Engine
    tables: schema.Tables
    findings: sa.Table

    def set_findings(self, rows: list[tuple[int, str]], round_: int = 0) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.findings.delete().where(self.findings.c.round == round_))
            if rows:
                conn.execute(
                    self.findings.insert(),
                    [{"order_id": o, "notes": n, "round": round_} for o, n in rows],
                )

    def select(self, round_: int = 0) -> sa.Select:
        f = self.findings
        return sa.select(f.c.order_id.label("order_id"), f.c.notes.label("notes")).where(f.c.round == round_)

    def rows(self, exception_type: str | None = None) -> list[sa.Row]:
        ex = self.tables.exceptions
        q = sa.select(ex).order_by(ex.c.order_id, ex.c.exception_id)
        if exception_type:
            q = q.where(ex.c.exception_type == exception_type)
        with self.engine.connect() as conn:
            return list(conn.execute(q))


def _make_warehouse() -> Warehouse:
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
    findings = findings_table(tables.metadata, settings.mart_schema)
    schema.create_tables(engine, [*tables.ods_tables, findings])
    return Warehouse(engine, tables, findings)


@pytest.fixture(params=["postgresql", "redshift", "sqlite"])
def wh(request: pytest.FixtureRequest, schemas) -> Warehouse:
    """The warehouse on every backend (Redshift: the twin), with the ods tables and findings_src."""
    fixture = {"postgresql": "pg_warehouse", "redshift": "redshift_warehouse", "sqlite": "sqlite_urls"}
    request.getfixturevalue(fixture[request.param])
    w = _make_warehouse()
    yield w
    w.engine.dispose()


@pytest.fixture
def pg(pg_warehouse) -> Warehouse:
    w = _make_warehouse()
    yield w
    w.engine.dispose()


def _open(rows: list[sa.Row]) -> list[sa.Row]:
    return [r for r in rows if r.resolved_at is None]


# --- record_findings ------------------------------------------------------------------------


def test_first_run_inserts_rerun_only_moves_last_seen(wh: Warehouse) -> None:
    # order 3 appears twice: recorded once
    wh.set_findings([(1, "diff=1s"), (2, "diff=2s"), (3, "diff=3s"), (3, "diff=9s"), (4, "diff=4s")])
    first = store.record_findings(wh.engine, wh.tables, UTI_UTS_TIME_MISMATCH, wh.select(), T0)
    assert first == store.RecordResult(UTI_UTS_TIME_MISMATCH, found=4, new=4, already_open=0)
    rows = wh.rows()
    assert [r.order_id for r in rows] == [1, 2, 3, 4]
    assert all(r.detected_at == T0 and r.last_seen_at == T0 and r.resolved_at is None for r in rows)
    assert rows[2].notes == "diff=9s"  # MAX(notes) of the duplicates

    wh.set_findings([(1, "diff=11s"), (2, "diff=2s"), (3, "diff=3s"), (4, "diff=4s")])
    later = T0 + timedelta(days=1)
    again = store.record_findings(wh.engine, wh.tables, UTI_UTS_TIME_MISMATCH, wh.select(), later)
    assert again == store.RecordResult(UTI_UTS_TIME_MISMATCH, found=4, new=0, already_open=4)
    rows = wh.rows()
    assert len(rows) == 4
    assert all(r.detected_at == T0 and r.last_seen_at == later for r in rows)
    assert rows[0].notes == "diff=11s"  # the newest observation

    # Another type is independent; an order not found this time keeps its old last_seen_at.
    wh.set_findings([(1, "no spath")])
    other = store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), later)
    assert (other.new, other.already_open) == (1, 0)
    assert len(wh.rows(UTI_UTS_TIME_MISMATCH)) == 4


def test_no_findings_writes_nothing(wh: Warehouse) -> None:
    res = store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), T0)
    assert res == store.RecordResult(ORDER_MISSING_SPATH, 0, 0, 0)
    assert wh.rows() == []


def test_unknown_type_is_refused_before_writing(wh: Warehouse) -> None:
    wh.set_findings([(1, "x")])
    with pytest.raises(UserError, match=r"unknown exception type 'NOPE'.*UTI_UTS_TIME_MISMATCH"):
        store.record_findings(wh.engine, wh.tables, "NOPE", wh.select(), T0)
    assert wh.rows() == []


def test_resolved_exception_that_recurs_opens_a_new_row(wh: Warehouse) -> None:
    wh.set_findings([(7, "first"), (8, "first")])
    store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), T0)
    closed = store.resolve(
        wh.engine, wh.tables, order_ids=[7], exception_type=ORDER_MISSING_SPATH,
        all_of_type=False, by="ana", notes="backfilled", now=T0 + timedelta(hours=1),
    )  # fmt: skip
    assert closed == 1

    wh.set_findings([(7, "again"), (8, "again")])
    res = store.record_findings(
        wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), T0 + timedelta(days=1)
    )
    assert (res.found, res.new, res.already_open) == (2, 1, 1)
    rows7 = [r for r in wh.rows() if r.order_id == 7]
    assert len(rows7) == 2
    resolved, reopened = rows7
    # the resolved row is untouched
    assert (resolved.resolved_by, resolved.notes, resolved.last_seen_at) == ("ana", "first", T0)
    assert reopened.resolved_at is None and reopened.detected_at == T0 + timedelta(days=1)
    assert reopened.notes == "again"


def test_over_200_findings_while_some_are_open_records_every_one(wh: Warehouse) -> None:
    """The staged path with open rows (issue 10 item 3): on Redshift the DELETE of already-open
    orders from the staged table used to compile uncorrelated and delete every staged row, so
    the new findings were lost, ``new=0`` was reported and a recurring resolved one stayed shut."""
    wh.set_findings([(o, "before") for o in range(1, 51)])
    store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), T0)
    store.resolve(wh.engine, wh.tables, order_ids=[50], exception_type=ORDER_MISSING_SPATH,
                  all_of_type=False, by="ana", notes="fixed")  # fmt: skip
    wh.set_findings([(o, "now") for o in range(1, 301)])  # 300 findings: 49 open, 1 resolved
    res = store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, wh.select(), T0 + timedelta(1))
    assert (res.found, res.new, res.already_open) == (300, 251, 49)
    open_rows = _open(wh.rows(ORDER_MISSING_SPATH))
    assert [r.order_id for r in open_rows] == list(range(1, 301))
    assert all(r.notes == "now" for r in open_rows)
    assert len(wh.rows(ORDER_MISSING_SPATH)) == 301  # the resolved row stays, a new one opened


_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime, timedelta
    import sqlalchemy as sa
    from order_tracking import db, schema
    from order_tracking.checks import exceptions_store as store
    from order_tracking.settings import Settings

    start, rounds = float(sys.argv[1]), int(sys.argv[2])
    s = Settings.from_env()
    t = schema.build_tables(s)
    f = sa.Table("findings_src", t.metadata, sa.Column("order_id", sa.BigInteger),
                 sa.Column("notes", sa.String), sa.Column("round", sa.Integer), schema=s.mart_schema)
    engine = db.create_engine(s.warehouse_url, s.warehouse_schemas)
    with engine.connect():
        pass
    while time.time() < start:
        time.sleep(0.001)
    out = []
    for r in range(rounds):
        sel = sa.select(f.c.order_id, f.c.notes).where(f.c.round == r)
        res = store.record_findings(engine, t, "ORDER_MISSING_SPATH", sel,
                                    datetime(2026, 1, 1) + timedelta(minutes=r))
        out.append([res.found, res.new, res.already_open])
    print(json.dumps(out))
    """
)


def test_two_concurrent_writers_leave_one_open_row_per_order(wh: Warehouse) -> None:
    rounds = 6
    # round r: orders 50r .. 50r+199 (200 findings, 150 shared with the previous round)
    for r in range(rounds):
        wh.set_findings([(o, f"round {r}") for o in range(50 * r, 50 * r + 200)], round_=r)
    start = time.time() + 4  # both children are imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(start), str(rounds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out))

    distinct_orders = 50 * (rounds - 1) + 200
    assert all(found == 200 for res in results for found, _, _ in res)
    assert sum(new for res in results for _, new, _ in res) == distinct_orders
    rows = wh.rows()
    assert len(rows) == distinct_orders
    assert sorted(r.order_id for r in rows) == list(range(distinct_orders))
    assert all(r.resolved_at is None for r in rows)


def test_record_findings_stages_once_and_locks_only_the_write(pg: Warehouse) -> None:
    """200k findings: the rule runs once into a temp table BEFORE the lock; under the lock only
    UPDATE / DELETE / INSERT from the staged rows; Python memory stays flat."""
    n = 200_000
    g = sa.func.generate_series(1, n).alias("g")
    gcol = sa.literal_column("g", sa.BigInteger)
    findings = sa.select(
        gcol.label("order_id"), sa.func.concat("diff=", gcol, "s").label("notes")
    ).select_from(g)

    statements: list[str] = []

    @event.listens_for(pg.engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany) -> None:
        assert not executemany
        statements.append(statement)

    tracemalloc.start()
    try:
        first = store.record_findings(pg.engine, pg.tables, UTI_UTS_TIME_MISMATCH, findings, T0)
        second = store.record_findings(
            pg.engine, pg.tables, UTI_UTS_TIME_MISMATCH, findings, T0 + timedelta(1)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    event.remove(pg.engine, "before_cursor_execute", _capture)

    assert (first.new, first.already_open) == (n, 0)
    assert (second.found, second.new, second.already_open) == (n, 0, n)
    assert peak < 20 * 1024 * 1024, f"peak Python memory {peak / 1e6:.1f} MB"
    mine = [s for s in statements if not s.lstrip().upper().startswith(("SELECT 1", "SELECT PG_", "SHOW"))]
    kinds = [" ".join(s.split()[:2]).upper() for s in mine]
    one = ["CREATE TEMPORARY", "ANALYZE ORDER_TRACKING_STAGED_FINDINGS", "LOCK TABLE",
           "UPDATE " + pg.tables.exceptions.schema.upper() + ".ORDER_TRACKING_EXCEPTIONS",
           "DELETE FROM", "INSERT INTO", "DROP TABLE"]  # fmt: skip
    assert kinds == one * 2, mine
    assert sum("generate_series" in s for s in mine) == 2  # the rule: once per write, before LOCK
    assert "generate_series" in mine[0] and "IN SHARE ROW EXCLUSIVE MODE" in mine[2]
    assert "INSERT INTO" in mine[5] and ") SELECT " in mine[5]
    with pg.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(pg.tables.exceptions)) == n


def test_record_rows_writes_the_given_rows_without_any_select(wh: Warehouse) -> None:
    """Fetched findings: one multi-row INSERT into the staged table, nothing read from the mart."""
    statements: list[str] = []

    @event.listens_for(wh.engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany) -> None:
        assert not executemany
        statements.append(statement)

    store.record_rows(wh.engine, wh.tables, ORDER_MISSING_SPATH, [(1, "a"), (2, "b")], T0)
    rows = [(i, f"n{i}") for i in range(2, 200)] + [(None, "no key"), (5, "n5")]
    res = store.record_rows(wh.engine, wh.tables, ORDER_MISSING_SPATH, rows, T0 + timedelta(hours=1))
    event.remove(wh.engine, "before_cursor_execute", _capture)

    assert (res.found, res.new, res.already_open) == (198, 197, 1)
    got = {r.order_id: (r.notes, r.detected_at, r.last_seen_at) for r in wh.rows(ORDER_MISSING_SPATH)}
    assert sorted(got) == list(range(1, 200))
    assert got[1] == ("a", T0, T0) and got[2] == ("n2", T0, T0 + timedelta(hours=1))
    assert got[150] == ("n150", T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    assert not any("findings_src" in s or "mart_" in s for s in statements)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO ORDER_TRACKING_STAGED")]
    assert len(inserts) == 2 and inserts[1].count("VALUES") == 1 and inserts[1].count("), (") == 197


def test_null_order_ids_are_skipped_and_the_rest_written(wh: Warehouse) -> None:
    """A finding with a NULL order_id cannot be keyed: it is left out, the others are written
    (before: the staged INSERT failed on NOT NULL and every finding of the check was lost)."""
    f = sa.Table(
        "findings_null",
        sa.MetaData(),
        sa.Column("order_id", sa.BigInteger),  # nullable, as production may have it
        sa.Column("notes", sa.String(50)),
        schema=wh.findings.schema,
    )
    f.create(wh.engine)
    with wh.engine.begin() as conn:
        conn.execute(f.insert(), [{"order_id": o, "notes": "x"} for o in (None, 7, None, 8, 8)])
    sel = sa.select(f.c.order_id, f.c.notes)
    res = store.record_findings(wh.engine, wh.tables, ORDER_MISSING_SPATH, sel, T0)
    assert (res.found, res.new, res.already_open) == (2, 2, 0)
    assert [r.order_id for r in wh.rows()] == [7, 8]


class _FakeCursor:
    """Just enough of a psycopg2 cursor for the dialect's first-connect queries and our DML."""

    def __init__(self, conn: _FakeConnection) -> None:
        self.connection, self.rows, self.rowcount, self.description = conn, [], -1, None

    def execute(self, sql: str, params=None) -> None:
        self.connection.log.append(sql)
        low = sql.lower()
        if low.startswith(("select", "show")):
            value = REDSHIFT_VERSION if "version()" in low else "on"
            self.rows, self.description = [(value,)], [("v", None, None, None, None, None, None)]
        else:
            self.rows, self.description, self.rowcount = [], None, 5

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self):
        rows, self.rows = self.rows, []
        return rows

    def close(self) -> None:
        pass


class _FakeConnection:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.notices: list[str] = []

    def cursor(self, *args, **kwargs) -> _FakeCursor:
        return _FakeCursor(self)

    def commit(self) -> None:
        self.log.append("COMMIT")

    def rollback(self) -> None:
        self.log.append("ROLLBACK")

    def close(self) -> None:
        pass


REDSHIFT_VERSION = (
    "PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 "
    "(Red Hat 3.4.2-6.fc3), Redshift 1.0.12103"
)


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # redshift dialect: no statement cache
def test_redshift_sql_locks_and_is_set_based() -> None:
    """What record_findings sends to Redshift, captured by a fake DB-API connection."""
    fake = _FakeConnection()
    engine = sa.create_engine("redshift+fakeredshift://u@h/db", creator=lambda: fake, use_native_hstore=False)
    settings = Settings(warehouse_url="redshift+psycopg2://u@h/db", source_url="sqlite:///x.db")
    tables = schema.build_tables(settings)
    uti = tables.mart_uti
    findings = sa.select(uti.c.order_id, sa.literal("late").label("notes")).where(
        uti.c.update_time > sa.bindparam("window_start", T0 - timedelta(hours=24))
    )
    with engine.connect():  # first connect: the dialect's own probing queries
        pass
    fake.log.clear()
    result = store.record_findings(engine, tables, UTI_UTS_TIME_MISMATCH, findings, T0)
    staged_log, fake.log[:] = list(fake.log), []
    from_rows = store.record_rows(engine, tables, UTI_UTS_TIME_MISMATCH, [(1, "a"), (2, None)], T0)
    engine.dispose()

    assert result == store.RecordResult(UTI_UTS_TIME_MISMATCH, found=10, new=5, already_open=5)
    assert from_rows == result  # the fake cursor's rowcount
    ctas, commit1, lock, upd_sql, del_sql, ins_sql, drop, commit2 = staged_log[:8]
    # The rule runs once, in the staging transaction, committed before the lock is taken.
    assert ctas.startswith(
        "CREATE TEMPORARY TABLE order_tracking_staged_findings AS SELECT findings.order_id"
    )
    assert "FROM settlement_public.mart_uni_tracking_info" in ctas
    assert "WHERE findings.order_id IS NOT NULL GROUP BY findings.order_id" in ctas
    assert (commit1, lock, commit2) == ("COMMIT", "LOCK settlement_ods.order_tracking_exceptions", "COMMIT")
    assert upd_sql.startswith("UPDATE settlement_ods.order_tracking_exceptions SET last_seen_at=")
    assert " FROM order_tracking_staged_findings WHERE " in upd_sql
    assert "resolved_at IS NULL" in upd_sql
    assert del_sql.startswith(
        "DELETE FROM order_tracking_staged_findings WHERE order_tracking_staged_findings.order_id IN "
        "(SELECT settlement_ods.order_tracking_exceptions.order_id \n"
        "FROM settlement_ods.order_tracking_exceptions \n"
    )
    assert ins_sql.startswith(
        "INSERT INTO settlement_ods.order_tracking_exceptions "
        "(order_id, exception_type, detected_at, last_seen_at, notes) "
        "SELECT order_tracking_staged_findings.order_id,"
    )
    # The staged NULL group (staged for validation's count too) is never written.
    assert ins_sql.endswith(
        "FROM order_tracking_staged_findings \nWHERE order_tracking_staged_findings.order_id IS NOT NULL"
    )
    assert drop.strip() == "DROP TABLE order_tracking_staged_findings"  # in the write's transaction
    assert set(staged_log[8:]) <= {"ROLLBACK"}  # the pool's reset on check-in, nothing else
    # Fetched rows: a temp table and ONE multi-row INSERT, then the same locked write; no mart read.
    create, insert_rows, commit, lock2 = fake.log[:4]
    assert create.strip().startswith("CREATE TEMPORARY TABLE order_tracking_staged_findings (")
    assert insert_rows == (
        "INSERT INTO order_tracking_staged_findings (order_id, notes) "
        "VALUES (%(order_id_m0)s, %(notes_m0)s), (%(order_id_m1)s, %(notes_m1)s)"
    )
    assert (commit, lock2) == ("COMMIT", lock)
    assert fake.log[4:7] == [upd_sql, del_sql, ins_sql]
    assert not any("mart_" in sql for sql in fake.log)


def test_staged_delete_does_not_rejoin_the_staged_table_in_any_dialect() -> None:
    """sqlalchemy-redshift compiles ``DELETE ... WHERE EXISTS (...)`` uncorrelated (the staged
    table reappears in the subquery's FROM, so every staged row is deleted as soon as one finding
    is open, issue 10 item 3). The DELETE must name the staged table only outside its subquery."""
    tables = schema.build_tables(Settings(warehouse_url="redshift+psycopg2://u@h/db", source_url="sqlite://"))
    staged = sa.Table(store.STAGED_FINDINGS, sa.MetaData(), sa.Column("order_id", sa.BigInteger),
                      sa.Column("notes", sa.String))  # fmt: skip
    _, delete, _ = store.write_statements(tables, UTI_UTS_TIME_MISMATCH, staged, T0)
    for dialect in (RedshiftDialect_psycopg2(), postgresql.dialect(), sqlite.dialect()):
        sql = str(delete.compile(dialect=dialect))
        head, _, sub = sql.partition("(SELECT ")
        assert head == f"DELETE FROM {staged.name} WHERE {staged.name}.order_id IN ", (dialect.name, sql)
        assert staged.name not in sub, (dialect.name, sql)  # not re-joined inside: correlated


# --- reading & the spec's manual queries ----------------------------------------------------


def _seed_three(w: Warehouse) -> None:
    w.set_findings([(11, "diff=5s"), (12, "diff=7s")])
    store.record_findings(w.engine, w.tables, UTI_UTS_TIME_MISMATCH, w.select(), T0)
    w.set_findings([(13, "no spath anywhere")])
    store.record_findings(w.engine, w.tables, ORDER_MISSING_SPATH, w.select(), T0 + timedelta(hours=2))


def test_check_unresolved_raises_with_summary(wh: Warehouse) -> None:
    assert store.check_unresolved(wh.engine, wh.tables) == {}
    _seed_three(wh)
    assert store.unresolved_summary(wh.engine, wh.tables) == {
        UTI_UTS_TIME_MISMATCH: 2,
        ORDER_MISSING_SPATH: 1,
    }
    with pytest.raises(store.UnresolvedExceptionsError) as info:
        store.check_unresolved(wh.engine, wh.tables)
    assert str(info.value) == "3 unresolved exceptions: UTI_UTS_TIME_MISMATCH=2, ORDER_MISSING_SPATH=1"
    assert info.value.summary == {UTI_UTS_TIME_MISMATCH: 2, ORDER_MISSING_SPATH: 1}


def test_list_exceptions_and_summary(wh: Warehouse) -> None:
    _seed_three(wh)
    now = T0 + timedelta(days=3)
    rows = store.list_exceptions(wh.engine, wh.tables, type=UTI_UTS_TIME_MISMATCH, now=now)
    assert [r.order_id for r in rows] == [11, 12]
    assert rows[0].age == timedelta(days=3) and rows[0].notes == "diff=5s"
    by_order = store.list_exceptions(wh.engine, wh.tables, order_ids=[13, 12], now=now)
    assert [(r.order_id, r.exception_type) for r in by_order] == [
        (13, ORDER_MISSING_SPATH),
        (12, UTI_UTS_TIME_MISMATCH),
    ]
    summary = store.summary_by_type(wh.engine, wh.tables)
    assert [(s.exception_type, s.count) for s in summary] == [
        (UTI_UTS_TIME_MISMATCH, 2),
        (ORDER_MISSING_SPATH, 1),
    ]
    assert summary[1].oldest_detected_at == T0 + timedelta(hours=2)


def test_spec_manual_queries_run_verbatim_on_postgresql(pg: Warehouse, schemas) -> None:
    _seed_three(pg)
    sql = SPEC_MANUAL_SQL.replace("settlement_ods", schemas.ods)
    sql = sql.replace("<id>", "12").replace("<type>", UTI_UTS_TIME_MISMATCH)
    summary_q, detail_q, resolve_q = (s.strip() for s in sql.split(";") if s.strip())
    with pg.engine.begin() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql(summary_q)] == [
            (UTI_UTS_TIME_MISMATCH, 2),
            (ORDER_MISSING_SPATH, 1),
        ]
        assert [tuple(r) for r in conn.exec_driver_sql(detail_q)] == [
            (11, T0, "diff=5s"),
            (12, T0, "diff=7s"),
        ]
        assert conn.exec_driver_sql(resolve_q).rowcount == 1
        assert conn.exec_driver_sql(resolve_q).rowcount == 0  # only open rows are touched
    row = next(r for r in pg.rows() if r.order_id == 12)
    assert (row.resolved_by, row.resolution_notes) == ("your-name", "reason")
    assert store.unresolved_summary(pg.engine, pg.tables) == {
        UTI_UTS_TIME_MISMATCH: 1,
        ORDER_MISSING_SPATH: 1,
    }


# --- resolve --------------------------------------------------------------------------------


def _resolve(w: Warehouse, **kw) -> int:
    args = {"order_ids": None, "exception_type": UTI_UTS_TIME_MISMATCH, "all_of_type": False,
            "by": "ana", "notes": "fixed", "now": T0 + timedelta(days=1)}  # fmt: skip
    return store.resolve(w.engine, w.tables, **{**args, **kw})


def test_resolve_bulk_by_type_is_idempotent(wh: Warehouse) -> None:
    _seed_three(wh)
    assert _resolve(wh, all_of_type=True) == 2
    before = wh.rows()
    with pytest.raises(UserError, match="no open UTI_UTS_TIME_MISMATCH exceptions to resolve"):
        _resolve(wh, all_of_type=True, by="bob", notes="again")
    assert wh.rows() == before
    closed = [r for r in before if r.exception_type == UTI_UTS_TIME_MISMATCH]
    assert all(r.resolved_by == "ana" and r.resolution_notes == "fixed" for r in closed)
    assert all(r.resolved_at == T0 + timedelta(days=1) for r in closed)
    assert store.unresolved_summary(wh.engine, wh.tables) == {ORDER_MISSING_SPATH: 1}


def test_resolve_several_ids_all_or_nothing(wh: Warehouse) -> None:
    _seed_three(wh)
    before = wh.rows()
    # 13 has no open UTI_UTS_TIME_MISMATCH row: refuse all, name it
    with pytest.raises(UserError, match="no open UTI_UTS_TIME_MISMATCH exceptions for order_id 13"):
        _resolve(wh, order_ids=[11, 13])
    assert wh.rows() == before
    assert _resolve(wh, order_ids=[11, 12]) == 2
    with pytest.raises(UserError, match="for order_id 11, 12; nothing was changed"):
        _resolve(wh, order_ids=[12, 11])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"exception_type": "BOGUS", "all_of_type": True}, "unknown exception type 'BOGUS'; valid types: "
         "UTI_UTS_TIME_MISMATCH, ORDER_MISSING_SPATH, REACTIVATED_ORDER_MISSING_ECS"),
        ({"order_ids": [11], "by": "  "}, "--by is empty"),
        ({"order_ids": [11], "notes": ""}, "--notes is empty"),
        ({"order_ids": [11], "all_of_type": True}, "not both"),
        ({}, "give at least one --order-id"),
        ({"exception_type": REACTIVATED_ORDER_MISSING_ECS, "all_of_type": True}, "no open REACTIVATED"),
    ],
)  # fmt: skip
def test_resolve_refuses_bad_input(wh: Warehouse, kw: dict, message: str) -> None:
    _seed_three(wh)
    before = wh.rows()
    with pytest.raises(UserError) as info:
        _resolve(wh, **kw)
    assert message in str(info.value)
    assert wh.rows() == before


# --- CLI ------------------------------------------------------------------------------------


def test_cli_exceptions_and_resolve(wh: Warehouse) -> None:
    _seed_three(wh)
    res = run_cli("exceptions", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        {"exception_type": UTI_UTS_TIME_MISMATCH, "count": 2, "oldest_detected_at": T0.isoformat(),
         "newest_last_seen_at": T0.isoformat()},
        {"exception_type": ORDER_MISSING_SPATH, "count": 1,
         "oldest_detected_at": (T0 + timedelta(hours=2)).isoformat(),
         "newest_last_seen_at": (T0 + timedelta(hours=2)).isoformat()},
    ]  # fmt: skip

    res = run_cli("exceptions", "--type", UTI_UTS_TIME_MISMATCH, "--format", "csv")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["order_id"] for r in rows] == ["11", "12"]
    assert rows[0]["detected_at"] == "2026-01-10 03:00:00" and rows[0]["notes"] == "diff=5s"
    assert rows[0]["age"].endswith("h") and "d " in rows[0]["age"]  # days and hours

    res = run_cli("exceptions", "--order-id", "13")
    assert res.returncode == 0, res.stderr
    header, line = res.stdout.splitlines()
    assert header.split()[:5] == ["order_id", "exception_type", "detected_at", "last_seen_at", "age"]
    assert line.startswith("13") and ORDER_MISSING_SPATH in line

    res = run_cli("resolve", "--order-id", "11", "--order-id", "12", "--type", UTI_UTS_TIME_MISMATCH,
                  "--by", "ana", "--notes", "backfilled")  # fmt: skip
    assert (res.returncode, res.stdout.strip()) == (0, "closed 2 open UTI_UTS_TIME_MISMATCH exceptions"), (
        res.stderr
    )

    res = run_cli("resolve", "--all-of-type", "--type", UTI_UTS_TIME_MISMATCH, "--by", "ana", "--notes", "x")
    assert res.returncode == 3
    assert (
        res.stderr.strip()
        == "error: no open UTI_UTS_TIME_MISMATCH exceptions to resolve; nothing was changed"
    )

    res = run_cli("resolve", "--all-of-type", "--type", "WRONG", "--by", "ana", "--notes", "x")
    assert res.returncode == 3 and "unknown exception type 'WRONG'" in res.stderr

    res = run_cli("exceptions", "--include-resolved", "--type", UTI_UTS_TIME_MISMATCH, "--format", "json")
    resolved = json.loads(res.stdout)
    assert [(r["order_id"], r["resolved_by"], r["resolution_notes"]) for r in resolved] == [
        (11, "ana", "backfilled"),
        (12, "ana", "backfilled"),
    ]
    res = run_cli("exceptions")
    assert (
        res.returncode == 0 and UTI_UTS_TIME_MISMATCH not in res.stdout and ORDER_MISSING_SPATH in res.stdout
    )


def test_cli_without_table_says_run_init_db(schemas, sqlite_urls) -> None:
    settings = Settings.from_env()
    empty = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)  # files, no tables
    empty.connect().close()
    empty.dispose()
    res = run_cli("exceptions")
    assert res.returncode == 3
    path = sqlite_urls[0].removeprefix("sqlite:///")
    assert res.stderr.strip() == (
        f"error: table {schemas.ods}.order_tracking_exceptions does not exist in warehouse database "
        f"{path!r} (sqlite:///{path}); run `python -m order_tracking init-db` first, "
        "or point the warehouse URL at the database that has it"
    )


def test_failed_write_leaves_nothing_and_the_next_write_works(pg: Warehouse) -> None:
    """The INSERT fails (a CHECK constraint stands in for any error): the UPDATE of the same check
    is rolled back with it, and the staged table is gone, so the next write on the pooled
    connection does not trip over it."""
    store.record_rows(pg.engine, pg.tables, ORDER_MISSING_SPATH, [(1, "first")], T0)
    ex = pg.tables.exceptions
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text(f'ALTER TABLE "{ex.schema}".{ex.name} ADD CONSTRAINT small CHECK (order_id < 1000)')
        )
    too_big = sa.select(sa.literal(5000).label("order_id"), sa.literal("x").label("notes"))
    with pytest.raises(sa.exc.IntegrityError):  # fetched rows
        store.record_rows(
            pg.engine, pg.tables, ORDER_MISSING_SPATH, [(1, "x"), (5000, "x")], T0 + timedelta(1)
        )
    with pytest.raises(sa.exc.IntegrityError):  # staged by the rule
        store.record_findings(pg.engine, pg.tables, ORDER_MISSING_SPATH, too_big, T0 + timedelta(1))
    assert [(r.order_id, r.notes, r.last_seen_at) for r in pg.rows()] == [(1, "first", T0)]
    res = store.record_rows(
        pg.engine, pg.tables, ORDER_MISSING_SPATH, [(1, "x"), (7, "x")], T0 + timedelta(hours=2)
    )
    assert (res.new, res.already_open) == (1, 1)
