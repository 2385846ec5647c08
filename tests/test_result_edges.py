"""Issue 27, smaller edges in what the checks report: ``diff_seconds`` as the exact decimal it is,
a re-check of a night past raw retention, and errored runs marked apart on the Data Docs index.

Real GX checkpoints (``run_checks``) on SQLite, PostgreSQL and the Redshift twin, as the other
result tests run them; rows come from the malformed-data catalogue's loader.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from order_tracking import synthetic
from order_tracking.checks.run import run_checks
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.conftest import seed_dataset
from tests.test_malformed_catalogue import AS_OF, IN, Data, load


@pytest.fixture(params=["sqlite", "postgresql", "redshift"])
def any_warehouse(request: pytest.FixtureRequest) -> str:
    """The embedded SQLite warehouse, PostgreSQL, then the Redshift twin."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_urls")[0]
    return request.getfixturevalue("pg_warehouse" if request.param == "postgresql" else "redshift_warehouse")


def _page(url: str | None) -> str:
    assert url and url.startswith("file://"), url
    return Path(url.removeprefix("file://")).read_text(encoding="utf-8")


def test_diff_seconds_is_the_exact_decimal(any_warehouse, gx_copy):
    data = Data()
    for order_id, pathtime in (
        (1, IN - timedelta(milliseconds=250)),  # update_time 0.25 s after the last path
        (2, IN + timedelta(hours=1)),  # an hour before it
        (3, IN - timedelta(seconds=5)),
    ):
        data.add("mart_uti", order_id=order_id, update_time=IN).add(
            "mart_uts", order_id=order_id, pathtime=pathtime
        )
        data.add("mart_ecs", order_id=order_id, add_time=IN)
    settings = Settings.from_env()
    load(settings, data)
    (outcome,) = run_checks(settings, AS_OF, ["uti_uts_alignment"]).outcomes
    assert outcome.status == "fail", outcome.message
    got = {r["order_id"]: r["diff_seconds"] for r in outcome.sample}
    assert got == {1: 0.25, 2: -3600, 3: 5}
    assert isinstance(got[2], int) and isinstance(got[3], int)  # stored and shown without ".0"
    cells = re.findall(r'<div class="show-scrollbars">(-?[\d.]+)</div></td>', _page(outcome.data_docs_url))
    assert {"0.25", "-3600", "5"} <= set(cells)
    assert not {"-3600.0", "5.0"} & set(cells)


@pytest.mark.parametrize("hours_back", [24, 5], ids=["window_before_retention", "window_across_it"])
def test_a_night_past_raw_retention_is_named_not_reported_as_lost_rows(any_warehouse, gx_copy, hours_back):
    """The raw tables keep ``RAW_HOURS`` (6 h) of rows; the source keeps everything."""
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=300, seed=5))
    as_of = AS_OF - timedelta(hours=hours_back)
    (outcome,) = run_checks(settings, as_of, ["extraction_count"]).outcomes
    assert outcome.status == "error", (outcome.status, outcome.details.get("missing_total"))
    since = min(_oldest_raw_rows(settings).values())  # all three raw tables: the raw side
    start, end = as_of - timedelta(hours=2, minutes=5), as_of - timedelta(minutes=5)
    assert since > start
    assert outcome.message == (
        f"raw retention: the raw tables keep rows since {since.isoformat(sep=' ')}; this window "
        f"[{start.isoformat(sep=' ')}, {end.isoformat(sep=' ')}) cannot be checked"
    )
    # The night the raw tables still hold is checked as before: its real losses are listed.
    (tonight,) = run_checks(settings, AS_OF, ["extraction_count"]).outcomes
    assert tonight.status == "fail" and tonight.details["missing_total"] == sum(
        manifest["extraction_dropped"].values()
    )


def _oldest_raw_rows(settings: Settings) -> dict[str, datetime]:
    """An independent reading: each raw table's oldest row."""
    from order_tracking import db, schema

    tables = schema.build_tables(settings)
    url = settings.warehouse_url
    if redshift_twin.is_twin_url(url):
        url = redshift_twin.postgres_url(url)
    engine = db.create_engine(url, settings.warehouse_schemas)
    with engine.connect() as conn:
        oldest = {
            t.name: conn.execute(sa.select(sa.func.min(t.c[col]))).scalar()
            for t, col in (
                (tables.raw_ecs, "add_time"),
                (tables.raw_uti, "update_time"),
                (tables.raw_uts, "pathtime"),
            )
        }
    engine.dispose()
    return oldest


def _index_rows(gx_root: Path) -> list[dict]:
    """The Status cell, its filter text and the page of each run listed on the Data Docs index."""
    text = (gx_root / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text(encoding="utf-8")
    rows = []
    for chunk in text.split("{'validation_success': ")[1:]:
        rows.append(
            {
                "cell": chunk.split("', 'run_time'")[0],
                "status": re.search(r"'_validation_success_text': '(\w+)'", chunk).group(1),
                "page": re.search(r"'_table_row_link_path': '([^']+)'", chunk).group(1),
            }
        )
    return rows


def test_the_data_docs_index_marks_an_errored_run_apart_from_findings(any_warehouse, gx_copy):
    settings = Settings.from_env()
    load(settings, Data().add("mart_uti", order_id=1, update_time=IN))  # a Test 2 finding
    (found,) = run_checks(settings, AS_OF, ["missing_spath"]).outcomes
    assert found.status == "fail"
    load(settings, Data(sql=['DROP TABLE "{mart}".mart_uni_tracking_spath']))
    (errored,) = run_checks(settings, AS_OF, ["missing_spath"]).outcomes
    assert errored.status == "error" and "mart_uni_tracking_spath" in errored.message
    by_page = {r["page"]: r for r in _index_rows(gx_copy)}
    page_of = {o.status: o.data_docs_url.split("/local_site/")[1] for o in (found, errored)}
    assert set(page_of.values()) <= set(by_page)

    failed_row, error_row = by_page[page_of["fail"]], by_page[page_of["error"]]
    assert failed_row["status"] == "Failed" and "fa-times text-danger" in failed_row["cell"]
    assert error_row["status"] == "Error"  # the Status filter offers errors apart
    assert "fa-times" not in error_row["cell"] and "fa-exclamation-triangle" in error_row["cell"]
    assert re.search(r'title="error: [^"]*mart_uni_tracking_spath', error_row["cell"]), error_row["cell"]
