"""One Data Docs site built by several runs at once, and by a run after one that was killed.

Issue 25 F2: during a two-night backfill a page was never written (its folder empty, the index
without it). GX's index builder removed every page whose result was missing from the listing it
took at the start of its build, so a run that listed the results just before another stored its
own deleted that run's fresh page; and the index written last could miss a page another run added
meanwhile. Issue 28: the results of a run killed between GX's store and the site build never got
a page or an index entry.

Real ``monitor`` processes (two at once, several rounds) against one local site and one S3 bucket
(a moto server, ``tests/test_s3_store.py``'s fixtures); every stored result must have its page,
listed in the index.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest

from order_tracking import synthetic
from tests import test_s3_store
from tests.conftest import ROOT, run_cli, seed_dataset
from tests.test_s3_store import PREFIX

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
ROUNDS = 2  # two runs at once per round (the exact interleaving has its own test below)

s3_endpoint = test_s3_store.s3_endpoint
aws_env = test_s3_store.aws_env
bucket = test_s3_store.bucket


def _monitor_at_once(as_ofs: list[datetime], envs: list[dict[str, str]]) -> None:
    """``monitor`` runs started together, one per as_of; each must end with its findings (1/2)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "order_tracking", "monitor", "--as-of", a.isoformat()],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, env in zip(as_ofs, envs, strict=True)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode in (1, 2), out + err  # the seeded anomalies, no error
        assert "error" not in err.lower(), err


def _result_keys(tuples: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """(suite, run name, run time, batch) of stored results, from their file or object paths."""
    return {t for t in tuples if len(t) == 4}


def _local_state(gx_root: Path) -> tuple[set, set, str]:
    results = gx_root / "uncommitted" / "validations"
    site = gx_root / "uncommitted" / "data_docs" / "local_site"
    stored = _result_keys([p.relative_to(results).with_suffix("").parts for p in results.rglob("*.json")])
    pages = {
        p.relative_to(site / "validations").with_suffix("").parts for p in site.rglob("validations/**/*.html")
    }
    return stored, pages, (site / "index.html").read_text(encoding="utf-8")


def _s3_state(endpoint: str, name: str) -> tuple[set, set, str]:
    objects = test_s3_store._objects(endpoint, name)
    results, pages = f"{PREFIX}/validations/", f"{PREFIX}/data_docs/validations/"
    stored = _result_keys(
        [tuple(k[len(results) :].removesuffix(".json").split("/")) for k in objects if k.startswith(results)]
    )
    built = {tuple(k[len(pages) :].removesuffix(".html").split("/")) for k in objects if k.startswith(pages)}
    return stored, built, test_s3_store._text(endpoint, name, f"{PREFIX}/data_docs/index.html")


def _assert_every_result_has_a_listed_page(stored: set, pages: set, index: str) -> None:
    assert stored, "no result stored"
    assert stored - pages == set(), "results without a page"
    for suite, run_name, run_time, batch in stored:
        page = f"validations/{suite}/{run_name}/{run_time}/{batch}.html"
        assert page in index, f"index does not list {page}"


@pytest.mark.usefixtures("sqlite_urls")
def test_two_runs_at_once_on_one_local_site_lose_no_page(gx_copy):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    for n in range(ROUNDS):
        base = AS_OF + timedelta(minutes=10 * n)
        _monitor_at_once([base, base + timedelta(minutes=5)], [{}, {}])
    stored, pages, index = _local_state(gx_copy)
    assert len(stored) == ROUNDS * 2 * 4
    _assert_every_result_has_a_listed_page(stored, pages, index)


@pytest.mark.usefixtures("sqlite_urls")
def test_two_workers_at_once_on_one_bucket_lose_no_page(tmp_path, bucket, aws_env):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    workers = [test_s3_store._worker(tmp_path, f"worker{i}") for i in (1, 2)]
    envs = [{"ORDER_TRACKING_GX_ROOT": str(w)} for w in workers]
    for n in range(ROUNDS):
        base = AS_OF + timedelta(minutes=10 * n)
        _monitor_at_once([base, base + timedelta(minutes=5)], envs)
    stored, pages, index = _s3_state(aws_env, bucket)
    assert len(stored) == ROUNDS * 2 * 4
    _assert_every_result_has_a_listed_page(stored, pages, index)


def _monitor(as_of: datetime) -> None:
    run = run_cli("monitor", "--as-of", as_of.isoformat())
    assert run.returncode in (1, 2), run.stdout + run.stderr


@pytest.mark.usefixtures("sqlite_urls")
def test_the_next_build_renders_and_lists_the_results_of_a_killed_run(gx_copy):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    _monitor(AS_OF)
    stored, pages, _ = _local_state(gx_copy)
    # What a run killed after GX stored its results and before the site build leaves: results
    # without pages (and an index that never listed them).
    site = gx_copy / "uncommitted" / "data_docs" / "local_site"
    for page in site.rglob("validations/**/*.html"):
        page.unlink()
    (site / "index.html").unlink()

    _monitor(AS_OF + timedelta(hours=1))
    stored, pages, index = _local_state(gx_copy)
    assert len(stored) == 8
    _assert_every_result_has_a_listed_page(stored, pages, index)


@pytest.mark.usefixtures("sqlite_urls")
def test_the_next_build_renders_the_killed_run_results_held_in_the_bucket(bucket, aws_env, gx_copy):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    _monitor(AS_OF)
    s3 = boto3.client("s3", endpoint_url=aws_env)
    for key in test_s3_store._objects(aws_env, bucket):
        if key.startswith(f"{PREFIX}/data_docs/validations/") or key == f"{PREFIX}/data_docs/index.html":
            s3.delete_object(Bucket=bucket, Key=key)

    _monitor(AS_OF + timedelta(hours=1))
    stored, pages, index = _s3_state(aws_env, bucket)
    assert len(stored) == 8
    _assert_every_result_has_a_listed_page(stored, pages, index)


@pytest.mark.usefixtures("sqlite_urls")
def test_a_build_that_listed_the_results_before_another_run_stored_keeps_that_run_page(gx_copy):
    """The exact interleaving of F2, made deterministic: run A lists the stored results (as its
    build does first), run B stores its results and builds its pages, then A builds its pages and
    the index. GX's index builder removed B's pages (missing from A's listing)."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from expectations_custom.data_docs import build as data_docs
    from expectations_custom.data_docs.results_store import listed_once
    from order_tracking.checks import gx_project
    from order_tracking.settings import Settings

    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    _monitor(AS_OF)
    context = gx_project.load(Settings.from_env())
    (builder,) = data_docs.site_builders(context).values()
    with listed_once():
        assert len(context.validation_results_store.list_keys()) == 4  # A's listing
        _monitor(AS_OF + timedelta(hours=1))  # B: 4 more results and their pages
        builder.build(resource_identifiers=[ExpectationSuiteIdentifier(name="order_tracking_missing_spath")])
    stored, pages, index = _local_state(gx_copy)
    assert len(stored) == 8
    _assert_every_result_has_a_listed_page(stored, pages, index)


@pytest.mark.usefixtures("sqlite_urls")
def test_a_result_cut_short_is_a_warning_and_the_other_pages_are_built(gx_copy):
    """A run killed while GX wrote its result leaves a file cut short: the next build renders the
    other pages, and says in a warning which page it could not build (it used to fail every build:
    the section builder raised on it)."""
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    _monitor(AS_OF)
    results = gx_copy / "uncommitted" / "validations"
    whole = next(results.glob("order_tracking_missing_spath/*/*/*.json"))
    cut = whole.parent.parent / "20261125T040000.000000Z" / whole.name
    cut.parent.mkdir()
    cut.write_text(whole.read_text(encoding="utf-8")[:200], encoding="utf-8")

    run = run_cli("monitor", "--as-of", (AS_OF + timedelta(hours=1)).isoformat())
    assert run.returncode in (1, 2), run.stdout + run.stderr
    run_name = whole.parent.parent.name
    assert f"Data Docs page not built for order_tracking_missing_spath, run {run_name}" in run.stderr
    stored, pages, index = _local_state(gx_copy)
    _assert_every_result_has_a_listed_page(
        stored - {cut.relative_to(results).with_suffix("").parts}, pages, index
    )
