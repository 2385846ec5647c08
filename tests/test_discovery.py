"""History discovery (schema.discover_hist_tables) on real PostgreSQL: look-alike tables are
skipped with a warning, a table the DQ user may not read fails with the GRANT to run."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.checks import rules
from order_tracking.errors import UserError
from order_tracking.settings import Settings
from tests.conftest import run_cli
from tests.pg_roles import restricted_role


def _make_hist():
    """Real history tables of both kinds and a spath look-alike without order_id; yields (the
    product's engine, tables, settings)."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    real = [tables.hist_uts(2025, 2), tables.hist_uts(2026, 1), tables.hist_ecs(2025, 2)]
    schema.create_tables(engine, tables.pipeline_tables + real)
    look_alike = f"{settings.mart_schema}.hist_uni_tracking_spath_2027_h1"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {look_alike} (id BIGINT, path VARCHAR(64))")
    yield engine, tables, settings
    engine.dispose()


@pytest.fixture
def hist(warehouse):
    """In both dialects (PostgreSQL, the Redshift twin)."""
    yield from _make_hist()


@pytest.fixture
def hist_twin(redshift_warehouse):
    """The Redshift twin only (the end-to-end run is slow; Redshift is where it matters)."""
    yield from _make_hist()


def test_look_alike_table_is_skipped_with_a_warning(hist, caplog):
    engine, tables, settings = hist
    mart = settings.mart_schema
    with caplog.at_level(logging.WARNING, logger="order_tracking.schema"), engine.connect() as conn:
        names = schema.discover_hist_tables(conn, mart, schema.HIST_UTS_PREFIX)
        used = rules.hist_uts_tables(conn, tables, None)
    assert names == ["hist_uni_tracking_spath_2025_h2", "hist_uni_tracking_spath_2026_h1"]
    assert [t.name for t in used] == names
    assert (
        f"skipping {mart}.hist_uni_tracking_spath_2027_h1: it is named like a history table but has no "
        "order_id column"
    ) in caplog.messages


def test_look_alike_does_not_stop_the_check(hist_twin, gx_copy):
    # Test 2 end to end: one order updated in the window with no spath anywhere is still found.
    engine, tables, _settings = hist_twin
    with engine.begin() as conn:
        conn.execute(tables.mart_uti.insert().values(order_id=7, update_time=datetime(2026, 11, 25, 1)))
    schema.create_tables(engine, tables.ods_tables)

    proc = run_cli("monitor", "--checks", "missing_spath", "--as-of", "2026-11-25T03:00:00")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "hist_uni_tracking_spath_2027_h1" in proc.stderr
    rows = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--format", "csv").stdout.splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["7"]


def test_history_table_without_select_fails_with_the_grant(hist):
    _engine, _tables, settings = hist
    mart = settings.mart_schema
    with restricted_role() as (role, _url, admin):
        with admin.connect() as conn:
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {mart} TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT ON {mart}.hist_uni_tracking_spath_2025_h2 TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT ON {mart}.hist_ecs_order_info_2025_h2 TO {role}")
        # The same dialect as the test's warehouse, logged in as the role.
        restricted = db.create_engine(sa.make_url(settings.warehouse_url).set(username=role))
        try:
            with restricted.connect() as conn:
                assert schema.discover_hist_tables(conn, mart, schema.HIST_ECS_PREFIX) == [
                    "hist_ecs_order_info_2025_h2"
                ]
                with pytest.raises(UserError) as err:
                    schema.discover_hist_tables(conn, mart, schema.HIST_UTS_PREFIX)
        finally:
            restricted.dispose()
    assert str(err.value) == (
        f"the warehouse user {role} may not read {mart}.hist_uni_tracking_spath_2026_h1 (no SELECT "
        f"privilege); run: GRANT SELECT ON {mart}.hist_uni_tracking_spath_2026_h1 TO {role};"
    )
