"""The Data Docs "health" page: the last 30 nights at a glance, next to GX's own pages.

``health.html`` sits beside the site's ``index.html`` (which links to it, see
``expectations_custom.data_docs.site_index``) and draws four charts with the vega / vega-lite / vega-embed
copies vendored for offline Data Docs (``data_docs_offline``), so it renders with no network:

1. findings per night per type (Tests 1-3, from the validation results);
2. open exceptions per night by age since detection (0-1, 2-7, 8-30, >30 days);
3. Test 0 source vs raw row counts per table per night;
4. per mart table, ghost rows and unsorted % before and after each VACUUM (maintenance log).

The data (``health_data``) is embedded in the page as JSON, so the page is one static file.
Each night shows its last good result per check; runs that errored are named in the headline
(after a good result, or with none), never shown as "no result".
It is rebuilt after every Data Docs index rebuild (``expectations_custom.data_docs.build.build_data_docs``):
once per ``monitor`` run, once per checkpoint in Airflow.
"""

from __future__ import annotations

import functools
import html
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from order_tracking import db, schema
from order_tracking.reports import data_docs_offline, health_data
from order_tracking.settings import EXCEPTION_TYPES, HEALTH_NIGHTS, Settings

log = logging.getLogger(__name__)

PAGE_NAME = "health.html"
_ASSETS = {
    "css": "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
    "vega": "https://cdn.jsdelivr.net/npm/vega@5",
    "vega-lite": "https://cdn.jsdelivr.net/npm/vega-lite@5",
    "vega-embed": "https://cdn.jsdelivr.net/npm/vega-embed@6",
}
WIDTH = 860
ERROR_NIGHTS_LISTED = 5  # nights with errored runs named in the headline, newest first; then a count


def _asset(name: str) -> str:
    """Site-relative path of a vendored file (the page sits at the site root)."""
    return (data_docs_offline.SITE_VENDOR / data_docs_offline.CDN_FILES[_ASSETS[name]]).as_posix()


def _night_axis(data: health_data.HealthData, field: str = "night") -> dict:
    return {
        "field": field,
        "type": "temporal",
        "timeUnit": "utcyearmonthdate",
        "title": None,
        # To the end of the last night, so that its bar (a day wide) is inside the axis.
        "scale": {
            "domain": [data.first_night.isoformat(), (data.last_night + timedelta(days=1)).isoformat()]
        },
        "axis": {"format": "%b %d", "labelAngle": -45},
    }


def chart_specs(data: health_data.HealthData) -> dict[str, dict]:
    """vega-lite specs, keyed by the id of the element each one is drawn into."""
    age_rank = {a: i for i, a in enumerate(health_data.AGE_BUCKETS)}
    open_by_age = [{**r, "age_rank": age_rank[r["age"]]} for r in data.open_by_age]
    return {
        "chart-findings": {
            "title": "Findings per night per type (Tests 1-3)",
            "width": WIDTH,
            "height": 200,
            "data": {"values": data.findings},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": _night_axis(data),
                "y": {"field": "found", "type": "quantitative", "aggregate": "sum", "title": "orders found"},
                "color": {"field": "type", "type": "nominal", "scale": {"domain": list(EXCEPTION_TYPES)}},
            },
        },
        "chart-open-by-age": {
            "title": "Open exceptions per night, by age since first detected",
            "width": WIDTH,
            "height": 200,
            "data": {"values": open_by_age},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": _night_axis(data),
                "y": {
                    "field": "open",
                    "type": "quantitative",
                    "aggregate": "sum",
                    "title": "open exceptions",
                },
                "color": {
                    "field": "age",
                    "type": "ordinal",
                    "scale": {"domain": list(health_data.AGE_BUCKETS), "scheme": "orangered"},
                },
                "order": {"field": "age_rank", "type": "ordinal"},
            },
        },
        "chart-extraction": {
            "title": "Test 0: source vs raw rows in the 2-hour window, per table",
            "data": {"values": data.extraction},
            "facet": {"field": "table", "type": "nominal", "title": None},
            "columns": 3,
            "spec": {
                "width": 260,
                "height": 160,
                "mark": {"type": "line", "point": True, "tooltip": True},
                "encoding": {
                    "x": _night_axis(data),
                    "y": {"field": "rows", "type": "quantitative", "title": "rows"},
                    "color": {"field": "side", "type": "nominal", "scale": {"domain": ["source", "raw"]}},
                    "strokeDash": {
                        "field": "side",
                        "type": "nominal",
                        "scale": {"domain": ["source", "raw"]},
                    },
                },
            },
            "resolve": {"scale": {"y": "independent"}},
        },
        "chart-vacuum": {
            "title": "VACUUM effect per mart table: before and after each step",
            "data": {
                "values": data.vacuum,
                "format": {"parse": {"at": "utc:'%Y-%m-%d %H:%M:%S'"}},
            },
            "facet": {
                "row": {"field": "table", "type": "nominal", "title": None},
                "column": {"field": "measure", "type": "nominal", "title": None},
            },
            "spec": {
                "width": 380,
                "height": 120,
                "mark": {"type": "line", "point": True, "tooltip": True},
                "encoding": {
                    "x": {
                        "field": "at",
                        "type": "temporal",
                        "title": None,
                        "scale": {"domain": [data.first_night.isoformat(), data.generated_at.isoformat()]},
                        "axis": {"format": "%b %d", "labelAngle": -45},
                    },
                    "y": {"field": "value", "type": "quantitative", "title": None},
                    "color": {"field": "when", "type": "nominal", "scale": {"domain": ["before", "after"]}},
                },
            },
            "resolve": {"scale": {"y": "independent"}},
        },
    }


def headline(data: health_data.HealthData) -> list[str]:
    """A few plain sentences for the top of the page: last night against the period."""
    lines = []
    if data.findings:
        latest = max(r["night"] for r in data.findings)
        found = {r["type"]: r["found"] for r in data.findings if r["night"] == latest}
        lines.append(
            f"Findings of the latest checked night ({latest}): "
            + ", ".join(f"{t} {n}" for t, n in sorted(found.items()))
            + "."
        )
    elif any(e["check"] != "extraction_count" for e in data.errors):
        lines.append(
            "No good validation result of Tests 1-3 in the period: every run of them errored (below)."
        )
    else:
        lines.append("No validation result of Tests 1-3 in the period.")
    last = data.last_night.isoformat()
    open_now = [r for r in data.open_by_age if r["night"] == last]
    if open_now:
        by_age = {a: sum(r["open"] for r in open_now if r["age"] == a) for a in health_data.AGE_BUCKETS}
        lines.append(
            f"Open now: {sum(by_age.values())} ("
            + ", ".join(f"{a}: {n}" for a, n in by_age.items() if n)
            + ")."
        )
    short_nights = sorted(
        {
            r["night"]
            for r in data.extraction
            if r["side"] == "raw"
            and any(
                s["rows"] > r["rows"]
                for s in data.extraction
                if s["side"] == "source" and s["night"] == r["night"] and s["table"] == r["table"]
            )
        }
    )
    if short_nights:
        lines.append(f"Test 0 alarms on {len(short_nights)} night(s), last on {short_nights[-1]}.")
    lines += error_lines(data.errors)
    if not data.vacuum:
        lines.append("No VACUUM figures (ghost rows, unsorted %) in the maintenance log for the period.")
    return lines


def error_lines(errors: list[dict]) -> list[str]:
    """Per night, the checks whose newest runs errored: after a good result (still charted), or
    with no good result at all (nothing charted). An error is never shown as "no result"."""
    lines = []
    for shown, wording in (
        (True, "the last good result of each is shown"),
        (False, "no run of the night could check them, nothing charted"),
    ):
        per_night: dict[str, list[dict]] = {}
        for e in errors:
            if e["good_result_shown"] is shown:
                per_night.setdefault(e["night"], []).append(e)
        for night in sorted(per_night, reverse=True)[:ERROR_NIGHTS_LISTED]:
            runs = per_night[night]
            checks = ", ".join(sorted({e["check"] for e in runs}))
            last = max(runs, key=lambda e: e["run_time"])
            lines.append(
                f"A {'later ' if shown else ''}run errored on {night} ({checks}): {wording}; "
                f"last error: {last['error']}"
            )
        if len(per_night) > ERROR_NIGHTS_LISTED:
            lines.append(f"... and errored runs on {len(per_night) - ERROR_NIGHTS_LISTED} earlier night(s).")
    return lines


def render(data: health_data.HealthData) -> str:
    specs = chart_specs(data)
    # JSON inside <script>: "</" would end the element early.
    payload = json.dumps({"data": data.as_dict(), "specs": specs}, sort_keys=True).replace("</", "<\\/")
    problems = "".join(f'<div class="alert alert-warning">{html.escape(p)}</div>' for p in data.problems)
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in headline(data))
    charts = "".join(f'<div class="chart mb-4" id="{cid}"></div>' for cid in specs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Order Tracking data quality: health, last {HEALTH_NIGHTS} nights</title>
<link rel="stylesheet" href="{_asset("css")}">
<script src="{_asset("vega")}"></script>
<script src="{_asset("vega-lite")}"></script>
<script src="{_asset("vega-embed")}"></script>
</head>
<body>
<div class="container-fluid p-3">
<p><a href="index.html">&larr; Data Docs home</a></p>
<h2>Health: the last {HEALTH_NIGHTS} nights</h2>
<p class="text-muted">Nights {data.first_night.isoformat()} .. {data.last_night.isoformat()} (UTC);
built {html.escape(data.as_dict()["generated_at"])} from the validation results, the exceptions table
and the maintenance log.</p>
{problems}
<ul>{summary}</ul>
{charts}
</div>
<script type="application/json" id="health-data">{payload}</script>
<script>
(function () {{
  var page = JSON.parse(document.getElementById("health-data").textContent);
  Object.keys(page.specs).forEach(function (id) {{
    vegaEmbed("#" + id, page.specs[id], {{mode: "vega-lite", renderer: "svg", actions: false}})
      .catch(function (err) {{ console.error("chart " + id + ": " + err); }});
  }});
}})();
</script>
</body>
</html>
"""


@functools.lru_cache(maxsize=4)
def _tables(settings: Settings) -> schema.Tables:
    """Table metadata per settings (frozen): built once per process, not on every docs build."""
    return schema.build_tables(settings)


def build(context, site_dir: Path, settings: Settings, now: datetime | None = None) -> Path:
    """Write ``health.html`` into the Data Docs site at ``site_dir``; returns its path."""
    now = now or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    tables = _tables(settings)
    engine = db.shared_engine(
        settings.warehouse_url, settings.warehouse_schemas, "warehouse", settings.timeouts
    )
    data = health_data.collect(context.validation_results_store, engine, tables, now)
    page = Path(site_dir) / PAGE_NAME
    page.write_text(render(data), encoding="utf-8")
    log.info("Data Docs health page: %s", page)
    return page
