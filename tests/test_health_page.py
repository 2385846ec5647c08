"""The Data Docs health page: data checked against seeded rows, charts drawn offline in Chromium.

Two real ``monitor`` runs (two nights) fill the GX validation results store; exception rows of
known ages and maintenance-log rows are seeded directly. The page's embedded data must equal an
independent reading of those rows, and headless Chromium with no network must draw every chart
(SVG marks carrying the seeded numbers) without a console error.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from order_tracking import db, schema, synthetic
from order_tracking.checks import rules
from order_tracking.reports import health_data, health_page
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.conftest import exception_rows, run_cli, seed_dataset
from tests.test_data_docs_offline import _chromium

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
NIGHT_A = datetime.combine(NOW.date() - timedelta(days=1), datetime.min.time()) + timedelta(hours=3)
NIGHT_B = NIGHT_A - timedelta(days=2)
TYPES = ("UTI_UTS_TIME_MISMATCH", "ORDER_MISSING_SPATH", "REACTIVATED_ORDER_MISSING_ECS")


def _seed_exceptions_and_vacuum(settings: Settings) -> list[dict]:
    """Exceptions of known ages (some resolved) and two nights of VACUUM steps."""
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex, log_t = tables.exceptions, tables.maintenance_log
    rows = [  # (order_id, type, detected days ago, resolved days ago or None)
        (900001, TYPES[0], 0.5, None),
        (900002, TYPES[0], 5, None),
        (900003, TYPES[1], 20, None),
        (900004, TYPES[2], 45, None),
        (900005, TYPES[1], 15, 10),  # open from 15 to 10 days ago only
        (900006, TYPES[0], 60, 50),  # closed before the period: never shown
    ]
    vacuum = []
    with engine.begin() as conn:
        for order_id, etype, detected, resolved in rows:
            conn.execute(
                ex.insert()
                .inline()
                .values(  # no key pre-fetch (Redshift has no sequences)
                    order_id=order_id,
                    exception_type=etype,
                    detected_at=NOW - timedelta(days=detected),
                    last_seen_at=NOW - timedelta(days=detected),
                    notes="seeded",
                    resolved_at=None if resolved is None else NOW - timedelta(days=resolved),
                    resolved_by=None if resolved is None else "test",
                )
            )
        for nights_ago, ghosts in ((2, 1000), (1, 400)):
            at = datetime.combine(NOW.date() - timedelta(days=nights_ago), datetime.min.time()) + timedelta(
                hours=2
            )
            for i, (table, op) in enumerate(
                (
                    ("mart_uni_tracking_info", "VACUUM DELETE ONLY"),
                    ("mart_ecs_order_info", "VACUUM SORT ONLY"),
                    ("mart_ecs_order_info", "ANALYZE"),  # not a vacuum: not charted
                )
            ):
                values = {
                    "table_name": table,
                    "operation": op,
                    "started_at": at + timedelta(minutes=i),
                    "ghost_rows_before": ghosts + i,
                    "ghost_rows_after": i,
                    "unsorted_pct_before": 12.5 + i,
                    "unsorted_pct_after": 0.5,
                }
                conn.execute(log_t.insert().inline().values(run_id="seeded", status="ok", **values))
                if op != "ANALYZE":
                    vacuum.append(values)
    engine.dispose()
    return vacuum


def _expected_open_by_age(settings: Settings, first: date, last: date) -> dict[tuple[str, str], int]:
    """Independent reading of the exceptions table: open at the end of each night, per age bucket."""
    out: dict[tuple[str, str], int] = {}
    for row in exception_rows(settings):
        detected, resolved = row[3], row[6]
        for i in range((last - first).days + 1):
            night = first + timedelta(days=i)
            end = datetime.combine(night + timedelta(days=1), datetime.min.time())
            if detected < end and (resolved is None or resolved >= end):
                days = (night - detected.date()).days
                age = (
                    "0-1 days"
                    if days <= 1
                    else "2-7 days"
                    if days <= 7
                    else "8-30 days"
                    if days <= 30
                    else ">30 days"
                )
                out[(night.isoformat(), age)] = out.get((night.isoformat(), age), 0) + 1
    return out


def _stored_results(gx_root: Path) -> dict[tuple[str, str], dict]:
    """Independent reading of the validation results store: (night, check) -> result (errors
    left out: an errored result has no figures)."""
    out = {}
    for path in (gx_root / "uncommitted" / "validations").rglob("*.json"):
        doc = json.loads(path.read_text())
        if (doc["results"][0].get("exception_info") or {}).get("raised_exception"):
            continue
        res = doc["results"][0]["result"]
        night = res["details"]["window_end"][:10]
        out[(night, res["details"]["check"])] = res
    return out


@pytest.fixture(scope="module")
def health_site(tmp_path_factory) -> dict:
    """Seed, run ``monitor`` for two nights, return the site and what was seeded (built once)."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("health")
    import shutil

    from tests.conftest import ROOT

    gx_root = tmp / "gx"
    shutil.copytree(ROOT / "gx", gx_root, ignore=shutil.ignore_patterns("uncommitted"))
    env = {
        "ORDER_TRACKING_GX_ROOT": str(gx_root),
        "ORDER_TRACKING_WAREHOUSE_URL": f"sqlite:///{tmp / 'warehouse.db'}",
        "ORDER_TRACKING_SOURCE_URL": f"sqlite:///{tmp / 'source.db'}",
    }
    for key, value in env.items():
        mp.setenv(key, value)
    try:
        settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=NIGHT_A, orders=2000, seed=7))
        vacuum = _seed_exceptions_and_vacuum(settings)
        # Night B is older than the raw tables keep (6 hours before night A): Test 0 cannot be
        # checked for it (exit 3, named), Tests 1-3 can.
        proc = run_cli("monitor", "--as-of", NIGHT_B.isoformat(), env=env)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "error in extraction_count: raw retention:" in proc.stderr
        proc = run_cli("monitor", "--as-of", NIGHT_A.isoformat(), env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        site = gx_root / "uncommitted" / "data_docs" / "local_site"
        page = site / "health.html"
        text = page.read_text(encoding="utf-8")
        data = json.loads(re.search(r'id="health-data">(.*?)</script>', text, re.S).group(1))["data"]
        yield {
            "settings": settings,
            "manifest": manifest,
            "vacuum": vacuum,
            "site": site,
            "page": page,
            "data": data,
            "gx_root": gx_root,
            "tmp": tmp,
        }
    finally:
        mp.undo()


def test_index_links_the_health_page(health_site):
    index = (health_site["site"] / "index.html").read_text(encoding="utf-8")
    assert re.search(
        r'<a[^>]*href="health.html"[^>]*id="health-page-link"|id="health-page-link"[^>]*href', index
    )
    assert "Health of the last 30 nights" in index
    text = health_site["page"].read_text(encoding="utf-8")
    # Only local scripts and styles (the vendored copies), each present in the site.
    refs = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="([^"]+)"', text)
    assert len(refs) == 4
    for ref in refs:
        assert not re.match(r"(https?:)?//", ref)
        assert (health_site["site"] / ref).is_file(), ref


def test_page_data_matches_the_seeded_rows(health_site, monkeypatch):
    data, manifest = health_site["data"], health_site["manifest"]
    first, last = date.fromisoformat(data["first_night"]), date.fromisoformat(data["last_night"])
    assert (last - first).days == 29 and last == NOW.date()
    assert data["problems"] == []

    # Findings per night per type: the stored validation results, and for night A the manifest.
    stored = _stored_results(health_site["gx_root"])
    night_a, night_b = NIGHT_A.date().isoformat(), NIGHT_B.date().isoformat()
    expected = {
        (night, res["details"]["exception_type"]): res["observed_value"]
        for (night, check), res in stored.items()
        if check != "extraction_count"
    }
    assert {(r["night"], r["type"]): r["found"] for r in data["findings"]} == expected
    assert {night for night, _ in expected} == {night_a, night_b}
    for etype in TYPES:
        assert expected[(night_a, etype)] == len(manifest["expected"][etype])

    # Test 0 per table per night: the stored counts; raw short by exactly the dropped rows.
    extraction = {(r["night"], r["table"], r["side"]): r["rows"] for r in data["extraction"]}
    for c in stored[(night_a, "extraction_count")]["details"]["counts"]:
        assert extraction[(night_a, c["table"], "source")] == c["source_count"]
        assert extraction[(night_a, c["table"], "raw")] == c["raw_count"]
    # Night B's Test 0 errored (past raw retention): nothing charted, the error named.
    assert not any(night == night_b for night, _, _ in extraction)
    (error,) = data["errors"]
    assert (error["night"], error["check"], error["good_result_shown"]) == (
        night_b,
        "extraction_count",
        False,
    )
    assert error["error"].startswith("raw retention: the raw tables keep rows since ")
    for table, dropped in manifest["extraction_dropped"].items():
        if table != "uni_tracking_info":  # raw uti may hold more rows than the source (normal)
            assert extraction[(night_a, table, "source")] - extraction[(night_a, table, "raw")] == dropped

    # Open exceptions by age per night: an independent reading of the whole table.
    got = {}
    for r in data["open_by_age"]:
        got[(r["night"], r["age"])] = got.get((r["night"], r["age"]), 0) + r["open"]
    want = _expected_open_by_age(health_site["settings"], first, last)
    assert got == want
    assert want[(last.isoformat(), ">30 days")] == 1 and want[(last.isoformat(), "8-30 days")] == 1
    twelve_days_ago = (NOW.date() - timedelta(days=12)).isoformat()
    assert want[(twelve_days_ago, "2-7 days")] >= 1  # 900005, open then, resolved since

    # Vacuum before/after: every seeded VACUUM step, no ANALYZE.
    vac = {(v["table"], v["at"], v["measure"], v["when"]): v["value"] for v in data["vacuum"]}
    assert len(vac) == 4 * len(health_site["vacuum"])
    for v in health_site["vacuum"]:
        at = v["started_at"].isoformat(sep=" ")
        assert vac[(v["table_name"], at, "ghost rows", "before")] == v["ghost_rows_before"]
        assert vac[(v["table_name"], at, "ghost rows", "after")] == v["ghost_rows_after"]
        assert vac[(v["table_name"], at, "unsorted %", "before")] == v["unsorted_pct_before"]
        assert vac[(v["table_name"], at, "unsorted %", "after")] == v["unsorted_pct_after"]


def test_headless_chromium_draws_every_chart_offline(health_site):
    page, tmp = health_site["page"], health_site["tmp"]
    proc = _chromium("--dump-dom", "--virtual-time-budget=10000", page.as_uri(), user_data=tmp / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no failed load
    for chart in ("chart-findings", "chart-open-by-age", "chart-extraction", "chart-vacuum"):
        block = re.search(rf'<div class="chart[^"]*" id="{chart}"[^>]*>(.*?)</svg>', dom, re.S)
        assert block, f"{chart} has no SVG"
        assert block.group(1).count("<path") > 5, chart  # axes, marks: something was drawn
    # The marks carry the seeded numbers (vega writes each datum into the mark's aria-label).
    manifest = health_site["manifest"]
    n = len(manifest["expected"]["UTI_UTS_TIME_MISMATCH"])
    assert re.search(
        rf'aria-label="night \(year-month-date\): [^"]*; orders found: {n}; type: UTI_UTS_TIME_MISMATCH"', dom
    )
    assert re.search(r'aria-label="[^"]*ghost rows[^"]*"|aria-label="[^"]*value: 1000[^"]*"', dom)
    assert "age: &gt;30 days" in dom or "age: >30 days" in dom

    shot = tmp / "health.png"
    proc = _chromium(
        f"--screenshot={shot}", "--virtual-time-budget=10000", page.as_uri(), user_data=tmp / "p2"
    )
    assert shot.is_file() and len(shot.read_bytes()) > 30_000, proc.stderr[-2000:]


def test_a_checkpoint_run_alone_as_in_airflow_rebuilds_the_health_page(health_site, monkeypatch):
    from expectations_custom.run_settings import settings_bound
    from order_tracking.checks import gx_project

    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(health_site["gx_root"]))
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", health_site["settings"].warehouse_url)
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_URL", health_site["settings"].source_url)
    page = health_site["page"]
    page.unlink()
    settings = Settings.from_env()
    context = gx_project.load(settings)
    with settings_bound(settings):  # as the DAG's operator runs it
        context.checkpoints.get("order_tracking_missing_spath").run(
            expectation_parameters={"as_of": NIGHT_A.isoformat()}
        )
    assert page.is_file() and "chart-findings" in page.read_text(encoding="utf-8")


def test_a_source_that_cannot_be_read_is_named_and_the_rest_still_shown(tmp_path, sqlite_urls):
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, [tables.exceptions])  # no maintenance log table

    class EmptyStore:
        def list_keys(self):
            return []

    data = health_data.collect(EmptyStore(), engine, tables, NOW)
    engine.dispose()
    assert data.open_by_age == [] and data.vacuum == []
    assert len(data.problems) == 1 and data.problems[0].startswith("maintenance log not read:")
    html = health_page.render(data)
    assert "maintenance log not read" in html and "No VACUUM figures" in html


def test_open_exceptions_sql_in_redshift_words():
    tables = schema.build_tables(Settings.from_env())
    text = rules.compile_sql(
        health_data.open_days_select(tables, date(2026, 10, 27), date(2026, 11, 25)),
        RedshiftDialect_psycopg2(),
    )
    assert "CAST(settlement_ods.order_tracking_exceptions.detected_at AS DATE) AS detected" in text
    assert "GROUP BY open_rows.detected, open_rows.resolved, open_rows.exception_type" in text
    # Bounded to the period on the table itself.
    assert "settlement_ods.order_tracking_exceptions.detected_at < '2026-11-26 00:00:00'" in text
    assert "settlement_ods.order_tracking_exceptions.resolved_at >= '2026-10-27 00:00:00'" in text


def test_age_buckets():
    assert [health_data.age_bucket(d) for d in (0, 1, 2, 7, 8, 30, 31)] == [
        "0-1 days",
        "0-1 days",
        "2-7 days",
        "2-7 days",
        "8-30 days",
        "8-30 days",
        ">30 days",
    ]


def test_health_queries_in_both_warehouse_dialects(warehouse, twin_recording):
    """The exceptions and maintenance-log queries on PostgreSQL and on the Redshift twin."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.ods_tables)
    seeded = _seed_exceptions_and_vacuum(settings)
    recording = twin_recording("health")

    class EmptyStore:
        def list_keys(self):
            return []

    data = health_data.collect(EmptyStore(), engine, tables, NOW)
    engine.dispose()
    assert data.problems == []
    first, last = data.first_night, data.last_night
    got: dict = {}
    for r in data.open_by_age:
        got[(r["night"], r["age"])] = got.get((r["night"], r["age"]), 0) + r["open"]
    assert got == _expected_open_by_age(settings, first, last)
    assert len(data.vacuum) == 4 * len(seeded)
    if warehouse.startswith("redshift"):
        sent = redshift_twin.read_recording(recording)
        assert redshift_twin.refused(sent) == []
        assert any("CAST(" in r["sql"] and "AS DATE) AS detected" in r["sql"] for r in sent)


def test_a_later_errored_run_keeps_the_last_good_result_of_the_night(gx_copy, sqlite_urls):
    """Issue 27, defect 4: a good run, then a run of the same night that errors in every check.

    The page must still chart the good run's findings and Test 0 counts (and say the alarm), and
    say that a later run errored, instead of "No validation result".
    """
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=NIGHT_A, orders=500, seed=11))
    good = run_cli("monitor", "--as-of", NIGHT_A.isoformat())
    assert good.returncode == 2, good.stdout + good.stderr  # findings and the Test 0 alarm
    # Every check of the second run fails to read the mart: its ATTACHed file is empty.
    mart_file = Path(db.schema_file(settings.warehouse_url.removeprefix("sqlite:///"), settings.mart_schema))
    mart_file.rename(mart_file.with_suffix(".away"))
    for as_of in (NIGHT_B, NIGHT_A):  # night B: errored runs only
        broken = run_cli("monitor", "--as-of", as_of.isoformat())
        assert broken.returncode == 3, broken.stdout + broken.stderr
        assert "error in missing_spath:" in broken.stderr and "error in extraction_count:" in broken.stderr

    text = (gx_copy / "uncommitted" / "data_docs" / "local_site" / "health.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="health-data">(.*?)</script>', text, re.S).group(1))["data"]
    night = NIGHT_A.date().isoformat()
    found = {r["type"]: r["found"] for r in data["findings"] if r["night"] == night}
    assert found == {t: len(manifest["expected"][t]) for t in TYPES}
    extraction = {(r["table"], r["side"]): r["rows"] for r in data["extraction"] if r["night"] == night}
    for table, dropped in manifest["extraction_dropped"].items():
        if dropped:
            assert extraction[(table, "source")] - extraction[(table, "raw")] == dropped
    assert "No validation result of Tests 1-3 in the period" not in text
    assert f"Test 0 alarms on 1 night(s), last on {night}." in text
    night_b = NIGHT_B.date().isoformat()
    assert not any(r["night"] == night_b for r in data["findings"] + data["extraction"])
    errored = {(r["night"], r["check"], r["good_result_shown"]) for r in data["errors"]}
    checks = ("extraction_count", "uti_uts_alignment", "missing_spath", "reactivated_missing_ecs")
    assert errored == {(night, c, True) for c in checks} | {(night_b, c, False) for c in checks}
    assert re.search(rf"<li>A later run errored on {night} \(extraction_count, [^)]*\): the last good "
                     r"result of each is shown; last error: [^<]*no such table", text), text  # fmt: skip
    assert re.search(rf"<li>A run errored on {night_b} \(extraction_count, [^)]*\): no run of the night "
                     "could check them, nothing charted", text), text  # fmt: skip
