"""Every documented setting takes effect everywhere (issue 11), and bad ones fail in one line.

One test per setting that issue 11 found ignored or half applied (lookback, Test 0 window and
buffer), per timeout (on the real servers, in our engines and in the engines GX makes from its
URL), per schema-name rule; URLs whose passwords are not percent-encoded; the maintenance-log
warning. Settings covered elsewhere: the URLs and schema names (every server test), the explicit
history list (test_foundation), the alert address and SMTP (test_monitoring), the GX root
(``gx_copy``), the connect timeout (test_fault_injection).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from order_tracking import db
from order_tracking.checks import gx_project
from order_tracking.checks.run import run_checks
from order_tracking.errors import UserError
from order_tracking.settings import Settings, Timeouts
from tests import redshift_twin_catalog
from tests.conftest import MARIA_URL, PG_URL, run_cli
from tests.test_malformed_catalogue import AS_OF, Data, load

# --- the windows ------------------------------------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_lookback_hours_setting_wins_over_the_suite(monkeypatch):
    load(Settings.from_env(), Data().add("mart_uti", order_id=1, update_time=AS_OF - timedelta(hours=2)))
    default = run_checks(Settings.from_env(), AS_OF, ["missing_spath"]).outcomes[0]
    assert default.failing == 1 and default.window[0] == str(AS_OF - timedelta(hours=24))
    monkeypatch.setenv("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "1")
    narrowed = run_checks(Settings.from_env(), AS_OF, ["missing_spath"]).outcomes[0]
    assert narrowed.status == "pass" and narrowed.window == (str(AS_OF - timedelta(hours=1)), str(AS_OF))


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_extraction_buffer_reaches_the_raw_side_no_false_alarm(monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_EXTRACTION_BUFFER_SECS", "0")
    settings = Settings.from_env()
    load(settings, Data().extracted(1, AS_OF - timedelta(minutes=1)))  # clean: source == raw
    outcome = run_checks(settings, AS_OF, ["extraction_count"]).outcomes[0]
    assert outcome.status == "pass", outcome
    assert outcome.window == (str(AS_OF - timedelta(hours=2)), str(AS_OF))


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_extraction_window_reaches_the_raw_side(monkeypatch):
    settings = Settings.from_env()
    load(settings, Data().extracted(1, AS_OF - timedelta(hours=3), raw=False))
    assert run_checks(settings, AS_OF, ["extraction_count"]).outcomes[0].status == "pass"
    monkeypatch.setenv("ORDER_TRACKING_EXTRACTION_WINDOW_SECS", str(4 * 3600))
    outcome = run_checks(Settings.from_env(), AS_OF, ["extraction_count"]).outcomes[0]
    assert outcome.status == "fail" and len(outcome.sample) == 3
    assert outcome.window[0] == str(AS_OF - timedelta(hours=4, minutes=5))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "0"),
        ("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "24h"),
        ("ORDER_TRACKING_EXTRACTION_WINDOW_SECS", "-5"),
        ("ORDER_TRACKING_EXTRACTION_BUFFER_SECS", "five"),
        ("ORDER_TRACKING_CONNECT_TIMEOUT_SECS", "-1"),
        ("ORDER_TRACKING_READ_TIMEOUT_SECS", "soon"),
        ("ORDER_TRACKING_STATEMENT_TIMEOUT_SECS", "1e"),
        ("ORDER_TRACKING_VACUUM_STATEMENT_TIMEOUT_SECS", "-3"),
        ("ORDER_TRACKING_SQLITE_BUSY_TIMEOUT_SECS", "x"),
        ("ORDER_TRACKING_SOURCE_SCHEMA", "kuai-song"),
        ("ORDER_TRACKING_MART_SCHEMA", "1st"),
    ],
)
def test_bad_setting_is_one_line_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=name):
        Settings.from_env()


def test_bad_setting_from_the_cli(sqlite_urls):
    proc = run_cli("exceptions", env={"ORDER_TRACKING_STATEMENT_TIMEOUT_SECS": "soon"})
    assert proc.returncode == 3
    assert (
        proc.stderr.strip()
        == "error: ORDER_TRACKING_STATEMENT_TIMEOUT_SECS='soon' is not a number of seconds "
        "from 0 to 604800 (7 days)"
    )


def test_schema_case_rules(monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_SCHEMA", "Rel_SrcUp")
    monkeypatch.setenv("ORDER_TRACKING_MART_SCHEMA", "Settlement_Public")
    monkeypatch.setenv("ORDER_TRACKING_ODS_SCHEMA", "SETTLEMENT_ODS")
    s = Settings.from_env()
    # MySQL database names are case-sensitive; Redshift folds identifiers to lower case.
    assert (s.source_schema, s.mart_schema, s.ods_schema) == (
        "Rel_SrcUp",
        "settlement_public",
        "settlement_ods",
    )


# --- timeouts: in the URL of every engine, ours and GX's ---------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/d", {"connect_timeout": "7", "keepalives": "1", "statement_timeout_ms": "9000"}),
        (
            "redshift+psycopg2://u@h:5439/d",
            {"connect_timeout": "7", "maintenance_statement_timeout_ms": "11000"},
        ),
        ("mysql://u@h/d", {"connect_timeout": "7", "read_timeout": "8", "write_timeout": "8"}),
        ("sqlite:////tmp/w.db", {"timeout": "3.5"}),
    ],
)
def test_engine_url_carries_every_timeout(url, expected):
    t = Timeouts(
        connect_secs=7, read_secs=8, statement_secs=9, vacuum_statement_secs=11, sqlite_busy_secs=3.5
    )
    query = db.engine_url(url, ["s"], timeouts=t).query
    assert {k: query[k] for k in expected} == expected


def test_other_url_plugins_are_kept():
    url = db.engine_url("postgresql://u@h/d?plugin=redshift_twin&application_name=x", timeouts=Timeouts())
    assert url.query["plugin"] == ("redshift_twin", db.TIMEOUT_PLUGIN_NAME)


def test_explicit_url_parameter_wins_over_the_setting():
    url = db.engine_url("postgresql://u@h/d?connect_timeout=99", timeouts=Timeouts(connect_secs=7))
    assert url.query["connect_timeout"] == "99"


def test_statement_timeout_reaches_our_engines_and_gx_engines(warehouse, schemas, monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_STATEMENT_TIMEOUT_SECS", "1")
    monkeypatch.setenv("ORDER_TRACKING_VACUUM_STATEMENT_TIMEOUT_SECS", "7")
    settings = Settings.from_env()
    load(settings, Data())
    ours = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, timeouts=settings.timeouts)
    gx_like = sa.create_engine(gx_project.gx_url(settings))  # what GX does with its connection string
    try:
        for engine in (ours, gx_like):
            with engine.connect() as conn:
                conn.rollback()  # SET at connect is committed: a rollback does not undo it
                assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1s"
        with ours.connect() as conn, pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            # A slow statement Redshift could run too (no pg_sleep/generate_series on Redshift).
            conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM pg_catalog.pg_attribute a, pg_catalog.pg_attribute b, "
                    "pg_catalog.pg_class c"
                )
            )
        autocommit = db.autocommit_engine(ours, settings.timeouts)  # what maintenance runs VACUUM/ANALYZE on
        seen: list[str] = []

        @sa.event.listens_for(autocommit, "before_cursor_execute")  # runs after the product's own
        def _observe(conn, cursor, statement, *args) -> None:
            # The twin sends a stand-in and runs the VACUUM itself right after, on this connection.
            if statement.startswith("VACUUM") or statement == redshift_twin_catalog.STAND_IN:
                probe = cursor.connection.cursor()
                probe.execute("SHOW statement_timeout")
                seen.append(probe.fetchone()[0])

        with autocommit.connect() as conn:
            conn.execute(sa.text(f'VACUUM "{schemas.mart}".mart_uni_tracking_info'))
            # VACUUM ran under its own limit; the connection is back to the ordinary one.
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1s"
        assert seen == ["7s"]
    finally:
        ours.dispose()
        gx_like.dispose()


def test_read_timeout_reaches_the_mysql_source(monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_READ_TIMEOUT_SECS", "1")
    engine = db.create_engine(MARIA_URL, role="source", timeouts=Timeouts.from_env())
    started = time.monotonic()
    try:
        with pytest.raises(sa.exc.OperationalError, match="timed out"), engine.connect() as conn:
            conn.execute(sa.text("SELECT SLEEP(5)"))
    finally:
        engine.dispose()
    assert time.monotonic() - started < 4


def test_sqlite_busy_timeout_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_SQLITE_BUSY_TIMEOUT_SECS", "0.3")
    engine = db.create_engine(f"sqlite:///{tmp_path / 'w.db'}", ["s"], timeouts=Timeouts.from_env())
    with engine.connect() as first:
        first.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        first.commit()
        first.connection.dbapi_connection.isolation_level = None
        first.exec_driver_sql("BEGIN IMMEDIATE")
        second = engine.connect()
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            second.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert 0.2 < time.monotonic() - started < 5
        second.close()
        first.exec_driver_sql("ROLLBACK")
    engine.dispose()


# --- passwords --------------------------------------------------------------------------------

BAD_URLS = [
    ("postgresql://postgres:p@ss:w/rd#%@127.0.0.1:1/test", "p@ss:w/rd#%"),
    ("postgresql://dq:Qz@Xv9@127.0.0.1:1/test", "Qz@Xv9"),
    ("mysql+pymysql://root:Kp/7?Wm@127.0.0.1:1/test", "Kp/7?Wm"),
]


def _fragments(password: str) -> list[str]:
    return [password[i : i + 3] for i in range(len(password) - 2)]


@pytest.mark.parametrize(("url", "password"), BAD_URLS)
def test_redaction_never_shows_any_part_of_a_password(url, password):
    shown = db.redact(url)
    assert shown.endswith("@127.0.0.1:1/test")
    assert not [f for f in _fragments(password) if f in shown], shown


def test_redaction_of_a_parseable_url_keeps_the_user():
    assert db.redact("postgresql://dq:s%40cret@h/d") == "postgresql://dq:***@h/d"
    assert db.redact("sqlite:////tmp/a@b.db") == "sqlite:////tmp/a@b.db"


@pytest.mark.parametrize(("url", "password"), BAD_URLS)
def test_unparseable_url_is_one_line_with_a_hint(sqlite_urls, url, password):
    source = url.startswith("mysql")
    command = ["init-db", "--with-pipeline-tables"] if source else ["exceptions"]
    proc = run_cli("--source-url" if source else "--warehouse-url", url, *command)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "percent-encode" in lines[0] and "Traceback" not in proc.stderr
    assert not [f for f in _fragments(password) if f in proc.stdout + proc.stderr]


def test_percent_encoded_password_connects_and_is_never_printed(sqlite_urls):
    proc = run_cli(
        "--warehouse-url", "postgresql://postgres:p%40ss%3Aw%2Frd%23%25@127.0.0.1:1/test", "exceptions"
    )
    assert proc.returncode == 3 and "cannot connect to warehouse" in proc.stderr
    assert "p%40ss" not in proc.stderr and "p@ss" not in proc.stderr


# --- the maintenance log ----------------------------------------------------------------------


def test_failed_maintenance_log_write_warns_at_default_verbosity(pg_warehouse, schemas):
    load(Settings.from_env(), Data())
    with sa.create_engine(PG_URL).begin() as conn:
        conn.execute(
            sa.text(
                f'ALTER TABLE "{schemas.ods}".order_tracking_maintenance_log '
                "ADD CONSTRAINT refuse_rows CHECK (false) NOT VALID"
            )
        )
    proc = run_cli("vacuum", "--tables", "uti")  # no -v
    assert "not written to the maintenance log" in proc.stderr, proc.stdout + proc.stderr
    assert "refuse_rows" in proc.stderr
