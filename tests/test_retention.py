"""Results kept for a set time (issue 25): ``prune`` and ``monitor`` remove validation results and
Data Docs pages older than ORDER_TRACKING_KEEP_DAYS, locally and in a bucket (moto server), drop
them from the index, and never touch the exceptions table or the maintenance log.

Old results are made the way a year of nights would leave them: copies of a real run's result
(and page) under a GX run time that many days back.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import sqlalchemy as sa

from order_tracking import db, schema, synthetic
from order_tracking.clock import utc_now
from order_tracking.settings import Settings
from order_tracking.stores import retention
from tests.conftest import exception_rows, run_cli, seed_dataset
from tests.test_s3_store import PREFIX, _objects, _text, aws_env, bucket, s3_endpoint  # noqa: F401

AS_OF = "2026-11-25T03:00:00"
GX_TIME = "%Y%m%dT%H%M%S.%fZ"
OLD_DAYS, KEPT_DAYS = (100, 400), 30  # with the default 90 days


def _monitor() -> None:
    proc = run_cli("monitor", "--as-of", AS_OF, "--checks", "missing_spath")
    assert proc.returncode in (0, 1), proc.stderr


def _seed_and_history() -> Settings:
    """A seeded warehouse plus an old resolved exception and an old maintenance-log row."""
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=datetime.fromisoformat(AS_OF), orders=500, seed=3))
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    long_ago = utc_now() - timedelta(days=400)
    with engine.begin() as conn:
        conn.execute(
            tables.exceptions.insert()
            .inline()
            .values(
                order_id=990001,
                exception_type="ORDER_MISSING_SPATH",
                detected_at=long_ago,
                last_seen_at=long_ago,
                notes="a year ago",
                resolved_at=long_ago + timedelta(days=1),
                resolved_by="test",
            )
        )
        conn.execute(
            tables.maintenance_log.insert()
            .inline()
            .values(
                run_id="old",
                status="ok",
                table_name="mart_uni_tracking_info",
                operation="VACUUM DELETE ONLY",
                started_at=long_ago,
            )
        )
    engine.dispose()
    return settings


def _log_rows(settings: Settings) -> list[tuple]:
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    log_t = schema.build_tables(settings).maintenance_log
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(log_t).order_by(log_t.c.log_id))]
    engine.dispose()
    return rows


def _age_local_copies(gx_root: Path, days: tuple[int, ...]) -> dict[int, str]:
    """Copy each stored result and its page under a run time ``days`` back; run time per age."""
    made = {}
    site = gx_root / "uncommitted" / "data_docs" / "local_site" / "validations"
    for result in sorted((gx_root / "uncommitted" / "validations").glob("*/*/*/*.json")):
        page = site / result.relative_to(gx_root / "uncommitted" / "validations").with_suffix(".html")
        assert page.exists(), page
        for age in days:
            run_time = (utc_now() - timedelta(days=age)).strftime(GX_TIME)
            for src in (result, page):
                dest = src.parent.parent / run_time / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            made[age] = run_time
    return made


def _index(gx_root: Path) -> str:
    return (gx_root / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()


def test_prune_removes_old_results_and_pages_and_their_index_entries(gx_copy, sqlite_urls):
    from order_tracking.commands.prune import rebuild_index

    settings = _seed_and_history()
    _monitor()
    made = _age_local_copies(gx_copy, (*OLD_DAYS, KEPT_DAYS))
    rebuild_index(settings)  # the index as a run would build it with these results stored
    assert all(made[age] in _index(gx_copy) for age in (*OLD_DAYS, KEPT_DAYS))
    exceptions, log_rows = exception_rows(settings), _log_rows(settings)
    files = sorted(p for p in (gx_copy / "uncommitted").rglob("*") if p.is_file())

    dry = run_cli("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        "prune: would remove 2 validation result(s) and 2 Data Docs page(s) older than 90 days" in dry.stdout
    )
    assert sorted(p for p in (gx_copy / "uncommitted").rglob("*") if p.is_file()) == files

    proc = run_cli("prune")
    assert proc.returncode == 0, proc.stderr
    assert "prune: removed 2 validation result(s) and 2 Data Docs page(s) older than 90 days" in proc.stdout
    assert "Data Docs index rebuilt: " in proc.stdout
    left = {p.parent.name for p in (gx_copy / "uncommitted").rglob("*.json") if p.parent.name[:2] == "20"}
    assert made[KEPT_DAYS] in left and not {made[a] for a in OLD_DAYS} & left
    pages = {p.parent.name for p in (gx_copy / "uncommitted" / "data_docs").rglob("*.html")}
    assert made[KEPT_DAYS] in pages and not {made[a] for a in OLD_DAYS} & pages
    index = _index(gx_copy)
    assert made[KEPT_DAYS] in index and not any(made[a] in index for a in OLD_DAYS)
    # The findings and the maintenance history, however old, are never touched.
    assert exception_rows(settings) == exceptions and _log_rows(settings) == log_rows
    again = run_cli("prune")
    assert "removed 0 validation result(s) and 0 Data Docs page(s)" in again.stdout
    assert "index rebuilt" not in again.stdout


def test_monitor_prunes_before_it_builds_the_index(gx_copy, sqlite_urls):
    settings = _seed_and_history()
    _monitor()
    made = _age_local_copies(gx_copy, (OLD_DAYS[0], KEPT_DAYS))
    old_log, old_exception = _log_rows(settings), exception_rows(settings)[0]
    _monitor()
    stored = {p.parent.name for p in (gx_copy / "uncommitted").rglob("*.*") if p.parent.name[:2] == "20"}
    assert made[KEPT_DAYS] in stored and made[OLD_DAYS[0]] not in stored
    index = _index(gx_copy)
    assert made[KEPT_DAYS] in index and made[OLD_DAYS[0]] not in index
    assert _log_rows(settings) == old_log
    assert exception_rows(settings)[0] == old_exception  # the resolved one from a year ago


def test_keep_days_setting_is_used(gx_copy, sqlite_urls):
    _seed_and_history()
    _monitor()
    _age_local_copies(gx_copy, (KEPT_DAYS,))
    proc = run_cli("prune", "--dry-run", env={"ORDER_TRACKING_KEEP_DAYS": "20"})
    assert "would remove 1 validation result(s) and 1 Data Docs page(s) older than 20 days" in proc.stdout


def _results_tree(root: Path, ages: list[int], now: datetime) -> list[Path]:
    made = []
    for i, age in enumerate(ages):
        path = root / "suite" / f"run_{i}" / (now - timedelta(days=age)).strftime(GX_TIME) / "b.json"
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        made.append(path)
    return made


def test_a_time_budget_removes_the_oldest_first_and_leaves_the_rest_for_next_time(tmp_path):
    now = datetime(2026, 12, 1, 3, 0)
    results, pages = tmp_path / "validations", tmp_path / "site" / "validations"
    made = _results_tree(results, [95, 300, 200, 120, 100, 10], now)
    (results / ".ge_store_backend_id").write_text("store_backend_id = x\n")
    odd = results / "suite" / "run_x" / "not-a-time" / "b.json"  # not GX's layout: left alone
    odd.parent.mkdir(parents=True)
    odd.write_text("{}")
    store = retention.LocalStore(results, pages)
    settings = Settings.from_env()
    ticks = iter(range(100))
    first = retention.prune(
        settings, now, budget_secs=0.5, batch_size=2, store=store, clock=lambda: next(ticks)
    )
    assert (first.results, first.left) == (2, 3)
    assert "time budget used up: 3 older entries left for the next run" in first.line()
    assert not made[1].exists() and not made[2].exists() and made[3].exists()  # 300 and 200 days
    assert not made[1].parent.parent.exists()  # the emptied run folders go too
    second = retention.prune(settings, now, store=store)
    assert (second.results, second.left) == (3, 0)
    assert [p.exists() for p in made] == [False] * 5 + [True]
    assert odd.exists() and (results / ".ge_store_backend_id").exists()


def test_monitor_says_in_a_log_line_when_the_budget_ran_out(gx_copy, sqlite_urls, monkeypatch, caplog):
    from order_tracking.checks import run as monitoring

    settings = _seed_and_history()
    _monitor()
    _age_local_copies(gx_copy, (100, 200))
    monkeypatch.setattr(monitoring, "MONITOR_PRUNE_BUDGET_SECS", 0.0)
    monkeypatch.setattr(retention, "BATCH", 1)
    with caplog.at_level(logging.WARNING, logger="order_tracking"):
        report = monitoring.run_checks(Settings.from_env(), datetime.fromisoformat(AS_OF), ["missing_spath"])
    assert all(o.status != "error" for o in report.outcomes)
    lines = [r.getMessage() for r in caplog.records if "prune:" in r.getMessage()]
    assert len(lines) == 1 and "older entries left for the next run" in lines[0], lines
    assert settings.keep_days == 90


def _age_bucket_copies(endpoint: str, name: str, days: tuple[int, ...]) -> dict[int, str]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    made = {}
    for key in list(_objects(endpoint, name)):
        parts = key.split("/")
        is_result = key.startswith(f"{PREFIX}/validations/") and key.endswith(".json")
        is_page = key.startswith(f"{PREFIX}/data_docs/validations/") and key.endswith(".html")
        if not (is_result or is_page) or not retention.RUN_TIME.fullmatch(parts[-2]):
            continue
        for age in days:
            made[age] = (utc_now() - timedelta(days=age)).strftime(GX_TIME)
            new_key = "/".join([*parts[:-2], made[age], parts[-1]])
            s3.copy_object(Bucket=name, Key=new_key, CopySource={"Bucket": name, "Key": key})
    return made


def test_prune_in_the_shared_bucket(gx_copy, sqlite_urls, bucket, aws_env):  # noqa: F811
    settings = _seed_and_history()
    _monitor()
    before = set(_objects(aws_env, bucket))
    made = _age_bucket_copies(aws_env, bucket, (OLD_DAYS[0], KEPT_DAYS))
    proc = run_cli("prune")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 validation result(s) and 1 Data Docs page(s) older than 90 days" in proc.stdout
    assert f"from s3://{bucket}/{PREFIX}" in proc.stdout
    after = set(_objects(aws_env, bucket))
    assert before <= after  # this run's results, pages, static files, index: all still there
    assert {k for k in after - before if made[KEPT_DAYS] in k} and not {
        k for k in after if made[OLD_DAYS[0]] in k
    }
    index = _text(aws_env, bucket, f"{PREFIX}/data_docs/index.html")
    assert made[KEPT_DAYS] in index and made[OLD_DAYS[0]] not in index
    assert settings.gx_store is not None


def test_a_bucket_that_fails_is_one_line_and_exit_3(gx_copy, sqlite_urls, aws_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ORDER_TRACKING_GX_STORE_URL", "s3://no-such-bucket-here/dq")
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", aws_env)
    proc = run_cli("prune")
    assert proc.returncode == 3
    assert (
        proc.stderr.strip()
        == "error: GX store s3://no-such-bucket-here/dq: bucket 'no-such-bucket-here' does not exist"
    )


def test_an_entry_that_cannot_be_removed_is_one_line_and_exit_3(gx_copy, sqlite_urls):
    _seed_and_history()
    _monitor()
    made = _age_local_copies(gx_copy, (OLD_DAYS[0],))
    (old_result,) = (gx_copy / "uncommitted" / "validations").rglob(f"{made[OLD_DAYS[0]]}/*.json")
    stray = old_result.parent / "stray-folder"  # not a file: unlink fails, even for root
    stray.mkdir()
    proc = run_cli("prune")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("error: prune: Is a directory: ")
    assert proc.stderr.strip().endswith("stray-folder")
