"""Issue 24 section 2: only the work that is needed, with the figure that decided it, on PostgreSQL
and the Redshift twin; the dry run shows figures, decision and statement; BOOST / PREDICATE COLUMNS.

``_pg_setup`` leaves each mart table with 500 live rows and 1000 deleted ones (66.7 % deleted) and
every row changed since the last ANALYZE (stats_off 100 %).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import run_cli
from test_maintenance import FAST, _log_rows, _pg_setup

from order_tracking import db, maintenance
from order_tracking.errors import UserError
from order_tracking.maintenance.metrics import Metrics, read_metrics
from order_tracking.maintenance.thresholds import decide
from order_tracking.settings import MaintenanceSettings, Settings
from tests import redshift_twin, redshift_twin_catalog
from tests.pg_roles import restricted_role

UTI, ECS = "mart_uni_tracking_info", "mart_ecs_order_info"
DELETED = "ORDER_TRACKING_VACUUM_MIN_DELETED_PCT"
UNSORTED = "ORDER_TRACKING_VACUUM_MIN_UNSORTED_PCT"
STATS_OFF = "ORDER_TRACKING_ANALYZE_MIN_STATS_OFF_PCT"


def test_decisions_default_always_below_skips_unreadable_runs() -> None:
    figures = Metrics(rows=900, ghost_rows=100, unsorted_pct=4.0, stats_off=12.0)
    always = MaintenanceSettings()
    utility = MaintenanceSettings(min_deleted_pct=5, min_unsorted_pct=5, min_stats_off_pct=10)
    assert decide("VACUUM DELETE ONLY", figures, always).run
    assert decide("VACUUM DELETE ONLY", figures, utility) == decide("VACUUM DELETE ONLY", figures, utility)
    assert decide("VACUUM DELETE ONLY", figures, utility).reason == (
        f"runs: deleted 10.0 % is at or above {DELETED}=5 %"
    )
    sort = decide("VACUUM SORT ONLY", figures, utility)
    assert (sort.run, sort.reason) == (False, f"unsorted 4.0 % is below {UNSORTED}=5 %")
    assert decide("ANALYZE", figures, utility).run
    unread = decide("VACUUM SORT ONLY", None, utility)
    assert (
        unread.run and unread.reason == f"runs: unsorted could not be read, so {UNSORTED}=5 % cannot skip it"
    )


@pytest.mark.parametrize("name", [DELETED, UNSORTED, STATS_OFF])
def test_thresholds_are_percentages(monkeypatch, name) -> None:
    monkeypatch.setenv(name, "100.5")
    with pytest.raises(UserError, match=f"{name}='100.5' is not a percentage from 0 to 100"):
        Settings.from_env()
    monkeypatch.setenv(name, "5")
    assert Settings.from_env().maintenance != MaintenanceSettings()


def test_a_step_below_its_threshold_is_skipped_with_its_figure(warehouse: str, monkeypatch) -> None:
    monkeypatch.setenv(DELETED, "70")  # 66.7 % deleted: below
    monkeypatch.setenv(STATS_OFF, "10")  # 100 %: runs
    settings = Settings.from_env()
    engine = _pg_setup(settings)

    vacuum, analyze = maintenance.run_task(engine, settings, "vacuum_mart_uti", retry=FAST)

    assert vacuum.status == "skipped" and vacuum.attempts == 0
    assert vacuum.error == f"deleted 66.7 % is below {DELETED}=70 %"
    assert analyze.status == "ok", analyze.error
    log = _log_rows(engine, settings)
    assert (log[0].operation, log[0].status, log[0].error) == (
        "VACUUM DELETE ONLY",
        "skipped",
        vacuum.error,
    )
    assert log[0].ghost_rows_before == 1000 and log[0].sql_text == vacuum.sql
    engine.dispose()


def test_the_twin_skips_a_sort_its_unsorted_figure_does_not_need(own_twin: str, monkeypatch) -> None:
    monkeypatch.setenv(UNSORTED, "5")
    monkeypatch.setenv(DELETED, "50")
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    admin = sa.create_engine(redshift_twin.postgres_url(own_twin))
    redshift_twin_catalog.set_table_state(admin, settings.mart_schema, ECS, unsorted=3.0)
    admin.dispose()

    (delete,) = maintenance.run_task(engine, settings, "vacuum_mart_ecs_delete", retry=FAST)
    sort, analyze = maintenance.run_task(engine, settings, "vacuum_mart_ecs_sort", retry=FAST)
    engine.dispose()

    assert delete.status == "ok", delete.error
    assert (sort.status, sort.error) == ("skipped", f"unsorted 3.0 % is below {UNSORTED}=5 %")
    assert analyze.status == "ok", analyze.error


def test_unreadable_figures_run_the_step(redshift_warehouse: str, monkeypatch) -> None:
    monkeypatch.setenv(DELETED, "50")
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    mart = settings.mart_schema
    with restricted_role() as (role, _url, admin):
        with admin.connect() as conn:  # the owner, but not granted svv_table_info
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {mart}, {redshift_twin.STAND_IN_SCHEMA} TO {role}")
            conn.exec_driver_sql(f"ALTER TABLE {mart}.{UTI} OWNER TO {role}")
        engine = db.create_engine(sa.make_url(redshift_warehouse).set(username=role).render_as_string(False))
        try:
            vacuum, _analyze = maintenance.run_task(
                engine, settings, "vacuum_mart_uti", retry=FAST, write_to_log=False
            )
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {mart}.{UTI} OWNER TO postgres")
    assert vacuum.attempts == 1 and vacuum.status == "ok", vacuum.error  # its history row proves it


def test_boost_and_predicate_columns_are_opt_in_and_run_on_the_twin(
    redshift_warehouse: str, monkeypatch
) -> None:
    monkeypatch.setenv("ORDER_TRACKING_VACUUM_BOOST", "1")
    monkeypatch.setenv("ORDER_TRACKING_ANALYZE_PREDICATE_COLUMNS", "1")
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    vacuum, analyze = maintenance.run_task(engine, settings, "vacuum_mart_uti", retry=FAST)
    engine.dispose()
    mart = settings.mart_schema
    assert vacuum.sql == f"VACUUM DELETE ONLY {mart}.{UTI} BOOST" and vacuum.status == "ok", vacuum.error
    assert analyze.sql == f"ANALYZE {mart}.{UTI} PREDICATE COLUMNS" and analyze.status == "ok", analyze.error
    assert analyze.after.stats_off == 0


def test_dry_run_shows_figures_decision_and_statement(warehouse: str, monkeypatch) -> None:
    monkeypatch.setenv(DELETED, "70")
    monkeypatch.setenv(STATS_OFF, "10")
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    mart = settings.mart_schema

    result = run_cli("vacuum", "--dry-run", "--tables", "uti")

    assert result.returncode == 0, result.stderr
    twin = warehouse.startswith("redshift")
    figures = (
        "deleted 66.7 % (1000 of 1500 rows)" + (", unsorted 0.0 %" if twin else "") + ", stats_off 100.0 %"
    )
    vacuum_sql = f"VACUUM DELETE ONLY {mart}.{UTI}" if twin else f"VACUUM {mart}.{UTI}"
    assert result.stdout.splitlines()[1:] == [
        "-- vacuum_mart_uti",
        f"-- {UTI}: {figures}",
        f"-- skipped VACUUM DELETE ONLY {UTI}: deleted 66.7 % is below {DELETED}=70 %; "
        f"would run: {vacuum_sql};",
        f"-- ANALYZE {UTI}: runs: stats_off 100.0 % is at or above {STATS_OFF}=10 %",
        f"ANALYZE {mart}.{UTI};",
    ]
    plain = db.create_engine(redshift_twin.postgres_url(warehouse) if twin else warehouse)
    assert read_metrics(plain, mart, UTI).ghost_rows == 1000  # nothing ran
    plain.dispose()
