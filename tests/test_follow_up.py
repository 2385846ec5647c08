"""Issue 23 end to end: source verdicts and healed open exceptions, through the real checkpoints.

MariaDB as the source; PostgreSQL and the Redshift twin as the warehouse (``warehouse`` runs each
test in both dialects). One order per verdict; open exceptions that healed, that still fail
outside the window, and whose order left the mart.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.checks.run import run_checks
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH, Settings
from tests import redshift_twin
from tests.test_malformed_catalogue import AS_OF, IN, Data, load
from tests.test_source_verdict import LATER, SilentServer, refused_port, source_data

CHECKS = ["uti_uts_alignment", "missing_spath"]
OLD = IN - timedelta(days=5)  # outside the 24-hour window


def data() -> Data:
    d = source_data()
    # Test 2 findings: 201 (in_source), 202 (missing_in_source), 203 (not in the source at all).
    for order_id in (201, 202, 203):
        d.add("mart_uti", order_id=order_id, update_time=IN)
    # Test 1 findings: 101 (warehouse stale: in_source), 102 (same mismatch in the source),
    # 103 (not in the source), 104 (source has no spath row).
    d.add("mart_uti", order_id=101, update_time=IN).add(
        "mart_uts", order_id=101, pathtime=IN - timedelta(hours=1)
    )
    d.add("mart_uti", order_id=102, update_time=LATER).add("mart_uts", order_id=102, pathtime=IN)
    d.add("mart_uti", order_id=103, update_time=IN).add("mart_uts", order_id=103, pathtime=OLD)
    d.add("mart_uti", order_id=104, update_time=IN).add("mart_uts", order_id=104, pathtime=OLD)
    # Open exceptions from earlier nights: 105 healed (outside today's window), 106 still fails
    # outside the window, 107 is gone from the mart; 205 (Test 2) healed.
    d.add("mart_uti", order_id=105, update_time=OLD).add("mart_uts", order_id=105, pathtime=OLD)
    d.add("mart_uti", order_id=106, update_time=OLD).add(
        "mart_uts", order_id=106, pathtime=OLD - timedelta(hours=2)
    )
    d.add("mart_uti", order_id=205, update_time=OLD).add("mart_uts", order_id=205, pathtime=OLD)
    for order_id in (105, 106, 107):
        d.open_exceptions.append(
            {"order_id": order_id, "exception_type": UTI_UTS_TIME_MISMATCH, "notes": "old"}
        )
    d.open_exceptions.append({"order_id": 205, "exception_type": ORDER_MISSING_SPATH, "notes": "old"})
    return d


def seed(settings: Settings) -> None:
    """The data in, through plain PostgreSQL for the twin (seeding is not the product's SQL)."""
    url = settings.warehouse_url
    if redshift_twin.is_twin_url(url):
        url = redshift_twin.postgres_url(url)
    load(replace(settings, warehouse_url=url), data())


def open_rows(settings: Settings) -> dict[tuple[int, str], dict]:
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(ex))]
    engine.dispose()
    return {(r["order_id"], r["exception_type"]): r for r in rows if r["resolved_at"] is None} | {
        (r["order_id"], r["exception_type"] + ":resolved"): r for r in rows if r["resolved_at"] is not None
    }


def follow_ups(report) -> dict[str, dict]:
    return {o.exception_type: o.details["follow_up"] for o in report.outcomes if o.exception_type}


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_every_verdict_stored_and_healed_orders_reported(warehouse):
    settings = Settings.from_env()
    seed(settings)
    report = run_checks(settings, AS_OF, CHECKS)
    assert [o.status for o in report.outcomes] == ["fail", "fail"], [o.message for o in report.outcomes]
    assert report.exit_code() == 1
    rows = open_rows(settings)
    verdicts = {k: r["source_verdict"] for k, r in rows.items()}
    assert verdicts == {
        (101, UTI_UTS_TIME_MISMATCH): "in_source",
        (102, UTI_UTS_TIME_MISMATCH): "mismatch_in_source",
        (103, UTI_UTS_TIME_MISMATCH): "missing_in_source",
        (104, UTI_UTS_TIME_MISMATCH): "mismatch_in_source",
        (105, UTI_UTS_TIME_MISMATCH): "missing_in_source",  # open, healed: still looked up
        (106, UTI_UTS_TIME_MISMATCH): "missing_in_source",
        (107, UTI_UTS_TIME_MISMATCH): "missing_in_source",
        (201, ORDER_MISSING_SPATH): "in_source",
        (202, ORDER_MISSING_SPATH): "missing_in_source",
        (203, ORDER_MISSING_SPATH): "missing_in_source",
        (205, ORDER_MISSING_SPATH): "missing_in_source",
    }
    detail = rows[(201, ORDER_MISSING_SPATH)]["source_detail"]
    assert detail.startswith("source: 3 spath rows") and "; warehouse: 0 spath rows" in detail
    # Healed: reported with the run, still open (the spec's gate semantics).
    assert rows[(105, UTI_UTS_TIME_MISMATCH)]["passing_since"] == AS_OF
    assert rows[(105, UTI_UTS_TIME_MISMATCH)]["passing_run"].startswith("as_of_")
    assert rows[(205, ORDER_MISSING_SPATH)]["passing_since"] == AS_OF
    assert all(r["passing_since"] is None for k, r in rows.items() if k[0] not in (105, 205))
    fu = follow_ups(report)
    assert fu[UTI_UTS_TIME_MISMATCH]["now_passing_ids"] == [105]
    assert fu[UTI_UTS_TIME_MISMATCH]["verdicts"] == {
        "in_source": 1,
        "missing_in_source": 4,
        "mismatch_in_source": 2,
    }
    assert fu[UTI_UTS_TIME_MISMATCH]["in_source_ids"] == [101]
    assert fu[ORDER_MISSING_SPATH]["now_passing_ids"] == [205]
    assert fu[ORDER_MISSING_SPATH]["auto_resolved"] == 0


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_auto_resolve_closes_only_the_healed(warehouse):
    settings = replace(Settings.from_env(), auto_resolve=True)
    seed(settings)
    report = run_checks(settings, AS_OF, CHECKS)
    rows = open_rows(settings)
    closed = {k: r for k, r in rows.items() if k[1].endswith(":resolved")}
    assert sorted(closed) == [
        (105, UTI_UTS_TIME_MISMATCH + ":resolved"),
        (205, ORDER_MISSING_SPATH + ":resolved"),
    ]
    for r in closed.values():
        assert r["resolved_by"] == "auto"
        assert (
            "run as_of_" in r["resolution_notes"]
            and f"as_of {AS_OF.isoformat(sep=' ')}" in r["resolution_notes"]
        )
    # Still failing (in or out of the window) or gone from the mart: open.
    assert (106, UTI_UTS_TIME_MISMATCH) in rows and (107, UTI_UTS_TIME_MISMATCH) in rows
    assert follow_ups(report)[UTI_UTS_TIME_MISMATCH]["auto_resolved"] == 1
    assert report.exit_code() == 1  # the others stay unresolved


@pytest.mark.usefixtures("gx_copy", "maria_source")
@pytest.mark.parametrize("fault", ["refused", "silent"])
def test_a_source_problem_keeps_every_finding_with_verdict_unknown(warehouse, fault):
    settings = Settings.from_env()
    seed(settings)
    server = SilentServer() if fault == "silent" else None
    port = server.port if server else refused_port()
    url = f"mysql+pymysql://root:secret@127.0.0.1:{port}/{settings.source_schema}"
    from order_tracking.settings import Timeouts

    broken = replace(settings, source_url=url, timeouts=replace(Timeouts(), connect_secs=1, read_secs=1))
    try:
        report = run_checks(broken, AS_OF, CHECKS)
    finally:
        if server:
            server.close()
    assert report.exit_code() == 1  # findings, no error: the source is a side channel here
    rows = open_rows(settings)
    assert {k[0] for k in rows} == {101, 102, 103, 104, 105, 106, 107, 201, 202, 203, 205}
    assert {r["source_verdict"] for r in rows.values()} == {"unknown"}
    word = "timed out" if fault == "silent" else "unreachable"
    assert all(r["source_detail"].startswith(f"unknown: source {word}") for r in rows.values())
    assert all("secret" not in r["source_detail"] for r in rows.values())


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_email_exceptions_command_and_data_docs_show_verdicts(pg_warehouse, smtp_sink, monkeypatch):
    from pathlib import Path

    from tests.conftest import run_cli
    from tests.test_alert_email import parts

    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))
    settings = Settings.from_env()
    seed(settings)
    report = run_checks(settings, AS_OF, CHECKS)
    assert report.email_error is None and len(smtp_sink.messages) == 1
    _msg, text, html_part = parts(smtp_sink.messages[0]["data"])
    assert "source verdicts: in_source 1, missing_in_source 4, mismatch_in_source 2" in text
    assert "source verdicts: in_source 1, missing_in_source 3" in text  # Test 2
    # The backfill command lists only the in_source orders.
    uti_backfill = (
        "backfill the in_source orders: python -m order_tracking backfill --type UTI_UTS_TIME_MISMATCH "
        "--order-id 101 --by YOUR_NAME"
    )
    assert uti_backfill in text
    assert "backfill --type ORDER_MISSING_SPATH --order-id 201 --by YOUR_NAME" in text
    assert (
        "1 of 7 open now pass: close them with python -m order_tracking resolve --type "
        'UTI_UTS_TIME_MISMATCH --order-id 105 --by YOUR_NAME --notes "passes again"'
    ) in text
    assert "1 of 4 open now pass" in text and "in_source 1" in html_part
    # exceptions: JSON and CSV fields, the table's columns.
    proc = run_cli("exceptions", "--type", UTI_UTS_TIME_MISMATCH, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    by_id = {r["order_id"]: r for r in json.loads(proc.stdout)}
    assert by_id[101]["source_verdict"] == "in_source"
    assert by_id[102]["source_detail"].startswith("source: 1 spath rows")
    assert by_id[105]["now_passing"].startswith("since as_of_") and by_id[101]["now_passing"] is None
    proc = run_cli("exceptions", "--type", ORDER_MISSING_SPATH, "--format", "csv")
    rows = {int(r["order_id"]): r for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert rows[201]["source_verdict"] == "in_source" and rows[202]["source_verdict"] == "missing_in_source"
    assert rows[205]["now_passing"].startswith("since as_of_") and rows[201]["now_passing"] == ""
    proc = run_cli("exceptions", "--type", ORDER_MISSING_SPATH)
    header = proc.stdout.splitlines()[0].split()
    assert header[-3:] == ["now_passing", "source_detail", "notes"] and "source_verdict" in header
    # Each check's Data Docs page says it too.
    for outcome in report.outcomes:
        page = Path(outcome.data_docs_url.removeprefix("file://")).read_text()
        assert "source verdicts: in_source 1" in page, outcome.check
        assert "open now pass" in page


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_an_older_table_without_the_columns_still_gets_every_finding(pg_warehouse):
    from tests.conftest import run_cli

    settings = Settings.from_env()
    seed(settings)
    engine = sa.create_engine(pg_warehouse)
    with engine.begin() as conn:
        for column in ("source_verdict", "source_detail", "passing_since", "passing_run"):
            conn.execute(
                sa.text(f'ALTER TABLE "{settings.ods_schema}".order_tracking_exceptions DROP {column}')
            )
    report = run_checks(settings, AS_OF, CHECKS)
    assert report.exit_code() == 1, [o.message for o in report.outcomes]
    fu = follow_ups(report)[UTI_UTS_TIME_MISMATCH]
    assert fu["stored"] is False and "init-db" in fu["warning"]
    assert fu["verdicts"] == {"in_source": 1, "missing_in_source": 4, "mismatch_in_source": 2}
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(f'SELECT count(*) FROM "{settings.ods_schema}".order_tracking_exceptions')
        ).scalar_one()
    assert found == 11  # 7 + 4: every finding, old and new
    proc = run_cli("exceptions", "--type", UTI_UTS_TIME_MISMATCH, "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["source_verdict"] is None
    doctor = run_cli("doctor", "--skip-source")
    assert "WARN order_tracking_exceptions has no source_verdict" in doctor.stdout.replace(
        f"{settings.ods_schema}.", ""
    ), doctor.stdout
    # init-db adds them (and only them); the next run stores the verdicts.
    proc = run_cli("init-db")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("added ") == 4 and "order_tracking_exceptions.source_verdict" in proc.stdout
    assert run_cli("init-db").stdout.count("added ") == 0  # idempotent
    assert "has no source_verdict" not in run_cli("doctor", "--skip-source").stdout
    run_checks(settings, AS_OF, CHECKS)
    assert open_rows(settings)[(101, UTI_UTS_TIME_MISMATCH)]["source_verdict"] == "in_source"
    engine.dispose()


@pytest.mark.usefixtures("maria_source")
def test_the_gate_counts_now_passing(warehouse):
    from order_tracking.checks import exceptions_store
    from order_tracking.orchestration.gate import now_passing_text

    settings = Settings.from_env()
    seed(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    tables = schema.build_tables(settings)
    ex = tables.exceptions
    assert exceptions_store.now_passing_summary(engine, tables) == {}
    with engine.begin() as conn:
        conn.execute(ex.update().where(ex.c.order_id == 105).values(passing_since=AS_OF, passing_run="r1"))
    assert exceptions_store.now_passing_summary(engine, tables) == {UTI_UTS_TIME_MISMATCH: 1}
    engine.dispose()
    text = now_passing_text({UTI_UTS_TIME_MISMATCH: 3}, {UTI_UTS_TIME_MISMATCH: 1})
    assert text.startswith("1 of them now pass (UTI_UTS_TIME_MISMATCH=1)")
    assert now_passing_text({UTI_UTS_TIME_MISMATCH: 3}, None).startswith("now passing: unknown")


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_the_first_passing_run_is_kept_and_cleared_when_it_fails_again(warehouse):
    settings = Settings.from_env()
    seed(settings)
    run_checks(settings, AS_OF, ["uti_uts_alignment"])
    later = AS_OF + timedelta(hours=1)
    second = run_checks(settings, later, ["uti_uts_alignment"])
    row = open_rows(settings)[(105, UTI_UTS_TIME_MISMATCH)]
    assert row["passing_since"] == AS_OF and row["passing_run"] == f"as_of_{AS_OF:%Y%m%dT%H%M%S}"
    assert follow_ups(second)[UTI_UTS_TIME_MISMATCH]["now_passing_ids"] == [105]
    # The drift comes back: 105 fails again (outside the window) and is no longer "now passing".
    url = settings.warehouse_url
    plain = redshift_twin.postgres_url(url) if redshift_twin.is_twin_url(url) else url
    engine = sa.create_engine(plain)
    with engine.begin() as conn:
        uts = f'"{settings.mart_schema}".mart_uni_tracking_spath'
        conn.execute(
            sa.text(f"UPDATE {uts} SET pathtime = pathtime - interval '1 hour' WHERE order_id = 105")
        )
    engine.dispose()
    third = run_checks(settings, later, ["uti_uts_alignment"])
    row = open_rows(settings)[(105, UTI_UTS_TIME_MISMATCH)]
    assert row["passing_since"] is None and row["passing_run"] is None
    assert follow_ups(third)[UTI_UTS_TIME_MISMATCH]["now_passing"] == 0


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_the_airflow_task_path_carries_the_follow_up_to_its_summary_email_and_page(pg_warehouse):
    """The DQ task's checkpoint run (no deferred Data Docs build): the page is rebuilt with the
    verdicts, the XCom summary carries them, and the notifier's email words them."""
    from pathlib import Path

    from order_tracking.alerts.content import build_alert
    from order_tracking.orchestration.operator import _CheckpointWithParameters, summarize

    settings = Settings.from_env()
    seed(settings)
    wrapper = _CheckpointWithParameters("missing_spath", {"as_of": AS_OF.isoformat()}, "manual__t", settings)
    wrapper.configure(wrapper.load_context())
    wrapper.run()
    summary = summarize("missing_spath", AS_OF, wrapper)
    fu = summary["follow_up"]
    assert fu["verdicts"] == {"in_source": 1, "missing_in_source": 3} and fu["in_source_ids"] == [201]
    assert json.loads(json.dumps(summary)) == summary  # an XCom value
    page = Path(wrapper.data_docs_page().removeprefix("file://")).read_text()
    assert "source verdicts: in_source 1, missing_in_source 3" in page
    assert "backfill --type ORDER_MISSING_SPATH --order-id 201 --by YOUR_NAME" in page
    alert = build_alert([summary], as_of=AS_OF.isoformat(), now=AS_OF)
    assert "backfill --type ORDER_MISSING_SPATH --order-id 201 --by YOUR_NAME" in alert.text
    assert "1 of 4 open now pass" in alert.text


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_the_embedded_sqlite_demo_gets_verdicts_and_auto_resolves(monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_AUTO_RESOLVE", "1")
    settings = Settings.from_env()
    seed(settings)
    report = run_checks(settings, AS_OF, CHECKS)
    rows = open_rows(settings)
    assert rows[(201, ORDER_MISSING_SPATH)]["source_verdict"] == "in_source"
    assert rows[(102, UTI_UTS_TIME_MISMATCH)]["source_verdict"] == "mismatch_in_source"
    assert rows[(105, UTI_UTS_TIME_MISMATCH + ":resolved")]["resolved_by"] == "auto"
    assert follow_ups(report)[ORDER_MISSING_SPATH]["auto_resolved"] == 1


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_over_the_limit_the_rest_is_unknown_and_says_why(pg_warehouse):
    settings = replace(Settings.from_env(), source_check_limit=2)
    seed(settings)
    report = run_checks(settings, AS_OF, ["missing_spath"])
    rows = [r for k, r in open_rows(settings).items() if k[1] == ORDER_MISSING_SPATH]
    unknown = [r for r in rows if r["source_verdict"] == "unknown"]
    assert len(rows) == 4 and len(unknown) == 2
    reason = "unknown: over the limit: ORDER_TRACKING_SOURCE_CHECK_LIMIT=2 orders per type and run"
    assert all(r["source_detail"] == reason for r in unknown)
    # This run's findings are looked up first; the older open one is over the limit.
    assert 205 in {r["order_id"] for r in unknown}
    assert follow_ups(report)[ORDER_MISSING_SPATH]["verdicts"]["unknown"] == 2
