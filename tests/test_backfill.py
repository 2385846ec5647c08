"""backfill: copy a flagged order's rows from the MySQL source into the mart, then close its exception.

Real MariaDB as the source; the warehouse is PostgreSQL and the Redshift twin (each test in schemas
of its own), and once the embedded SQLite. The orders are flagged by a real ``monitor`` run over
seeded data; the source is then edited so that each verdict and each refusal has an order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest
import sqlalchemy as sa

from order_tracking import db, schema, synthetic
from order_tracking.fixes.backfill_plan import MAX_STATEMENT_BYTES, OrderPlan, Refused, TableCopy
from order_tracking.fixes.backfill_plan import check_statement_sizes as sizes
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH, Settings
from tests import redshift_twin
from tests.conftest import ROOT, run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
SPATH, MISMATCH = ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH


def _engines(settings: Settings) -> tuple[sa.Engine, sa.Engine]:
    wh_url = settings.warehouse_url
    if redshift_twin.is_twin_url(wh_url):
        wh_url = redshift_twin.postgres_url(wh_url)  # the test's own reads and edits: plain PostgreSQL
    return (
        db.create_engine(wh_url, settings.warehouse_schemas),
        db.create_engine(settings.source_url, [settings.source_schema]),
    )


def _flag(checks: str = "uti_uts_alignment,missing_spath") -> subprocess.CompletedProcess:
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", checks)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def flagged(request):
    """Seeded data (2,000 orders) flagged by ``monitor``; the source edited so that:

    - ``spath[0]``, ``mismatch[0]``: ``in_source`` (the pipeline lost rows: backfill fixes them);
    - ``spath[1]``: ``missing_in_source`` (its source spath rows deleted);
    - ``mismatch[1]``: ``mismatch_in_source`` (the source's update_time 1 h past its last pathTime);
    - ``mismatch[2]``: ``missing_in_source`` (its source uni_tracking_info row deleted);
    - ``healthy``: an order with source spath rows and no exception.
    """
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=23))
    _flag()
    tables = schema.build_tables(settings)
    spath, mismatch = manifest["expected"][SPATH], manifest["expected"][MISMATCH]
    wh, src = _engines(settings)
    flagged_ids = {i for ids in manifest["expected"].values() for i in ids}
    with src.begin() as conn:
        conn.execute(tables.src_uts.delete().where(tables.src_uts.c.order_id == spath[1]))
        conn.execute(tables.src_uti.delete().where(tables.src_uti.c.order_id == mismatch[2]))
        last = conn.execute(
            sa.select(sa.func.max(tables.src_uts.c.pathTime)).where(tables.src_uts.c.order_id == mismatch[1])
        ).scalar_one()
        conn.execute(
            tables.src_uti.update()
            .where(tables.src_uti.c.order_id == mismatch[1])
            .values(update_time=sa.literal(last) + sa.text("INTERVAL 1 HOUR"))
        )
        healthy = conn.execute(
            sa.select(tables.src_uts.c.order_id)
            .where(tables.src_uts.c.order_id.not_in(flagged_ids))
            .order_by(tables.src_uts.c.order_id)
            .limit(1)
        ).scalar_one()
    yield settings, tables, wh, spath, mismatch, healthy
    wh.dispose()
    src.dispose()


def snapshot(wh: sa.Engine, tables) -> dict[str, list[tuple]]:
    """Every row of every table a backfill can change."""
    with wh.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
            for t in (tables.mart_uti, tables.mart_uts, tables.exceptions)
        }


def open_rows(wh: sa.Engine, tables) -> list[tuple[int, str]]:
    ex = tables.exceptions
    with wh.connect() as conn:
        return sorted(
            tuple(r)
            for r in conn.execute(
                sa.select(ex.c.order_id, ex.c.exception_type).where(ex.c.resolved_at.is_(None))
            )
        )


def test_each_refusal_changes_nothing(warehouse, maria_source, gx_copy, flagged):
    settings, tables, wh, spath, mismatch, healthy = flagged
    before = snapshot(wh, tables)

    spath_run = run_cli(
        "backfill", "--type", SPATH, "--order-id", str(spath[1]), "--order-id", str(healthy),
        "--by", "alice", "--apply",
    )  # fmt: skip
    mismatch_run = run_cli(
        "backfill", "--type", MISMATCH, "--order-id", str(mismatch[1]), "--order-id", str(mismatch[2]),
        "--by", "alice", "--apply",
    )  # fmt: skip
    too_many = run_cli(
        "backfill", "--type", SPATH, "--order-id", str(spath[0]), "--max-rows", "1",
        "--by", "alice", "--apply",
    )  # fmt: skip
    forced_missing = run_cli(
        "backfill", "--type", SPATH, "--order-id", str(spath[1]), "--by", "alice", "--apply", "--force"
    )

    assert snapshot(wh, tables) == before
    for proc in (spath_run, mismatch_run, too_many, forced_missing):
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "closed" not in proc.stdout
    src = settings.source_schema
    out = spath_run.stdout
    assert f"-- order {spath[1]} ({SPATH}): verdict missing_in_source;" in out
    assert f"refused: order {spath[1]} is missing from the source: {src}.uni_tracking_spath has no row" in out
    assert f"refused: order {healthy} has no open {SPATH} exception" in out and "add --force" in out
    out = mismatch_run.stdout
    assert f"-- order {mismatch[1]} ({MISMATCH}): verdict mismatch_in_source;" in out
    assert f"refused: order {mismatch[1]}: source verdict is mismatch_in_source, not in_source" in out
    missing_info = f"is missing from the source: {src}.uni_tracking_info has no row"
    assert f"refused: order {mismatch[2]} {missing_info}" in out
    assert f"refused: order {spath[0]} has " in too_many.stdout
    assert "more than --max-rows 1: a reload that large belongs to the pipeline's own COPY" in too_many.stdout
    assert "is missing from the source" in forced_missing.stdout  # --force never copies nothing


def test_dry_run_then_apply_closes_and_the_next_monitor_no_longer_finds(
    warehouse, maria_source, gx_copy, flagged, twin_recording
):
    settings, tables, wh, spath, mismatch, _ = flagged
    before = snapshot(wh, tables)
    mart, ods = settings.mart_schema, settings.ods_schema

    dry = run_cli("backfill", "--type", SPATH, "--order-id", str(spath[0]), "--by", "alice")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert snapshot(wh, tables) == before
    assert f"-- order {spath[0]} ({SPATH}): verdict in_source; source: " in dry.stdout
    copied = (
        f"from {settings.source_schema}.uni_tracking_spath, replacing 0 in {mart}.mart_uni_tracking_spath"
    )
    assert copied in dry.stdout
    lock = "LOCK " if warehouse.startswith("redshift") else "LOCK TABLE "
    assert f"BEGIN;\n{lock}{mart}.mart_uni_tracking_spath" in dry.stdout
    assert f"DELETE FROM {mart}.mart_uni_tracking_spath WHERE" in dry.stdout
    insert = f"INSERT INTO {mart}.mart_uni_tracking_spath (order_id, pathtime) VALUES ({spath[0]}, '"
    assert insert in dry.stdout
    assert f"UPDATE {ods}.order_tracking_exceptions SET resolved_at=" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout

    recording = twin_recording("backfill")
    spath_run = run_cli("backfill", "--type", SPATH, "--order-id", str(spath[0]), "--by", "alice", "--apply")
    mismatch_run = run_cli(
        "backfill", "--type", MISMATCH, "--order-id", str(mismatch[0]), "--by", "alice", "--apply"
    )

    for proc, order, etype in ((spath_run, spath[0], SPATH), (mismatch_run, mismatch[0], MISMATCH)):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"order {order}: copied " in proc.stdout
        assert f"; closed the {etype} exception" in proc.stdout
    if warehouse.startswith("redshift"):
        sent = redshift_twin.read_recording(recording)
        assert redshift_twin.refused(sent) == []
        locks = [r["sql"] for r in sent if r["sql"].startswith("LOCK ")]
        assert f"LOCK {mart}.mart_uni_tracking_info" in locks
        assert f"LOCK {mart}.mart_uni_tracking_spath" in locks
    ex = tables.exceptions
    with wh.connect() as conn:
        closed = conn.execute(
            sa.select(ex.c.order_id, ex.c.exception_type, ex.c.resolved_by, ex.c.resolution_notes).where(
                ex.c.resolved_at.is_not(None)
            )
        ).all()
    expected = {(spath[0], SPATH, "alice"), (mismatch[0], MISMATCH, "alice")}
    assert {(r[0], r[1], r[2]) for r in closed} == expected
    assert all(r[3].startswith("backfilled from the source: ") and "spath rows" in r[3] for r in closed)

    _flag()
    still_open = open_rows(wh, tables)
    assert (spath[0], SPATH) not in still_open and (mismatch[0], MISMATCH) not in still_open
    assert (spath[1], SPATH) in still_open and (mismatch[1], MISMATCH) in still_open
    with wh.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count()).where(ex.c.order_id.in_([spath[0], mismatch[0]]))
        ).scalar_one()
    assert n == 2  # the next monitor opened nothing new for them


def test_force_copies_a_source_mismatch_and_leaves_the_exception_open(
    pg_warehouse, maria_source, gx_copy, flagged
):
    _, tables, wh, _, mismatch, _ = flagged

    proc = run_cli(
        "backfill", "--type", MISMATCH, "--order-id", str(mismatch[1]), "--by", "alice", "--apply", "--force"
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"order {mismatch[1]}: copied " in proc.stdout
    assert f"the {MISMATCH} rule still fails: update_time=" in proc.stdout and "diff=3600s" in proc.stdout
    assert "exception left open" in proc.stdout
    assert (mismatch[1], MISMATCH) in open_rows(wh, tables)


def test_a_not_null_mart_column_the_source_lacks_is_refused_by_name(
    pg_warehouse, maria_source, gx_copy, flagged
):
    settings, tables, wh, spath, _, _ = flagged
    mart = f"{settings.mart_schema}.mart_uni_tracking_spath"
    with wh.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {mart} ADD COLUMN carrier varchar(8) NOT NULL DEFAULT 'x'")
        conn.exec_driver_sql(f"ALTER TABLE {mart} ALTER COLUMN carrier DROP DEFAULT")
    before = snapshot(wh, tables)

    proc = run_cli("backfill", "--type", SPATH, "--order-id", str(spath[0]), "--by", "alice", "--apply")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    refusal = f"refused: {mart} has NOT NULL column carrier that {settings.source_schema}.uni_tracking_spath"
    assert refusal in proc.stdout
    assert snapshot(wh, tables) == before


def test_concurrent_backfill_and_monitor_lose_and_duplicate_nothing(
    warehouse, maria_source, gx_copy, flagged
):
    _, tables, wh, spath, _, _ = flagged
    expected_open = set(open_rows(wh, tables))
    env = {**os.environ}

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "order_tracking", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    monitor = start("monitor", "--as-of", AS_OF.isoformat(), "--checks", "uti_uts_alignment,missing_spath")
    fill = start("backfill", "--type", SPATH, "--order-id", str(spath[0]), "--order-id", str(spath[2]),
                 "--by", "alice", "--apply")  # fmt: skip
    fill_out, fill_err = fill.communicate(timeout=600)
    mon_out, mon_err = monitor.communicate(timeout=600)

    assert fill.returncode == 0, fill_out + fill_err
    assert monitor.returncode == 1, mon_out + mon_err
    ex = tables.exceptions
    with wh.connect() as conn:
        rows = conn.execute(sa.select(ex.c.order_id, ex.c.exception_type, ex.c.resolved_by)).all()
    open_now = [(r[0], r[1]) for r in rows if r[2] is None]
    assert len(open_now) == len(set(open_now))  # never two open rows for one (order, type)
    backfilled = {(spath[0], SPATH), (spath[2], SPATH)}
    assert expected_open - backfilled <= set(open_now)  # every other finding still open
    closed = {(r[0], r[1]) for r in rows if r[2] == "alice"}
    assert closed == backfilled
    # A monitor whose rule read the mart before the copy may reopen one (a stale finding, never a
    # duplicate); the next run, after the copy, finds neither.
    _flag()
    _flag()
    assert not backfilled & set(open_rows(wh, tables))


def test_sqlite_warehouse_and_source(sqlite_urls, gx_copy):
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=23))
    _flag()
    order = manifest["expected"][MISMATCH][0]

    proc = run_cli("backfill", "--type", MISMATCH, "--order-id", str(order), "--by", "alice", "--apply")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BEGIN IMMEDIATE;" in proc.stdout and f"closed the {MISMATCH} exception" in proc.stdout
    wh, src = _engines(settings)
    try:
        assert (order, MISMATCH) not in open_rows(wh, schema.build_tables(settings))
    finally:
        wh.dispose()
        src.dispose()


def _plan(rows: list[tuple], columns: tuple[str, ...] = ("order_id", "pathtime")) -> OrderPlan:
    mart = sa.table("mart_uni_tracking_spath", *(sa.column(c, sa.String()) for c in columns), schema="sp")
    copy = TableCopy("ks.uni_tracking_spath", mart, "sp.mart_uni_tracking_spath", columns, tuple(rows), 0,
                     mart.c.order_id == 1)  # fmt: skip
    return OrderPlan(1, SPATH, None, 1, (copy,), (None, None))  # type: ignore[arg-type]


def test_inserts_are_batched_and_a_statement_over_16_mb_is_refused():
    from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

    dialect = RedshiftDialect_psycopg2()
    texts = sizes(_plan([("1", f"2026-11-24 00:00:{i % 60:02d}") for i in range(2500)]), dialect)
    assert [t.split()[0] for t in texts] == ["DELETE", "INSERT", "INSERT", "INSERT"]
    assert [t.count("), (") + 1 for t in texts[1:]] == [1000, 1000, 500]

    with pytest.raises(Refused, match="over Redshift's 16,777,216-byte statement limit: a reload that large"):
        sizes(_plan([("1", "x" * (MAX_STATEMENT_BYTES + 1))]), dialect)


# --- Redshift: locks first, error 1023 retried (fake DB-API connection) ------------------------------

SERIALIZABLE_1023 = (
    "ERROR:  1023\nDETAIL:  Serializable isolation violation on table - 156362, transactions forming "
    "the cycle are: 1235, 1234 (pid:12345)"
)


def _fake_plan(errors: int):
    """A Test 1 plan (one info row, one spath row) against a fake Redshift whose spath INSERT
    fails with error 1023 ``errors`` times."""
    from tests.fake_redshift import FakePgError, FakeRedshift

    fake = FakeRedshift()
    tables = schema.build_tables(Settings.from_env())

    def copy(mart: sa.Table, time_col: str) -> TableCopy:
        t = sa.table(mart.name, sa.column("order_id", sa.BigInteger()), sa.column(time_col, sa.DateTime()),
                     schema=mart.schema)  # fmt: skip
        return TableCopy("ks.src", t, f"{mart.schema}.{mart.name}", ("order_id", time_col),
                         ((7, AS_OF),), 1, t.c.order_id == 7)  # fmt: skip

    fake.errors["INSERT INTO settlement_public.mart_uni_tracking_spath"] = [
        FakePgError(SERIALIZABLE_1023) for _ in range(errors)
    ]
    copies = (copy(tables.mart_uti, "update_time"), copy(tables.mart_uts, "pathtime"))
    return fake, tables, OrderPlan(7, MISMATCH, None, 1, copies, (AS_OF, AS_OF))  # type: ignore[arg-type]


def _transactions(fake) -> list[list[str]]:
    out, current = [], []
    for sql, _, _ in fake.executed:
        if sql.startswith(("LOCK", "INSERT", "DELETE")):
            current.append(sql if sql.startswith("LOCK") else " ".join(sql.split()[:3]))
        elif sql in ("-- commit", "-- rollback") and current:
            out.append([*current, sql])
            current = []
    return out


def test_redshift_locks_both_mart_tables_first_and_retries_error_1023():
    from order_tracking.fixes import backfill

    fake, tables, plan = _fake_plan(errors=1)
    sleeps: list[float] = []

    attempts = backfill.copy_rows(fake.engine(), tables, plan, sleep=sleeps.append)

    assert attempts == 2 and sleeps == [backfill.SERIALIZATION_RETRY.base_delay]
    locks = [
        "LOCK settlement_public.mart_uni_tracking_info",
        "LOCK settlement_public.mart_uni_tracking_spath",
    ]
    body = [
        "DELETE FROM settlement_public.mart_uni_tracking_info",
        "INSERT INTO settlement_public.mart_uni_tracking_info",
        "DELETE FROM settlement_public.mart_uni_tracking_spath",
        "INSERT INTO settlement_public.mart_uni_tracking_spath",
    ]
    assert _transactions(fake) == [[*locks, *body, "-- rollback"], [*locks, *body, "-- commit"]]


def test_redshift_error_1023_is_retried_a_bounded_number_of_times():
    from order_tracking.errors import UserError
    from order_tracking.fixes import backfill

    fake, tables, plan = _fake_plan(errors=10)
    sleeps: list[float] = []

    with pytest.raises(
        UserError, match=r"^order 7: serializable isolation conflict .* in each of 3 attempts; "
    ):
        backfill.copy_rows(fake.engine(), tables, plan, sleep=sleeps.append)

    assert len(sleeps) == 2
    assert [t[-1] for t in _transactions(fake)] == ["-- rollback"] * 3


def test_seed_verdict_cases_give_every_verdict(sqlite_urls, monkeypatch, tmp_path):
    """``seed --verdict-cases`` (the demo's data): with the demo's limit, each Test 1/2 finding gets
    the verdict the manifest lists, and every verdict word occurs."""
    import json

    from order_tracking.checks import source_verdict
    from order_tracking.synthetic.verdict_cases import DEMO_LIMIT

    path = tmp_path / "manifest.json"
    proc = run_cli(
        "seed", "--orders", "2000", "--random-seed", "23", "--as-of", AS_OF.isoformat(),
        "--manifest", str(path), "--quiet", "--verdict-cases",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "source verdict mismatch_in_source: UTI_UTS_TIME_MISMATCH " in proc.stdout
    cases = json.loads(path.read_text())["verdict_cases"]
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_CHECK_LIMIT", str(DEMO_LIMIT))
    settings = Settings.from_env()
    _, src = _engines(settings)
    seen = set()
    try:
        for etype in (SPATH, MISMATCH):
            expected = {i: v for v, per_type in cases.items() for i in per_type.get(etype, [])}
            got = source_verdict.look_up(src, settings, etype, sorted(expected))
            assert {i: v.verdict for i, v in got.items()} == expected
            seen |= set(expected.values())
    finally:
        src.dispose()
    assert seen == set(source_verdict.VERDICTS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--order-id", "1", "--order-id", "1"], "error: an --order-id is given twice"),
        (["--order-id", "1", "--max-rows", "0"], "error: --max-rows must be between 1 and 1,000,000, not 0"),
        (["--order-id", "1", "--by", " "], "error: --by is empty: say who backfills the orders"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_3(sqlite_urls, args, message):
    by = [] if "--by" in args else ["--by", "alice"]
    proc = run_cli("backfill", "--type", SPATH, *args, *by)

    assert proc.returncode == 3
    assert proc.stderr.strip() == message and proc.stdout == ""


def test_an_unreachable_source_is_an_error_naming_it(sqlite_urls, gx_copy):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=23, skip_source=True))
    _flag("missing_spath")

    proc = run_cli(
        "--source-url", "mysql+pymysql://root@127.0.0.1:1/ks", "backfill", "--type", SPATH,
        "--order-id", "1", "--by", "alice",
    )  # fmt: skip

    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert (
        proc.stderr.startswith("error: ") and "source" in proc.stderr and len(proc.stderr.splitlines()) == 1
    )
