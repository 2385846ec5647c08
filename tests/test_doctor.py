"""``doctor`` against real PostgreSQL as a restricted login role with real (missing) privileges.

The fixes the doctor prints are run as they are, and a second run must then pass: that proves
each printed statement is exact.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.reports import doctor
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.conftest import run_cli
from tests.fake_redshift import FakeRedshift
from tests.pg_roles import grant_read, restricted_role


@pytest.fixture
def deployed(warehouse):
    """Every table of a deployment, created by the admin, plus a history look-alike."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    hist = [tables.hist_uts(2025, 2), tables.hist_ecs(2025, 2)]
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables + hist)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {settings.mart_schema}.hist_ecs_order_info_2027_h1 (id INT)")
    engine.dispose()
    # An empty embedded source (doctor never creates a missing one): its tables are missing.
    source = db.create_engine(settings.source_url, [settings.source_schema])
    source.connect().close()
    source.dispose()
    return settings


def test_doctor_names_each_missing_privilege_and_its_fix(deployed):
    mart, ods, src = deployed.mart_schema, deployed.ods_schema, deployed.source_schema
    twin = deployed.warehouse_url.startswith("redshift")
    with restricted_role() as (role, _url, admin):
        # The same dialect as the test's warehouse, logged in as the role.
        url = sa.make_url(deployed.warehouse_url).set(username=role).render_as_string(hide_password=False)
        if twin:  # the svv_table_info stand-in lives in a schema of its own
            grant_read(admin, role, redshift_twin.STAND_IN_SCHEMA)
        with admin.connect() as conn:
            for grant in (
                f"GRANT USAGE ON SCHEMA {mart}, {ods} TO {role}",
                f"GRANT SELECT ON ALL TABLES IN SCHEMA {mart} TO {role}",
                f"REVOKE SELECT ON {mart}.mart_ecs_order_info FROM {role}",
                f"REVOKE SELECT ON {mart}.hist_ecs_order_info_2025_h2 FROM {role}",
                f"GRANT SELECT, INSERT ON {ods}.order_tracking_exceptions TO {role}",
                f"ALTER TABLE {mart}.mart_uni_tracking_info OWNER TO {role}",
            ):
                conn.exec_driver_sql(grant)
            # svv_table_info lists only tables that hold rows (as on Redshift): give it one
            conn.exec_driver_sql(
                f"INSERT INTO {mart}.mart_uni_tracking_info (order_id, update_time) VALUES (1, '2026-01-01')"
            )
        admin.dispose()  # a backend publishes its table statistics when it ends

        first = run_cli("--warehouse-url", url, "doctor")

        lines = first.stdout.splitlines()
        assert first.returncode == 1, first.stdout + first.stderr
        # Redshift: a user granted the VACUUM permission may, a database owner may not (issue 24).
        who_may = "owner, database owner or superuser"
        nor_granted = operator = ""
        if twin:
            who_may = "owner, superuser or granted the VACUUM permission"
            nor_granted = (
                ", nor granted the VACUUM permission (a database owner counts only for tables shared to it)"
            )
            operator = f'GRANT ROLE "sys:operator" TO {role}; (it carries VACUUM and ANALYZE), '

        expected = [
            f"OK   schema {mart}: usable",
            f"OK   {mart}.mart_uni_tracking_info: SELECT granted",
            f"FAIL {mart}.mart_ecs_order_info: no SELECT privilege; fix: "
            f"GRANT SELECT ON {mart}.mart_ecs_order_info TO {role};",
            f"OK   {mart}.hist_uni_tracking_spath_2025_h2: SELECT granted",
            f"WARN {mart}.hist_ecs_order_info_2027_h1: named like a history table but has no order_id "
            "column; the checks skip it",
            f"FAIL {mart}.hist_ecs_order_info_2025_h2: no SELECT privilege; fix: "
            f"GRANT SELECT ON {mart}.hist_ecs_order_info_2025_h2 TO {role};",
            f"FAIL {ods}.order_tracking_exceptions: no UPDATE privilege; fix: "
            f"GRANT UPDATE ON {ods}.order_tracking_exceptions TO {role};",
            f"FAIL {ods}.order_tracking_maintenance_log: no SELECT, INSERT privilege; fix: "
            f"GRANT SELECT, INSERT ON {ods}.order_tracking_maintenance_log TO {role};",
            f"OK   VACUUM {mart}.mart_uni_tracking_info: allowed ({who_may})",
            f"FAIL VACUUM {mart}.mart_ecs_order_info: {role} is neither the owner (postgres) nor a "
            f"superuser{nor_granted}, so VACUUM would skip it silently; fix: run it as the owner of "
            f"{mart}.mart_ecs_order_info (postgres) or a superuser, {operator}or "
            f"ALTER TABLE {mart}.mart_ecs_order_info OWNER TO {role};",
            # The twin runs serializable, as Redshift does (issue 24 section 3).
            f"OK   transaction isolation level: {'serializable' if twin else 'read committed'}",
            f"FAIL source {src}.ecs_order_info not found (missing, or hidden from the user); fix: check "
            f"ORDER_TRACKING_SOURCE_SCHEMA, or GRANT SELECT ON {src}.ecs_order_info TO <dq user>;",
        ]
        for line in expected:
            assert line in lines, f"{line!r} not in:\n{first.stdout}"
        driver = "redshift+psycopg2" if twin else "postgresql+psycopg2"
        assert lines[0].startswith(f"OK   warehouse: connected to {driver}://") and f"as {role}" in lines[0]
        if twin:
            assert f"OK   svv_table_info shows {mart}.mart_uni_tracking_info" in lines
            # mart_ecs_order_info is empty (so not listed) and not readable by the role
            assert (
                f"FAIL svv_table_info hides {mart}.mart_ecs_order_info (no SELECT): vacuum figures "
                in first.stdout
            )
        assert lines[-1] == f"{len(lines) - 1} checks: {10 if twin else 9} failed"

        # Every printed GRANT / ALTER TABLE is exact: run them, and the warehouse passes.
        fixes = [
            line.split("; fix: ", 1)[1] for line in lines if "; fix: GRANT" in line and "kuaisong" not in line
        ]
        fixes += [line.rsplit(" or ", 1)[1] for line in lines if "; fix: run it as the owner" in line]
        assert len(fixes) == (7 if twin else 6)
        with admin.connect() as conn:
            for statement in fixes:
                conn.exec_driver_sql(statement)
        second = run_cli("--warehouse-url", url, "doctor", "--skip-source")
    assert second.returncode == 0, second.stdout
    assert "FAIL" not in second.stdout and second.stdout.splitlines()[-1].endswith("0 failed; ready")


def test_doctor_unreachable_warehouse_is_one_failed_check():
    proc = run_cli("--warehouse-url", "postgresql://nobody@127.0.0.1:1/none", "doctor", "--skip-source")
    assert proc.returncode == 1
    first, last = proc.stdout.splitlines()
    assert first.startswith("FAIL warehouse: cannot connect to postgresql+psycopg2://nobody@127.0.0.1:1/none")
    assert last == "1 checks: 1 failed"


def test_doctor_reads_the_mariadb_source_without_reading_rows(deployed, maria_source):
    engine = db.create_engine(maria_source, [deployed.source_schema])
    schema.create_tables(engine, schema.build_tables(deployed).source_tables[:2])
    engine.dispose()
    src = deployed.source_schema

    proc = run_cli("doctor")

    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout
    assert f"OK   source {src}.ecs_order_info: readable" in lines
    assert f"OK   source {src}.uni_tracking_info: readable" in lines
    # The account as MySQL matched it (CURRENT_USER), e.g. 'root'@'127.0.0.1'.
    missing = (
        f"FAIL source {src}.uni_tracking_spath not found (missing, or hidden from the user); fix: check "
        f"ORDER_TRACKING_SOURCE_SCHEMA, or GRANT SELECT ON {src}.uni_tracking_spath TO 'root'@'"
    )
    assert [line for line in lines if line.startswith(missing)], proc.stdout
    assert lines[-1].endswith("checks: 1 failed")


def test_doctor_svv_table_info_visibility_on_redshift():
    # Redshift only; the twin will run the whole doctor. Here: the exact query through the real
    # dialect, answered by the fake connection (one table listed, one hidden, one empty).
    fake = FakeRedshift()
    fake.canned.append(
        ('SELECT svv_table_info."table" \nFROM svv_table_info', [{"table": "mart_uni_tracking_info"}])
    )
    fake.no_select.add("settlement_public.mart_uni_tracking_spath")
    tables = schema.build_tables(Settings.from_env())
    engine = fake.engine()
    with engine.connect() as conn:
        checks = list(doctor._svv_table_info(conn, [tables.mart_uti, tables.mart_uts, tables.mart_ecs], "dq"))
    engine.dispose()
    assert [c.line() for c in checks] == [
        "OK   svv_table_info shows settlement_public.mart_uni_tracking_info",
        "FAIL svv_table_info hides settlement_public.mart_uni_tracking_spath (no SELECT): vacuum figures "
        "would be unknown; fix: GRANT SELECT ON settlement_public.mart_uni_tracking_spath TO dq;",
        "WARN svv_table_info does not list settlement_public.mart_ecs_order_info: it holds no data yet",
    ]
    sent = [sql for sql, _, _ in fake.executed if "svv_table_info" in sql]
    assert sent == [
        'SELECT svv_table_info."table" \nFROM svv_table_info \nWHERE svv_table_info.schema = %(schema_1)s '
        'AND svv_table_info."table" IN (%(table_1_1)s, %(table_1_2)s, %(table_1_3)s)'
    ]


def test_doctor_says_why_a_history_look_alike_is_skipped(warehouse):
    """A history-named table with a text order_id: the WARN names its type, not a missing column."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables)
    mart = settings.mart_schema
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {mart}.hist_uni_tracking_spath_2027_h1 "
            "(order_id VARCHAR(32), pathtime TIMESTAMP, update_time TIMESTAMP)"
        )
    lines = [c.line() for c in doctor.warehouse_checks(engine, settings)]
    engine.dispose()
    warn = [line for line in lines if "hist_uni_tracking_spath_2027_h1" in line]
    assert len(warn) == 1 and warn[0].startswith("WARN"), lines
    assert "its order_id column is" in warn[0] and "has no order_id column" not in warn[0], warn
    assert warn[0].endswith("; the checks skip it"), warn


def test_doctor_gives_the_svv_table_info_grant_when_the_view_shows_nothing():
    # Issue 24 1a: to a user not granted it, svv_table_info shows no rows (no error on Redshift).
    fake = FakeRedshift()
    fake.svv_readable = False
    tables = schema.build_tables(Settings.from_env())
    engine = fake.engine()
    with engine.connect() as conn:
        checks = list(doctor._svv_table_info(conn, [tables.mart_uti, tables.mart_uts, tables.mart_ecs], "dq"))
    engine.dispose()
    assert [c.line() for c in checks] == [
        "WARN svv_table_info shows dq no table at all: the tables are empty, or it is not granted (visible "
        "only to superusers unless granted; vacuum and analyze figures would be unknown); "
        "fix: GRANT SELECT ON svv_table_info TO dq;"
    ]
