"""The vacuum plan: real PostgreSQL and SQLite runs, and Redshift through a fake DB-API connection.

Redshift cannot run here, so its path goes through the real engine code with sqlalchemy-redshift's
dialect and a fake psycopg2-like connection that records every SQL string it receives (asserted
exactly) and answers svv_table_info / sys_vacuum_history with canned rows.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import PG_URL, run_cli
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from order_tracking import db, maintenance, schema
from order_tracking.errors import UserError
from order_tracking.maintenance.metrics import read_metrics
from order_tracking.maintenance.plan import dialect_named, plan_statements
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.fake_redshift import FakePgError, FakeRedshift
from tests.pg_roles import grant_read, restricted_role

UTI, UTS, ECS = "mart_uni_tracking_info", "mart_uni_tracking_spath", "mart_ecs_order_info"
MARTS = (UTI, UTS, ECS)
FAST = maintenance.RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01)

REDSHIFT_PLAN_SQL = [
    "VACUUM DELETE ONLY settlement_public.mart_uni_tracking_info",
    "ANALYZE settlement_public.mart_uni_tracking_info",
    "VACUUM DELETE ONLY settlement_public.mart_uni_tracking_spath",
    "ANALYZE settlement_public.mart_uni_tracking_spath",
    "VACUUM DELETE ONLY settlement_public.mart_ecs_order_info",
    "VACUUM SORT ONLY settlement_public.mart_ecs_order_info",
    "ANALYZE settlement_public.mart_ecs_order_info",
]


def svv(rows: int, ghost: int, unsorted: float = 0.0, size_mb: int = 10) -> dict:
    return {
        "tbl_rows": rows + ghost,
        "estimated_visible_rows": rows,
        "unsorted": unsorted,
        "stats_off": 5.0,
        "size": size_mb,
    }


def history(table: str, vacuum_type: str = "Delete", status: str = "Complete") -> dict:
    now = datetime.now(UTC).replace(tzinfo=None)
    return {
        "vacuum_type": vacuum_type,
        "status": status,
        "start_time": now,
        "end_time": now,
        "reclaimed_rows": 100,
    }


@pytest.fixture
def fake() -> FakeRedshift:
    state = FakeRedshift()
    for table in MARTS:
        state.svv[table] = [svv(1000, 100, unsorted=12.5, size_mb=20), svv(1000, 0, unsorted=0.0, size_mb=12)]
        state.history[table] = [history(table)]
    return state


# --- Redshift ---------------------------------------------------------------------------------------


def test_redshift_plan_sql_is_exact() -> None:
    settings = Settings.from_env()
    sql = [s.sql for s in plan_statements(RedshiftDialect_psycopg2(), settings.mart_schema)]
    assert sql == REDSHIFT_PLAN_SQL
    tasks = [s.task for s in plan_statements(RedshiftDialect_psycopg2(), settings.mart_schema)]
    assert (
        tasks
        == ["vacuum_mart_uti"] * 2
        + ["vacuum_mart_uts"] * 2
        + ["vacuum_mart_ecs_delete"]
        + ["vacuum_mart_ecs_sort"] * 2
    )


def test_redshift_quotes_identifiers_only_where_needed() -> None:
    sql = [s.sql for s in plan_statements(RedshiftDialect_psycopg2(), "user", ["vacuum_mart_uti"])]
    assert sql == [
        'VACUUM DELETE ONLY "user".mart_uni_tracking_info',
        'ANALYZE "user".mart_uni_tracking_info',
    ]


def test_redshift_whole_plan_runs_each_statement_alone_in_autocommit_and_logs(fake: FakeRedshift) -> None:
    outcomes = maintenance.run_plan(fake.engine(), Settings.from_env(), retry=FAST)

    assert fake.statements() == REDSHIFT_PLAN_SQL
    assert all(autocommit for sql, _, autocommit in fake.executed if sql.startswith(("VACUUM", "ANALYZE")))
    assert [o.status for o in outcomes] == ["ok"] * 7
    first = outcomes[0]
    assert (first.before.rows, first.before.ghost_rows, first.before.unsorted_pct) == (1000, 100, 12.5)
    assert (first.after.ghost_rows, first.after.size_bytes) == (0, 12 * 1024 * 1024)
    inserts = [(sql, p) for sql, p, _ in fake.executed if sql.startswith("INSERT INTO")]
    assert len(inserts) == 7
    assert all("settlement_ods.order_tracking_maintenance_log" in sql for sql, _ in inserts)
    assert [p["sql_text"] for _, p in inserts] == REDSHIFT_PLAN_SQL
    assert inserts[0][1]["ghost_rows_before"] == 100 and inserts[0][1]["ghost_rows_after"] == 0
    assert inserts[0][1]["status"] == "ok"


def test_redshift_log_insert_prefetches_no_key_and_sends_no_ddl(fake: FakeRedshift) -> None:
    maintenance.run_task(fake.engine(), Settings.from_env(), "vacuum_mart_uti", retry=FAST)
    sent = [sql for sql, _, _ in fake.executed]
    assert not [sql for sql in sent if "nextval" in sql.lower()]  # Redshift has no sequences
    inserts = [sql for sql in sent if sql.startswith("INSERT INTO")]
    assert len(inserts) == 2 and all("log_id" not in sql for sql in inserts)
    assert not [sql for sql in sent if sql.lstrip().upper().startswith(("CREATE", "ALTER"))]


def test_redshift_missing_log_table_is_one_line_pointing_at_init_db(fake: FakeRedshift) -> None:
    fake.tables.clear()
    with pytest.raises(UserError) as caught:
        maintenance.run_plan(fake.engine(), Settings.from_env(), retry=FAST)
    assert str(caught.value) == (
        "table settlement_ods.order_tracking_maintenance_log does not exist in warehouse database 'db' "
        "(redshift+fakeredshift://u@h/db); run `python -m order_tracking init-db` first, "
        "or point the warehouse URL at the database that has it"
    )
    assert not fake.statements(("VACUUM", "ANALYZE", "CREATE", "INSERT"))


def test_redshift_serverless_isolation_level_does_not_break_vacuum(fake: FakeRedshift) -> None:
    # Redshift Serverless reports SNAPSHOT ISOLATION, a level SQLAlchemy does not know: a pooled
    # connection switched to AUTOCOMMIT and back would raise ArgumentError after the VACUUM ran.
    fake.isolation = "snapshot isolation"
    outcomes = maintenance.run_task(fake.engine(), Settings.from_env(), "vacuum_mart_uti", retry=FAST)
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert all(autocommit for sql, _, autocommit in fake.executed if sql.startswith(("VACUUM", "ANALYZE")))
    assert len([sql for sql, _, _ in fake.executed if sql.startswith("INSERT INTO")]) == 2


def test_redshift_vacuum_running_is_retried_with_backoff(fake: FakeRedshift) -> None:
    vacuum = "VACUUM DELETE ONLY settlement_public.mart_uni_tracking_info"
    fake.errors[vacuum] = [FakePgError("ERROR:  VACUUM is running"), FakePgError("Another vacuum is running")]
    sleeps: list[float] = []

    outcomes = maintenance.run_task(
        fake.engine(), Settings.from_env(), "vacuum_mart_uti", retry=FAST, sleep=sleeps.append
    )

    assert fake.statements() == [vacuum, vacuum, vacuum, "ANALYZE settlement_public.mart_uni_tracking_info"]
    assert [(o.operation, o.status, o.attempts) for o in outcomes] == [
        ("VACUUM DELETE ONLY", "ok", 3),
        ("ANALYZE", "ok", 1),
    ]
    assert sleeps == [0.001, 0.002]
    logged = [p for sql, p, _ in fake.executed if sql.startswith("INSERT INTO")]
    assert [p["attempts"] for p in logged] == [3, 1]


def test_redshift_vacuum_running_gives_up_after_bounded_attempts(fake: FakeRedshift) -> None:
    vacuum = "VACUUM DELETE ONLY settlement_public.mart_uni_tracking_spath"
    fake.errors[vacuum] = [FakePgError("VACUUM is running") for _ in range(10)]

    outcomes = maintenance.run_plan(fake.engine(), Settings.from_env(), retry=FAST, sleep=lambda _s: None)

    statuses = {(o.table, o.operation): o for o in outcomes}
    failed = statuses[(UTS, "VACUUM DELETE ONLY")]
    assert (failed.status, failed.attempts) == ("failed", 4)
    assert "another VACUUM was still running after 4 attempts" in failed.error
    # One table's failure stops nothing else.
    assert fake.statements().count(vacuum) == 4
    assert [o.status for o in outcomes].count("ok") == 6
    with pytest.raises(UserError, match="1 maintenance step"):
        maintenance.raise_for_failures(outcomes)


def test_two_threads_never_run_two_vacuums_at_once(fake: FakeRedshift) -> None:
    # The spec's tasks run "in parallel"; within one process the lock serializes their VACUUMs.
    fake.vacuum_seconds = 0.05
    engine, settings = fake.engine(), Settings.from_env()
    results: dict[str, list] = {}
    threads = [
        threading.Thread(target=lambda t=task: results.update({t: maintenance.run_task(engine, settings, t)}))
        for task in ("vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.max_active == 1
    assert all(o.status == "ok" for outcomes in results.values() for o in outcomes)
    assert len(fake.statements(("VACUUM",))) == 3


def test_redshift_transaction_block_error_is_explained(fake: FakeRedshift) -> None:
    vacuum = "VACUUM DELETE ONLY settlement_public.mart_ecs_order_info"
    fake.errors[vacuum] = [FakePgError("VACUUM cannot run inside a transaction block", code="25001")]

    (outcome,) = maintenance.run_task(
        fake.engine(), Settings.from_env(), "vacuum_mart_ecs_delete", retry=FAST
    )

    assert outcome.status == "failed"
    assert outcome.attempts == 1  # not a retryable error
    assert outcome.error.startswith("VACUUM cannot run inside a transaction block (SQLSTATE 25001)")


def _vacuum_uti(fake: FakeRedshift) -> maintenance.Outcome:
    outcomes = maintenance.run_task(fake.engine(), Settings.from_env(), "vacuum_mart_uti", retry=FAST)
    return outcomes[0]


def test_redshift_privilege_noop_is_a_failure(fake: FakeRedshift) -> None:
    fake.owners[UTI] = "etl"  # dq is neither the owner nor a superuser: VACUUM skips it silently
    fake.history[UTI] = []
    fake.svv[UTI] = [svv(1000, 250)]

    noop = _vacuum_uti(fake)

    assert noop.status == "failed"
    assert noop.error == (
        "no sys_vacuum_history row, no drop in the figures: VACUUM DELETE ONLY skips tables it may not "
        "maintain without an error (a privilege no-op): dq is neither the owner (etl) nor a superuser, "
        "nor granted the VACUUM permission (a database owner counts only for tables shared to it); "
        "fix: run it as the owner of settlement_public.mart_uni_tracking_info (etl) or a superuser, "
        'GRANT ROLE "sys:operator" TO dq; (it carries VACUUM and ANALYZE), or '
        "ALTER TABLE settlement_public.mart_uni_tracking_info OWNER TO dq;"
    )
    assert (noop.before.ghost_rows, noop.after.ghost_rows) == (250, 250)
    history_sql = [sql for sql, _, _ in fake.executed if "sys_vacuum_history" in sql]
    assert len(history_sql) == 1 and "sys_vacuum_history.is_automatic = false" in history_sql[0]


def test_redshift_missing_history_row_for_the_owner_is_unknown(fake: FakeRedshift) -> None:
    # The owner's VACUUM left no row and 20 % ghost rows stayed: no evidence either way.
    fake.history[UTI] = []
    fake.svv[UTI] = [svv(1000, 250)]

    outcome = _vacuum_uti(fake)

    assert outcome.status == "unknown"
    assert outcome.error.startswith(
        "no sys_vacuum_history row and ghost rows did not drop (20.0 %) although the user may vacuum it"
    )


def test_redshift_missing_history_row_below_the_threshold_is_ok(fake: FakeRedshift) -> None:
    # VACUUM skips a table already 95 % clean and logs nothing: not a failure, not a privilege no-op.
    fake.history[UTI] = []
    fake.svv[UTI] = [svv(1000, 10)]

    outcome = _vacuum_uti(fake)

    assert (outcome.status, outcome.error) == ("ok", None)
    assert "nothing past VACUUM's 95 % threshold (1.0 %): Redshift skipped it" in outcome.notes


def test_redshift_figures_that_dropped_prove_the_vacuum_without_history(fake: FakeRedshift) -> None:
    fake.owners[UTI] = "etl"
    fake.history[UTI] = []  # e.g. the history view lags: the figures are evidence enough
    assert _vacuum_uti(fake).status == "ok"


def test_redshift_table_hidden_from_svv_table_info_is_unknown_not_ok(fake: FakeRedshift) -> None:
    # Without SELECT the table is missing from svv_table_info: no figures, so no silent "ok".
    fake.history[UTI] = []
    fake.svv[UTI] = []
    fake.no_select.add(f"settlement_public.{UTI}")

    outcome = _vacuum_uti(fake)

    assert outcome.status == "unknown"
    assert outcome.error == (
        "no sys_vacuum_history row and no figures to judge by: dq may not SELECT the table, so "
        "svv_table_info hides it (GRANT SELECT to see it)"
    )
    logged = [p for sql, p, _ in fake.executed if sql.startswith("INSERT INTO")]
    assert logged[0]["status"] == "unknown" and logged[0]["error"].startswith("no sys_vacuum_history row")


def test_redshift_null_figures_do_not_skip_the_check(fake: FakeRedshift) -> None:
    fake.history[UTI] = []
    fake.svv[UTI] = [dict.fromkeys(("tbl_rows", "estimated_visible_rows", "unsorted", "stats_off", "size"))]
    outcome = _vacuum_uti(fake)
    assert outcome.status == "unknown" and "svv_table_info gave no figures" in outcome.error
    fake.owners[UTI] = "etl"
    assert "privilege no-op" in _vacuum_uti(fake).error


def test_redshift_empty_readable_table_is_ok(fake: FakeRedshift) -> None:
    fake.history[UTI] = []
    fake.svv[UTI] = []  # readable, so absent from svv_table_info only because it holds no data
    outcome = _vacuum_uti(fake)
    assert outcome.status == "ok" and "the table is empty" in outcome.notes[0]


def test_redshift_failed_history_row_is_a_failure(fake: FakeRedshift) -> None:
    fake.history[ECS] = [history(ECS, status="Failed  ")]
    (outcome,) = maintenance.run_task(
        fake.engine(), Settings.from_env(), "vacuum_mart_ecs_delete", retry=FAST
    )
    assert outcome.status == "failed" and "Failed" in outcome.error


def test_unknown_task_and_table_are_clear_errors() -> None:
    with pytest.raises(UserError, match="unknown vacuum task"):
        maintenance.resolve_tasks(["vacuum_everything"])
    with pytest.raises(UserError, match="unknown table 'orders'"):
        maintenance.resolve_tasks(tables=["orders"])
    assert maintenance.resolve_tasks(tables=["ecs"]) == ["vacuum_mart_ecs_delete", "vacuum_mart_ecs_sort"]
    assert maintenance.resolve_tasks(tables=["settlement_public.mart_uni_tracking_spath"]) == [
        "vacuum_mart_uts"
    ]


# --- PostgreSQL -------------------------------------------------------------------------------------


def _pg_setup(settings: Settings) -> sa.Engine:
    """Mart tables with autovacuum off, through a few 15-minute-style DELETE+INSERT cycles."""
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    tables = schema.build_tables(settings)
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables)  # as init-db does
    start = datetime(2026, 1, 1)
    marts = {tables.mart_uti: "update_time", tables.mart_uts: "pathtime", tables.mart_ecs: "add_time"}
    with engine.begin() as conn:
        for table in marts:
            conn.exec_driver_sql(
                f"ALTER TABLE {settings.mart_schema}.{table.name} SET (autovacuum_enabled = false)"
            )
    for cycle in range(3):
        with engine.begin() as conn:
            for table, time_col in marts.items():
                rows = [
                    {"order_id": i, time_col: start + timedelta(minutes=15 * cycle, seconds=i)}
                    | ({"partner_id": i % 7} if table is tables.mart_ecs else {})
                    for i in range(500)
                ]
                conn.execute(sa.delete(table))
                conn.execute(sa.insert(table), rows)
    # Backends publish table statistics when they go idle or exit: close them so n_dead_tup shows.
    engine.dispose()
    deadline = time.monotonic() + 15
    while any(read_metrics(engine, settings.mart_schema, t).ghost_rows == 0 for t in MARTS):
        assert time.monotonic() < deadline, "n_dead_tup never became visible"
        time.sleep(0.2)
    return engine


def _log_rows(engine: sa.Engine, settings: Settings) -> list[sa.Row]:
    log = schema.build_tables(settings).maintenance_log
    with engine.connect() as conn:
        return list(conn.execute(sa.select(log).order_by(log.c.log_id)))


def test_postgres_plan_reclaims_dead_rows_and_logs_every_step(own_pg: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    before = {t: read_metrics(engine, settings.mart_schema, t) for t in MARTS}
    assert all(m.ghost_rows > 0 and m.last_vacuum is None for m in before.values())

    outcomes = maintenance.run_plan(engine, settings, retry=FAST)

    assert [(o.table, o.operation, o.status) for o in outcomes] == [
        (UTI, "VACUUM DELETE ONLY", "ok"),
        (UTI, "ANALYZE", "ok"),
        (UTS, "VACUUM DELETE ONLY", "ok"),
        (UTS, "ANALYZE", "ok"),
        (ECS, "VACUUM DELETE ONLY", "ok"),
        (ECS, "VACUUM SORT ONLY", "skipped"),
        (ECS, "ANALYZE", "ok"),
    ]
    assert outcomes[0].sql == f"VACUUM {settings.mart_schema}.{UTI}"
    for table in MARTS:
        after = read_metrics(engine, settings.mart_schema, table)
        assert after.ghost_rows == 0, table
        assert after.rows == 500
        assert after.last_vacuum is not None and after.last_analyze is not None
    vacuums = [o for o in outcomes if o.operation == "VACUUM DELETE ONLY"]
    assert all(o.before.ghost_rows > 0 and o.after.ghost_rows == 0 for o in vacuums)

    log = _log_rows(engine, settings)
    assert len(log) == 7
    assert len({r.run_id for r in log}) == 1
    assert [(r.table_name, r.operation, r.status) for r in log] == [
        (o.table, o.operation, o.status) for o in outcomes
    ]
    first = log[0]
    assert first.ghost_rows_before > 0 and first.ghost_rows_after == 0
    assert first.size_before > 0 and first.size_after > 0
    assert first.sql_text == f"VACUUM {settings.mart_schema}.{UTI}"
    assert first.started_at <= first.finished_at and first.attempts == 1
    sort = log[5]
    assert sort.status == "skipped" and "no VACUUM SORT ONLY" in sort.error and sort.sql_text is None


def test_postgres_caller_open_transaction_does_not_swallow_the_vacuum(own_pg: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    mart_uti = schema.build_tables(settings).mart_uti
    with engine.connect() as caller:
        caller.begin()
        assert caller.execute(sa.select(sa.func.count()).select_from(mart_uti)).scalar_one() == 500

        outcomes = maintenance.run_task(engine, settings, "vacuum_mart_uti", retry=FAST)

        assert [o.status for o in outcomes] == ["ok", "ok"]
        # The caller's transaction is untouched and still usable.
        assert caller.in_transaction()
        assert caller.execute(sa.select(sa.func.count()).select_from(mart_uti)).scalar_one() == 500
        caller.rollback()
    after = read_metrics(engine, settings.mart_schema, UTI)
    assert after.ghost_rows == 0 and after.last_vacuum is not None and after.last_analyze is not None
    assert len(_log_rows(engine, settings)) == 2


def test_redshift_twin_plan_reclaims_dead_rows_and_logs_every_step(own_twin: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)

    outcomes = maintenance.run_plan(engine, settings, retry=FAST)

    assert [(o.table, o.operation, o.status, o.error) for o in outcomes] == [
        (UTI, "VACUUM DELETE ONLY", "ok", None),
        (UTI, "ANALYZE", "ok", None),
        (UTS, "VACUUM DELETE ONLY", "ok", None),
        (UTS, "ANALYZE", "ok", None),
        (ECS, "VACUUM DELETE ONLY", "ok", None),
        (ECS, "VACUUM SORT ONLY", "ok", None),
        (ECS, "ANALYZE", "ok", None),
    ]
    assert [o.sql for o in outcomes] == [
        s.replace("settlement_public", settings.mart_schema) for s in REDSHIFT_PLAN_SQL
    ]
    vacuum = outcomes[0]
    assert vacuum.before.ghost_rows > 0 and vacuum.after.ghost_rows == 0  # svv_table_info stand-in
    assert not [n for o in outcomes for n in o.notes if "not written" in n or "unavailable" in n]
    assert outcomes[0].notes == ["history: Delete Complete"]  # sys_vacuum_history stand-in
    log = _log_rows(engine, settings)
    assert [(r.table_name, r.operation, r.status, r.sql_text) for r in log] == [
        (o.table, o.operation, o.status, o.sql) for o in outcomes
    ]
    assert log[0].ghost_rows_before > 0 and log[0].ghost_rows_after == 0
    engine.dispose()


def test_cli_vacuum_without_init_db_creates_nothing_and_points_at_init_db(warehouse: str, schemas) -> None:
    result = run_cli("vacuum", "--retry-attempts", "1", "--retry-delay", "0")
    assert result.returncode == 3, result.stderr
    where = db.parse_url(warehouse, "warehouse").set(query={}).render_as_string()
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: table {schemas.ods}.order_tracking_maintenance_log does not exist in warehouse database "
        f"'test' ({where}); run `python -m order_tracking init-db` first, "
        "or point the warehouse URL at the database that has it"
    )
    with sa.create_engine(PG_URL).connect() as conn:  # only init-db creates schemas and tables
        assert not conn.execute(
            sa.text("SELECT nspname FROM pg_namespace WHERE nspname IN (:a, :b)"),
            {"a": schemas.ods, "b": schemas.mart},
        ).all()

    assert run_cli("init-db").returncode == 0
    result = run_cli("vacuum", "--retry-attempts", "1", "--retry-delay", "0")
    assert result.returncode == 3, result.stderr
    failing = 7 if warehouse.startswith("redshift") else 6  # PostgreSQL has no SORT ONLY: skipped
    assert f"error: {failing} of 7 maintenance steps failed" in result.stderr
    assert "does not exist" in result.stdout
    log = schema.build_tables(Settings.from_env()).maintenance_log
    engine = db.create_engine(warehouse)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(log)).scalar_one() == 7
    engine.dispose()


def test_cli_a_log_row_that_cannot_be_written_is_an_error(warehouse: str, schemas) -> None:
    assert run_cli("init-db", "--with-pipeline-tables").returncode == 0
    with sa.create_engine(PG_URL).begin() as conn:  # every log insert now fails
        conn.exec_driver_sql(
            f"ALTER TABLE {schemas.ods}.order_tracking_maintenance_log ALTER COLUMN run_id TYPE varchar(1)"
        )
    result = run_cli("vacuum", "--tables", "uti", "--retry-attempts", "1", "--retry-delay", "0")
    assert result.returncode == 3, result.stderr  # the steps ran; their record is missing
    warnings = [line for line in result.stderr.splitlines() if "not written to the maintenance log" in line]
    assert len(warnings) == 3 and "VACUUM" in warnings[0] and "ANALYZE" in warnings[1]
    assert warnings[2].startswith("error: 2 step(s) not written to the maintenance log: ")


# --- SQLite -------------------------------------------------------------------------------------------


def test_sqlite_file_shrinks_after_deletes_and_vacuum(sqlite_urls: tuple[str, str]) -> None:
    settings = Settings.from_env()
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    tables = schema.build_tables(settings)
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables)  # as init-db does
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tables.mart_uts),
            [{"order_id": i, "pathtime": datetime(2026, 1, 1) + timedelta(seconds=i)} for i in range(30000)],
        )
    with engine.begin() as conn:
        conn.execute(sa.delete(tables.mart_uts).where(tables.mart_uts.c.order_id >= 1000))
    mart_file = db.schema_file(sa.make_url(settings.warehouse_url).database, settings.mart_schema)
    size_before = os.path.getsize(mart_file)

    outcomes = maintenance.run_plan(engine, settings, ["vacuum_mart_uts", "vacuum_mart_ecs_sort"])

    assert [(o.operation, o.status) for o in outcomes] == [
        ("VACUUM DELETE ONLY", "ok"),
        ("ANALYZE", "ok"),
        ("VACUUM SORT ONLY", "skipped"),
        ("ANALYZE", "ok"),
    ]
    assert outcomes[0].sql == f'VACUUM "{settings.mart_schema}"'
    assert os.path.getsize(mart_file) < size_before / 4
    vacuum = outcomes[0]
    assert vacuum.before.size_bytes == size_before and vacuum.after.size_bytes < size_before / 4
    assert vacuum.before.detail["freelist_count"] > 0 and vacuum.after.detail["freelist_count"] == 0
    assert vacuum.after.rows == 1000
    assert len(_log_rows(engine, settings)) == 4


# --- CLI ---------------------------------------------------------------------------------------------


def test_cli_dry_run_prints_exact_redshift_sql_without_connecting() -> None:
    # An unreachable warehouse proves nothing is contacted.
    result = run_cli(
        "--warehouse-url",
        "postgresql://nobody@127.0.0.1:1/none",
        "vacuum",
        "--dry-run",
        "--dialect",
        "redshift",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith("--")] == [f"{sql};" for sql in REDSHIFT_PLAN_SQL]
    assert "-- vacuum_mart_ecs_sort" in lines


def test_cli_dry_run_for_the_warehouse_and_bad_flags(sqlite_urls: tuple[str, str]) -> None:
    result = run_cli("vacuum", "--dry-run", "--tables", "uti")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-- vacuum plan for sqlite",
        "-- sqlite has no table-level VACUUM: each VACUUM DELETE ONLY below rebuilds the whole file of",
        "-- the schema (every table in it, the same work each time); ANALYZE is per table.",
        f"-- figures not read: no database at {sqlite_urls[0].split(':///')[1]}: check the warehouse URL "
        "(--warehouse-url or ORDER_TRACKING_WAREHOUSE_URL), or create it with init-db",
        "-- vacuum_mart_uti",
        "-- VACUUM DELETE ONLY mart_uni_tracking_info: runs: no threshold "
        "(ORDER_TRACKING_VACUUM_MIN_DELETED_PCT=0, always)",
        'VACUUM "settlement_public";  -- VACUUM DELETE ONLY mart_uni_tracking_info',
        "-- ANALYZE mart_uni_tracking_info: runs: no threshold "
        "(ORDER_TRACKING_ANALYZE_MIN_STATS_OFF_PCT=0, always)",
        "ANALYZE settlement_public.mart_uni_tracking_info;",
    ]
    bad = run_cli("vacuum", "--tables", "uti,orders")
    assert bad.returncode == 3 and "unknown table 'orders'" in bad.stderr
    bad = run_cli("vacuum", "--dialect", "redshift")
    assert bad.returncode == 3 and "--dialect only goes with --dry-run" in bad.stderr


def test_cli_runs_the_plan_on_sqlite(sqlite_urls: tuple[str, str]) -> None:
    assert run_cli("init-db", "--with-pipeline-tables").returncode == 0
    result = run_cli("vacuum")
    assert result.returncode == 0, result.stderr
    assert "VACUUM SORT ONLY" in result.stdout and "skipped" in result.stdout
    # 6 steps ran: one "HH:MM:SS ok <step> in N s" progress line and one results row each
    assert len(re.findall(r"^\d\d:\d\d:\d\d ok ", result.stdout, re.M)) == 6
    assert result.stdout.count(" ok ") == 12


def test_dialect_named_gives_postgres_sql() -> None:
    sql = [s.sql for s in plan_statements(dialect_named("postgresql"), "sp", ["vacuum_mart_ecs_sort"])]
    assert sql == [None, "ANALYZE sp.mart_ecs_order_info"]


def test_postgres_vacuum_that_reclaims_nothing_is_a_failure(pg_warehouse: str) -> None:
    # Issue 11 item 10: a run logged "ghost 92016 -> 92016" as ok. A snapshot older than the
    # deletes keeps every dead row: VACUUM runs (last_vacuum moves) and reclaims nothing.
    settings = Settings.from_env()
    holder = sa.create_engine(pg_warehouse)
    with holder.connect() as old:
        old.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old.exec_driver_sql("SELECT 1")  # takes the snapshot
        engine = _pg_setup(settings)
        vacuum, analyze = maintenance.run_task(engine, settings, "vacuum_mart_uti", retry=FAST)
        old.rollback()
    holder.dispose()

    dead = vacuum.before.ghost_rows
    assert dead > 0 and vacuum.after.ghost_rows == dead
    assert vacuum.status == "failed"
    assert vacuum.error.startswith(f"VACUUM ran but reclaimed no dead rows ({dead} -> {dead}): a transaction")
    assert analyze.status == "ok"
    log = _log_rows(engine, settings)
    first = log[0]
    assert (first.status, first.ghost_rows_before, first.ghost_rows_after) == ("failed", dead, dead)


def test_postgres_vacuum_of_a_table_the_user_does_not_own_fails(pg_warehouse: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    mart = settings.mart_schema
    with restricted_role() as (role, url, admin):
        grant_read(admin, role, mart)
        engine = db.create_engine(url)
        try:
            vacuum, analyze = maintenance.run_task(
                engine, settings, "vacuum_mart_uti", retry=FAST, write_to_log=False
            )
        finally:
            engine.dispose()
    for outcome in (vacuum, analyze):
        assert outcome.status == "failed"
        assert outcome.error == (
            f"{outcome.operation} skips tables it may not maintain without an error (a privilege "
            f"no-op): {role} is neither the owner (postgres) nor a superuser; fix: run it as the owner "
            f"of {mart}.{UTI} (postgres) or a superuser, or ALTER TABLE {mart}.{UTI} OWNER TO {role};"
        )


def test_redshift_twin_vacuum_by_a_non_owner_is_a_privilege_noop(redshift_warehouse: str) -> None:
    # PostgreSQL skips the VACUUM of a table the user does not own, so the twin's
    # sys_vacuum_history stand-in gets no row: the Redshift path must call it a privilege no-op.
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    mart = settings.mart_schema
    with restricted_role() as (role, _url, admin):
        # the stand-ins (svv_table_info, sys_vacuum_history) live in a schema of their own
        grant_read(admin, role, mart, redshift_twin.STAND_IN_SCHEMA)
        twin_as_role = sa.make_url(redshift_warehouse).set(username=role)
        engine = db.create_engine(twin_as_role.render_as_string(hide_password=False))
        try:
            vacuum, _analyze = maintenance.run_task(
                engine, settings, "vacuum_mart_uti", retry=FAST, write_to_log=False
            )
        finally:
            engine.dispose()
    assert vacuum.status == "failed", (vacuum.error, vacuum.notes)
    assert vacuum.error.startswith(
        f"no sys_vacuum_history row, no drop in the figures: VACUUM DELETE ONLY skips tables it may not "
        f"maintain without an error (a privilege no-op): {role} is neither the owner (postgres) nor a "
        "superuser"
    )
    assert vacuum.before.ghost_rows > 0 and vacuum.after.ghost_rows == vacuum.before.ghost_rows
