"""``scripts/benchmark.py`` end to end on a tiny data set: it measures, reports and cleans up.

The ratio targets are judged at 3M orders (``JUDGED_AT_ORDERS``); at 20k orders fixed costs
dominate, so the run here must print them unjudged, and otherwise only the shape of the report
is checked, not PASS/FAIL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import ROOT

REQUIRED_KEYS = {
    "raw_s",
    "stock_s",
    "validate_s",
    "full_s",
    "validate_over_raw",
    "full_over_raw",
    "stock_over_validate",
    "rss_5k_mb",
    "rss_500k_mb",
    "history_4x_over_1x",
    "orders",
    "spath_rows",
    "fixed_s",
    "rule_scans",
    "fixed_stored",
    "fixed_kept",
    "fixed_kept_over_fresh",
}


def test_benchmark_small_run_reports_and_restores(pg_warehouse, schemas, tmp_path) -> None:
    proc = _benchmark(schemas, "--orders", "20000", "--repeat", "3", "--out", str(tmp_path), timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: a target failed (expected at 20k)

    results = json.loads((tmp_path / "results.json").read_text())
    assert results.keys() >= REQUIRED_KEYS
    assert results["orders"] == 20_000
    assert results["spath_rows"] > 100_000
    assert 0 < results["raw_s"] < results["full_s"]
    assert results["validate_over_raw"] == results["validate_s"] / results["raw_s"]
    assert len(results["targets"]) == 6  # the five, and retention (a year kept / fresh)
    unjudged = {name for name, t in results["targets"].items() if not t["judged"]}
    assert unjudged == {"validate / raw", "full / raw"}
    assert "----  validate / raw" in proc.stdout and "not judged" in proc.stdout
    # 0.5% and 50% of the orders were made to fail Test 1 (plus the seeded anomalies)
    assert results["findings_5k"] >= 100 and results["findings_500k"] >= 10_000
    assert 50 < results["rss_5k_mb"] < 1000 and 50 < results["rss_500k_mb"] < 1000
    assert (tmp_path / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Rule scans per check (validation and write together): one, with the seeded few and with
    # 0.5% / 50% of the orders failing Test 1 (more than validation's 200-row sample).
    assert results["rule_scans"] == [1, 1, 1]
    for key in ("5k", "500k"):
        assert results[f"rule_scans_{key}"] == [1, 1, 1]
    assert results["memory_outcomes_500k"][0][2] > 200  # above the sample size too
    assert results["fixed_s"] > 0  # at 20k orders it is most of "full": no order between them
    # The fixed cost again with the GX results store grown to 30 nights and a year of results.
    assert [f["results"] for f in results["fixed_stored"]] == [120, 1460]
    assert [f["label"] for f in results["fixed_stored"]] == ["30 nights", "a year"]
    assert all(f["median_s"] > 0 for f in results["fixed_stored"])
    # A year of results (4 a night, with their pages) and the default retention: the warm-up
    # run prunes the nights older than 90 days; fresh and kept are timed in the same rounds.
    kept = results["fixed_kept"]
    assert kept["keep_days"] == 90 and kept["results_before"] >= 1460
    # about 90 nights of 4 are left beside the run's own results (the copies span ~330 nights)
    assert kept["fresh_results"] + 80 * 4 < kept["results_after"] < kept["fresh_results"] + 100 * 4
    assert results["fixed_kept_over_fresh"] == kept["median_s"] / kept["fresh_s"]
    assert results["targets"]["retention"]["judged"] and kept["cpu_over_fresh"] > 0
    # The per-round ratios (printed as a spread) pair the two runs of the same round.
    for kind in ("validate", "full"):
        runs, raw = results["detail"][kind]["runs_s"], results["detail"]["raw"]["runs_s"]
        assert results[f"{kind}_over_raw_rounds"] == sorted(
            round(a / b, 3) for a, b in zip(runs, raw, strict=True)
        )
    for line in (
        "raw SQL COUNT(*)",
        "process start-up + imports",
        "history 4x / 1x",
        "fixed per-run cost",
        "a year (1,460)",
        "a year of results kept 90 days (the run prunes: ",
        "single rounds (of 3): validate / raw",
        "8 verification at the limit (2,000 per type): ",
    ):
        assert line in proc.stdout

    # Everything the benchmark changed in the database was put back.
    _check_restored(pg_warehouse, schemas, results)

    # --no-seed measures the orders already there: another --orders is refused, naming both.
    again = _benchmark(schemas, "--no-seed", "--orders", "5000")
    assert again.returncode != 0
    assert "--orders 5,000 but" in again.stderr and "holds 20,000 orders" in again.stderr


def test_ratio_targets_judged_from_three_million_orders() -> None:
    benchmark = _benchmark_module()
    slow = {
        "validate_over_raw": 1.2,
        "full_over_raw": 1.8,
        "rss_5k_mb": 250.0,
        "rss_500k_mb": 251.0,
        "history_4x_over_1x": 1.0,
    }
    for orders, judged in ((benchmark.JUDGED_AT_ORDERS, True), (1_000_000, False)):
        verdicts = {name: (ok, j) for name, _, ok, j in benchmark.verdicts({**slow, "orders": orders})}
        assert verdicts["validate / raw"] == (False, judged)
        assert verdicts["full / raw"] == (False, judged)
        assert verdicts["peak RSS"] == (True, True)  # memory and history are judged at any scale


def test_each_round_starts_one_kind_later() -> None:
    benchmark = _benchmark_module()
    ran: list[str] = []

    def kind(name: str, seconds: float):
        def run() -> list[float]:
            ran.append(name)
            return [seconds * len(ran)]

        return run

    out = benchmark.rounds(
        4, {"raw": kind("raw", 1.0), "stock": kind("stock", 2.0), "full": kind("full", 3.0)}
    )
    warm_up, timed = ran[:3], ran[3:]
    assert warm_up == ["raw", "stock", "full"]
    assert timed == [
        "raw",
        "stock",
        "full",
        "stock",
        "full",
        "raw",
        "full",
        "raw",
        "stock",
        "raw",
        "stock",
        "full",
    ]
    # runs_s[i] is round i of that kind, whatever its place in the round.
    assert out["raw"]["runs_s"] == [4.0, 9.0, 11.0, 13.0]
    assert out["full"]["runs_s"] == [18.0, 24.0, 30.0, 45.0]
    assert out["raw"]["median_s"] == 10.0


def test_no_seed_without_data_is_refused(pg_warehouse, schemas) -> None:
    proc = _benchmark(schemas, "--no-seed", "--orders", "5000")
    assert proc.returncode != 0
    assert f"no {schemas.mart}.mart_uni_tracking_info to reuse" in proc.stderr.strip().splitlines()[-1]


def _benchmark(schemas, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``scripts/benchmark.py`` in the test's own schemas."""
    schema_args = ["--mart-schema", schemas.mart, "--ods-schema", schemas.ods]
    return subprocess.run(
        [sys.executable, "scripts/benchmark.py", *args, *schema_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _benchmark_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    return benchmark


def _check_restored(url: str, schemas, results: dict) -> None:
    benchmark = _benchmark_module()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert "bench_uti_backup" not in sa.inspect(conn).get_table_names(schema=schemas.mart)
            uti = sa.table("mart_uni_tracking_info", sa.column("update_time"), schema=schemas.mart)
            start = benchmark.AS_OF - timedelta(hours=24)
            in_window = conn.scalar(
                sa.select(sa.func.count())
                .select_from(uti)
                .where(uti.c.update_time > start, uti.c.update_time <= benchmark.AS_OF)
            )
            assert in_window == results["window_orders"]
            exceptions = sa.table("order_tracking_exceptions", schema=schemas.ods)
            assert conn.scalar(sa.select(sa.func.count()).select_from(exceptions)) == 0
            for name in sa.inspect(conn).get_table_names(schema=schemas.mart):
                if name.startswith("hist_"):
                    t = sa.table(name, sa.column("order_id"), schema=schemas.mart)
                    extra = conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(t)
                        .where(t.c.order_id >= benchmark.HISTORY_OFFSET)
                    )
                    assert extra == 0, name
    finally:
        engine.dispose()


def test_retention_states_park_outside_the_gx_tree(tmp_path) -> None:
    """The parked state must not sit beside ``validations`` in the site or the store: GX's store
    listed a sibling ``validations.fresh`` as results it could not find (a lookup each, timed)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from benchmarking.retention import States
    finally:
        sys.path.pop(0)
    gx = tmp_path / "gx"
    store = gx / "uncommitted" / "validations"
    pages = gx / "uncommitted" / "data_docs" / "local_site" / "validations"
    for path, name in ((store, "result.json"), (pages, "page.html")):
        path.mkdir(parents=True)
        (path / name).write_text("year")
    states = States([store, pages])
    states.snapshot_fresh()
    (store / "result.json").write_text("year, changed")
    for which in ("fresh", "year", "fresh"):
        states.use(which)
        inside = sorted(p.relative_to(gx).as_posix() for p in gx.rglob("*") if p.is_dir())
        assert inside == [
            "uncommitted",
            "uncommitted/data_docs",
            "uncommitted/data_docs/local_site",
            "uncommitted/data_docs/local_site/validations",
            "uncommitted/validations",
        ]
        assert (store / "result.json").read_text() == ("year" if which == "fresh" else "year, changed")
    states.drop_fresh()
    assert (store / "result.json").read_text() == "year, changed"
    assert not states.park.exists()
