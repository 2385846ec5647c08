"""Issue 24 section 1 through the Redshift twin: no "ok" without evidence.

Each test drives one thing Redshift hides or reports (tests/redshift_twin_catalog.py models it):
svv_table_info unreadable (1a), sys_vacuum_history rows that prove nothing (1b), ANALYZE judged
(1c) and who may VACUUM/ANALYZE (1d). The role's tables are made by the superuser, as in
test_maintenance's ``_pg_setup``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from test_maintenance import FAST, _pg_setup

from order_tracking import db, maintenance
from order_tracking.settings import Settings
from tests import redshift_twin, redshift_twin_catalog
from tests.pg_roles import restricted_role

UTI, ECS = "mart_uni_tracking_info", "mart_ecs_order_info"


def _admin(twin_url: str) -> sa.Engine:
    return sa.create_engine(redshift_twin.postgres_url(twin_url), isolation_level="AUTOCOMMIT")


@contextmanager
def _as_role(twin_url: str, *, owner: bool, svv: bool) -> Iterator[tuple[str, sa.Engine, sa.Engine]]:
    """A login role reading the mart (owning its tables if ``owner``; granted SELECT on
    svv_table_info if ``svv``): (role, its twin engine, an admin engine on the same database)."""
    settings = Settings.from_env()
    mart = settings.mart_schema
    with restricted_role() as (role, _url, _admin_default):
        admin = _admin(twin_url)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {mart}, {redshift_twin.STAND_IN_SCHEMA} TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {mart} TO {role}")
            if owner:
                for table in (UTI, ECS, "mart_uni_tracking_spath"):
                    conn.exec_driver_sql(f"ALTER TABLE {mart}.{table} OWNER TO {role}")
            if svv:
                conn.exec_driver_sql(
                    f"GRANT SELECT ON {redshift_twin.STAND_IN_SCHEMA}.svv_table_info TO {role}"
                )
        engine = db.create_engine(
            sa.make_url(twin_url).set(username=role).render_as_string(hide_password=False)
        )
        try:
            yield role, engine, admin
        finally:
            engine.dispose()
            with admin.connect() as conn:  # the role is dropped next: give the tables back
                for table in (UTI, ECS, "mart_uni_tracking_spath"):
                    conn.exec_driver_sql(f"ALTER TABLE {mart}.{table} OWNER TO postgres")
                conn.exec_driver_sql(f"DROP OWNED BY {role}")  # its grants in this database
            admin.dispose()


def _run(engine: sa.Engine, task: str, **kwargs) -> list[maintenance.Outcome]:
    return maintenance.run_task(engine, Settings.from_env(), task, retry=FAST, write_to_log=False, **kwargs)


# --- 1a: svv_table_info unreadable --------------------------------------------------------------------


def test_unreadable_svv_table_info_is_unknown_with_the_grant(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    with _as_role(redshift_warehouse, owner=True, svv=False) as (role, engine, admin):
        # Redshift leaves no history row for this VACUUM: only the figures could tell.
        redshift_twin_catalog.set_table_state(admin, settings.mart_schema, UTI, vacuum_status="no row")
        vacuum, analyze = _run(engine, "vacuum_mart_uti")
    grant = f"GRANT SELECT ON svv_table_info TO {role};"
    for outcome in (vacuum, analyze):
        assert outcome.status == "unknown", (outcome.operation, outcome.error)
        assert grant in outcome.error
        assert "empty" not in outcome.error


def test_history_proves_the_vacuum_but_the_figures_need_the_grant(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    with _as_role(redshift_warehouse, owner=True, svv=False) as (role, engine, _admin_engine):
        vacuum, _analyze = _run(engine, "vacuum_mart_uti")
    assert vacuum.status == "ok"
    assert any(f"GRANT SELECT ON svv_table_info TO {role};" in n for n in vacuum.notes), vacuum.notes


# --- 1b: sys_vacuum_history --------------------------------------------------------------------------


@pytest.mark.parametrize(("history", "status"), [("Skipped", "skipped"), ("Failed", "failed")])
def test_a_skipped_or_failed_history_row_says_so_with_the_reason(
    redshift_warehouse: str, history, status
) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    admin = _admin(redshift_warehouse)
    redshift_twin_catalog.set_table_state(admin, settings.mart_schema, UTI, vacuum_status=history)
    vacuum, _analyze = _run(engine, "vacuum_mart_uti")
    admin.dispose()
    engine.dispose()
    assert vacuum.status == status, vacuum.error
    assert vacuum.error.startswith(f"sys_vacuum_history reports '{history}' for this VACUUM DELETE ONLY")
    assert vacuum.after.ghost_rows == vacuum.before.ghost_rows > 0  # nothing was vacuumed


def test_only_a_completed_row_of_the_steps_own_kind_proves_it(own_twin: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    admin = _admin(own_twin)
    mart = settings.mart_schema
    started = datetime.now(UTC).replace(tzinfo=None)
    (delete,) = _run(engine, "vacuum_mart_ecs_delete", run_started=started)
    assert delete.status == "ok"
    # The SORT ONLY step leaves no row of its own; the DELETE row of this run and an automatic
    # Sort row are no proof of it.
    redshift_twin_catalog.set_table_state(admin, mart, ECS, unsorted=30.0, vacuum_status="no row")
    redshift_twin_catalog.add_history(
        admin, mart, ECS, kind="Sort", status="Complete", automatic=True, user="rdsdb",
        started=datetime.now(UTC).replace(tzinfo=None),
    )  # fmt: skip
    sort, _analyze = _run(engine, "vacuum_mart_ecs_sort", run_started=started)
    admin.dispose()
    engine.dispose()
    assert sort.status == "unknown", (sort.status, sort.error)
    assert "30.0 %" in sort.error


# --- 1c: ANALYZE judged ---------------------------------------------------------------------------------


def test_analyze_by_a_user_who_may_not_is_a_failure(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    with _as_role(redshift_warehouse, owner=False, svv=True) as (role, engine, _admin_engine):
        _vacuum, analyze = _run(engine, "vacuum_mart_uti")
    assert analyze.status == "failed", analyze.error
    assert f"{role} is neither the owner" in analyze.error


def test_analyze_that_brought_stats_off_down_is_ok(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)
    _vacuum, analyze = _run(engine, "vacuum_mart_uti")
    engine.dispose()
    assert analyze.before.stats_off > 10 and analyze.after.stats_off == 0
    assert analyze.status == "ok" and analyze.error is None


# --- 1d: who may VACUUM --------------------------------------------------------------------------------


def test_a_database_owner_may_not_vacuum_a_table_that_is_not_shared_to_it(own_twin: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    with _as_role(own_twin, owner=False, svv=True) as (role, engine, admin):
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {sa.make_url(own_twin).database} OWNER TO {role}")
        try:
            vacuum, analyze = _run(engine, "vacuum_mart_uti")
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER DATABASE {sa.make_url(own_twin).database} OWNER TO postgres")
    for outcome in (vacuum, analyze):
        assert outcome.status == "failed", (outcome.operation, outcome.status, outcome.error)
        assert "privilege no-op" in outcome.error
    assert vacuum.after.ghost_rows == vacuum.before.ghost_rows > 0


def test_a_user_granted_vacuum_and_analyze_is_allowed(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    _pg_setup(settings).dispose()
    with _as_role(redshift_warehouse, owner=False, svv=True) as (role, engine, admin):
        redshift_twin_catalog.grant_system_privilege(admin, role, "VACUUM")
        redshift_twin_catalog.grant_system_privilege(admin, role, "ANALYZE")
        # No history row: only the privilege model decides between "no-op" and "no evidence".
        redshift_twin_catalog.set_table_state(admin, settings.mart_schema, UTI, vacuum_status="no row")
        vacuum, analyze = _run(engine, "vacuum_mart_uti")
    assert vacuum.status == "unknown", vacuum.error
    assert "no evidence" in vacuum.error
    assert analyze.status == "ok", analyze.error


def test_sys_analyze_history_proves_or_skips_the_analyze(redshift_warehouse: str) -> None:
    settings = Settings.from_env()
    engine = _pg_setup(settings)  # run as a superuser: sys_analyze_history is superuser-only
    admin = _admin(redshift_warehouse)
    _vacuum, analyzed = _run(engine, "vacuum_mart_uti")
    redshift_twin_catalog.set_analyze_status(admin, settings.mart_schema, UTI, "Skipped")
    _vacuum, skipped = _run(engine, "vacuum_mart_uti")
    admin.dispose()
    engine.dispose()
    assert (analyzed.status, analyzed.error) == ("ok", None)
    assert "history: ANALYZE Full" in analyzed.notes
    assert skipped.status == "skipped", skipped.error
    assert skipped.error.startswith("sys_analyze_history reports 'Skipped' for this ANALYZE")
