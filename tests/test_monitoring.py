"""The GX suite end to end: synthetic data in, exactly the injected orders out.

Warehouse on PostgreSQL, the Redshift twin or SQLite, source on MariaDB or SQLite; the checks run
through the real GX checkpoints (a copy of the committed gx/ folder per test, so Data Docs stay in tmp).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from order_tracking import db, schema, synthetic
from order_tracking.checks import exceptions_store, gx_project
from order_tracking.checks.run import run_checks
from order_tracking.settings import EXCEPTION_TYPES, Settings
from tests.conftest import ROOT, exception_rows, resolve_orders, run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
ORDERS = 2000


def seed(config: synthetic.SeedConfig | None = None) -> tuple[Settings, dict]:
    return seed_dataset(config or synthetic.SeedConfig(as_of=AS_OF, orders=ORDERS, seed=7))


def open_exceptions(settings: Settings) -> dict[str, list[int]]:
    """Independent read of the exceptions table: open order ids per type."""
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    out: dict[str, list[int]] = {t: [] for t in EXCEPTION_TYPES}
    with engine.connect() as conn:
        for order_id, etype in conn.execute(
            sa.select(ex.c.order_id, ex.c.exception_type)
            .where(ex.c.resolved_at.is_(None))
            .order_by(ex.c.order_id)
        ):
            out[etype].append(int(order_id))
    engine.dispose()
    return out


def assert_matches_manifest(report, settings: Settings, manifest: dict) -> None:
    by_check = {o.check: o for o in report.outcomes}
    assert all(o.status != "error" for o in report.outcomes), [o.message for o in report.outcomes]
    expected = manifest["expected"]
    assert by_check["uti_uts_alignment"].failing == len(expected["UTI_UTS_TIME_MISMATCH"])
    assert by_check["missing_spath"].failing == len(expected["ORDER_MISSING_SPATH"])
    assert by_check["reactivated_missing_ecs"].failing == len(expected["REACTIVATED_ORDER_MISSING_ECS"])
    assert open_exceptions(settings) == {t: sorted(expected[t]) for t in EXCEPTION_TYPES}
    short = sorted(t for t, n in manifest["extraction_dropped"].items() if n)
    test0 = by_check["extraction_count"]
    assert test0.status == ("fail" if short else "pass")
    assert sorted(r["table_name"] for r in test0.sample) == short


@pytest.mark.usefixtures("gx_copy")
def test_warehouse_mariadb_source_flags_exactly_the_injected(warehouse, maria_source):
    settings, manifest = seed()
    # The traps are in the data: boundaries, spath only in history, raw row at the buffer edge.
    assert manifest["traps"]["at_window_start"] and manifest["traps"]["spath_only_in_history"]
    report = run_checks(settings, AS_OF)
    assert_matches_manifest(report, settings, manifest)
    assert report.exit_code() == 2  # the extraction alarm outranks the open exceptions
    # Sample carries the evidence (update_time, max pathtime, diff) and the note says it.
    t1 = next(o for o in report.outcomes if o.check == "uti_uts_alignment")
    assert {"update_time", "max_pathtime", "diff_seconds", "notes"} <= set(t1.sample[0])
    assert "diff=" in t1.sample[0]["notes"]
    t3 = next(o for o in report.outcomes if o.check == "reactivated_missing_ecs")
    assert all(r["found_in"].startswith("hist_ecs_order_info_") for r in t3.sample)


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_sqlite_embedded_flags_exactly_the_injected_and_rerun_is_idempotent():
    settings, manifest = seed()
    first = run_checks(settings, AS_OF)
    assert_matches_manifest(first, settings, manifest)
    rows_before = exception_rows(settings)
    time.sleep(1.1)  # last_seen_at has one-second resolution
    second = run_checks(settings, AS_OF)
    assert_matches_manifest(second, settings, manifest)
    rows_after = exception_rows(settings)
    assert len(rows_after) == len(rows_before)
    t = schema.build_tables(settings).exceptions
    i_id, i_detected, i_seen = (
        list(t.c.keys()).index(k) for k in ("exception_id", "detected_at", "last_seen_at")
    )
    for before, after in zip(rows_before, rows_after, strict=True):
        assert before[i_id] == after[i_id] and before[i_detected] == after[i_detected]
        assert after[i_seen] > before[i_seen]
    by_check = {o.check: o for o in second.outcomes}
    assert by_check["missing_spath"].new == 0
    assert by_check["missing_spath"].already_open == len(manifest["expected"]["ORDER_MISSING_SPATH"])


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_resolved_then_redetected_opens_a_new_row():
    settings, manifest = seed()
    run_checks(settings, AS_OF, ["missing_spath"])
    order = manifest["expected"]["ORDER_MISSING_SPATH"][0]
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    tables = schema.build_tables(settings)
    exceptions_store.resolve(
        engine,
        tables,
        order_ids=[order],
        exception_type="ORDER_MISSING_SPATH",
        all_of_type=False,
        by="tester",
        notes="backfilled",
    )
    report = run_checks(settings, AS_OF, ["missing_spath"])
    assert report.outcomes[0].new == 1
    ex = tables.exceptions
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ex.c.resolved_at).where(ex.c.order_id == order).order_by(ex.c.exception_id)
        ).all()
    engine.dispose()
    assert len(rows) == 2 and rows[0][0] is not None and rows[1][0] is None


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_more_than_200_findings_with_some_already_open(warehouse):
    """The staged write path (more findings than validation fetches): re-detected rows move,
    a resolved one that recurs is reopened, nothing is lost (issue 10 item 3 on Redshift)."""
    settings, manifest = seed(synthetic.SeedConfig(as_of=AS_OF, orders=ORDERS, seed=5, missing_spath=250))
    expected = sorted(manifest["expected"]["ORDER_MISSING_SPATH"])
    assert len(expected) == 250
    first = run_checks(settings, AS_OF, ["missing_spath"]).outcomes[0]
    assert (first.status, first.failing, first.new, first.already_open) == ("fail", 250, 250, 0)
    resolve_orders(settings, "ORDER_MISSING_SPATH", expected[:1])
    second = run_checks(settings, AS_OF, ["missing_spath"]).outcomes[0]
    assert (second.failing, second.new, second.already_open) == (250, 1, 249)
    assert open_exceptions(settings)["ORDER_MISSING_SPATH"] == expected
    assert len(exception_rows(settings)) == 251


@pytest.mark.usefixtures("gx_copy")
def test_two_concurrent_monitor_processes_leave_no_duplicate(pg_warehouse, maria_source):
    settings, manifest = seed()
    cmd = [
        sys.executable,
        "-m",
        "order_tracking",
        "monitor",
        "--as-of",
        AS_OF.isoformat(),
        "--checks",
        "uti_uts_alignment,missing_spath,reactivated_missing_ecs",
    ]
    procs = [
        subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    for out, err, code in results:
        assert code == 1, (out, err)  # findings remain open: exit 1, no error
    assert open_exceptions(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    assert len(exception_rows(settings)) == sum(len(v) for v in manifest["expected"].values())


def test_data_docs_show_the_failing_order_ids(gx_copy, sqlite_urls):
    _, manifest = seed()
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath")
    assert proc.returncode == 1, proc.stderr
    site = gx_copy / "uncommitted" / "data_docs" / "local_site"
    assert f"Data Docs: {site / 'index.html'}" in proc.stdout
    pages = list((site / "validations" / "order_tracking_missing_spath").rglob("*.html"))
    assert len(pages) == 1
    html = pages[0].read_text()
    for order_id in manifest["expected"]["ORDER_MISSING_SPATH"]:
        assert str(order_id) in html
    assert "Test 2 (ORDER_MISSING_SPATH)" in html
    assert "failing orders" in html
    assert "password" not in html.lower()


def test_suite_whose_custom_class_is_missing_fails_the_run(gx_copy, sqlite_urls):
    seed()
    suite = gx_copy / "expectations" / "order_tracking_missing_spath.json"
    data = json.loads(suite.read_text())
    data["expectations"][0]["type"] = "expect_no_order_missing_spath_v2"  # a class nobody registered
    suite.write_text(json.dumps(data))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "order_tracking_missing_spath" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.usefixtures("gx_copy")
def test_extraction_count_equal_counts_pass_one_dropped_raw_row_alarms(pg_warehouse, maria_source):
    settings, manifest = seed(synthetic.SeedConfig(as_of=AS_OF, orders=ORDERS, seed=3).clean())
    assert not any(manifest["extraction_dropped"].values())
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "extraction_count")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Drop one raw spath row inside the window: the alarm must fire and name the table.
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    raw = schema.build_tables(settings).raw_uts
    with engine.begin() as conn:
        victim = conn.execute(
            sa.select(raw.c.id)
            .where(
                raw.c.pathtime >= datetime(2026, 11, 25, 1, 0), raw.c.pathtime < datetime(2026, 11, 25, 2, 50)
            )
            .limit(1)
        ).scalar_one()
        conn.execute(raw.delete().where(raw.c.id == victim))
    engine.dispose()
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "extraction_count")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "EXTRACTION COUNT ALARM: uni_tracking_spath" in proc.stdout
    assert open_exceptions(settings) == {t: [] for t in EXCEPTION_TYPES}  # Test 0 writes nothing


def test_bad_inputs_give_one_line_and_exit_3(gx_copy, sqlite_urls):
    proc = run_cli("monitor", "--as-of", "yesterday")
    assert proc.returncode == 3 and "--as-of" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("monitor", "--checks", "missing_spath,nope")
    assert proc.returncode == 3 and "unknown check nope" in proc.stderr
    proc = run_cli(
        "--warehouse-url", "postgresql://u:s3cret@127.0.0.1:1/x", "monitor", "--checks", "missing_spath"
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_exceptions_table_points_at_init_db(gx_copy, sqlite_urls):
    settings, _ = seed()
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {settings.ods_schema}.order_tracking_exceptions"))
    engine.dispose()
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 3
    path = settings.warehouse_url.removeprefix("sqlite:///")
    assert proc.stderr.strip() == (
        f"error: table {settings.ods_schema}.order_tracking_exceptions does not exist in warehouse "
        f"database {path!r} (sqlite:///{path}); run `python -m order_tracking init-db` first, "
        "or point the warehouse URL at the database that has it"
    )


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_one_run_discovers_history_once_per_rule_and_builds_data_docs_once(monkeypatch):
    """GX asks each expectation for its metrics twice; the rule (history discovery included) is
    still built once per check, and the run's pages are built in one site build that the URLs
    reported for every check point into, by the site builder that gave those URLs."""
    from great_expectations.data_context.data_context.abstract_data_context import AbstractDataContext

    from expectations_custom.data_docs import build as data_docs
    from expectations_custom.data_docs.site_builder import OrderTrackingSiteBuilder as SiteBuilder  # gx/'s

    settings, _ = seed()
    discovered: list[str] = []
    builds: list[list] = []
    discover, build = schema.discover_hist_tables, SiteBuilder.build

    def counting_discover(conn, mart_schema, prefix):
        discovered.append(prefix)
        return discover(conn, mart_schema, prefix)

    def counting_build(self, *args, **kwargs):
        builds.append(list(kwargs.get("resource_identifiers") or []))
        return build(self, *args, **kwargs)

    def counting_site_builders(context):
        made.append(context)
        return new_site_builders(context)

    def gx_lookup(self, *args, **kwargs):
        raise AssertionError("a new SiteBuilder for one URL")  # GX's get_docs_sites_urls

    made: list = []
    new_site_builders = data_docs.site_builders
    monkeypatch.setattr(schema, "discover_hist_tables", counting_discover)
    monkeypatch.setattr(SiteBuilder, "build", counting_build)
    monkeypatch.setattr(data_docs, "site_builders", counting_site_builders)
    monkeypatch.setattr(AbstractDataContext, "get_docs_sites_urls", gx_lookup)
    report = run_checks(settings, AS_OF)

    assert all(o.status != "error" for o in report.outcomes), [o.message for o in report.outcomes]
    assert sorted(discovered) == sorted([schema.HIST_UTS_PREFIX, schema.HIST_ECS_PREFIX])
    assert len(builds) == 1 and len(builds[0]) >= len(report.outcomes), builds
    assert len(made) == 1  # one site builder per site answers every URL of the run and builds
    for outcome in report.outcomes:
        page = Path(outcome.data_docs_url.removeprefix("file://"))
        assert page.is_file(), outcome
        assert gx_project.CHECKS[outcome.check].suite in page.read_text()


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_a_failed_data_docs_build_keeps_the_findings_and_links_no_missing_page(monkeypatch):
    from expectations_custom.data_docs.site_builder import OrderTrackingSiteBuilder as SiteBuilder  # gx/'s

    settings, manifest = seed()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SiteBuilder, "build", full_disk)
    report = run_checks(settings, AS_OF)

    # The build's failure is an error of its own (exit 3, issue 28), and no index is reported.
    *checks, docs = report.outcomes
    assert (docs.check, docs.status) == ("data_docs", "error")
    assert docs.message == "Data Docs not rebuilt: OSError: [Errno 28] No space left on device"
    assert report.exit_code() == 3 and report.data_docs_index is None
    report.outcomes = checks
    assert_matches_manifest(report, settings, manifest)  # every finding recorded all the same
    assert [o.data_docs_url for o in checks] == [None] * len(checks)


def test_build_data_docs_refuses_an_empty_page_list():
    from expectations_custom.data_docs.build import build_data_docs

    with pytest.raises(ValueError, match="no Data Docs page"):  # GX would build every page
        build_data_docs(None, [])
