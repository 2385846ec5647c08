"""What the morning alert says: subject, plain text and HTML, from the run's check summaries.

Pure functions, no I/O: the CLI's checkpoint email action (``expectations_custom.actions``) and
the Airflow notifier (``order_tracking.alerts.notifier``) both call :func:`build_alert`, so the engineer
reads the same message whichever ran the checks.

Input is one summary dict per check, the shape the monitoring DAG's tasks push to XCom under
``summary`` (TEAM.md contract): ``check``, ``success``, ``status`` (pass|fail|error), ``failing``,
``new``, ``already_open``, ``exception_type``, ``window`` [start, end], ``as_of``, ``sample``
(up to 10 ``{"order_id", "notes"}``), ``data_docs_page``, ``error``, and for Test 0 ``shortfall``
(per table ``source``/``raw``/``missing``) plus, when present, ``cycles``, ``missing_rows`` and
``missing_total``. Open counts and the oldest detection per type come from the caller
(:class:`OpenStats`): the CLI reads them after the last write, Airflow from the summaries.

Kept short for a phone: per type one headline, up to ``SAMPLE_IN_EMAIL`` order ids with their
notes, the next step (the spec's Action) and the exact command that fixes or closes it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from order_tracking.alerts import follow_up_text
from order_tracking.alerts.links import DocsLinks
from order_tracking.alerts.next_steps import CLI, EXTRACTION_CHECK, NextStep, next_step
from order_tracking.checks import gx_results
from order_tracking.settings import (
    EXCEPTION_TYPES,
    ORDER_MISSING_SPATH,
    REACTIVATED_ORDER_MISSING_ECS,
    UTI_UTS_TIME_MISMATCH,
)

SAMPLE_IN_EMAIL = 10
CYCLES_IN_EMAIL = 8
TEST_NAMES = {
    EXTRACTION_CHECK: "Test 0",
    "uti_uts_alignment": "Test 1",
    "missing_spath": "Test 2",
    "reactivated_missing_ecs": "Test 3",
}
SHORT_TYPE = {
    UTI_UTS_TIME_MISMATCH: "UTI",
    ORDER_MISSING_SPATH: "SPATH",
    REACTIVATED_ORDER_MISSING_ECS: "ECS",
}


@dataclass(frozen=True)
class OpenStats:
    """Unresolved exceptions of one type after this run wrote: how many, first detected when."""

    count: int
    oldest_detected_at: datetime | None = None


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    html: str


# --- small formatting helpers ---------------------------------------------------------------


def format_age(age: timedelta) -> str:
    """``3d 4h`` / ``5h 12m``: days and hours are what tell a stale finding from a fresh one."""
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


def _minute(value: Any) -> str:
    parsed = _as_datetime(value)
    return parsed.strftime("%Y-%m-%d %H:%M") if parsed else str(value or "?")


def docs_link(page: str | None, site_root: Path | None, base_url: str | None) -> str | None:
    """Where the engineer opens a local Data Docs page: under ``base_url`` if set, else the file
    path (``links.DocsLinks`` does the same for a site in a bucket)."""
    return DocsLinks(base_url, str(site_root) if site_root else None).link(page)


# --- the summaries --------------------------------------------------------------------------


def error_summary(check: str, message: str, as_of: Any = None) -> dict[str, Any]:
    """A summary for a check that could not run (its checkpoint raised before any action)."""
    return {"check": check, "success": False, "status": "error", "error": message, "as_of": as_of}


def shortfall_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Test 0's shortfall per table, ``{table, source, raw, missing}`` (``shortfall`` or the sample)."""
    rows = summary.get("shortfall")
    if rows is None:
        rows = [r for r in summary.get("sample") or [] if "table_name" in r]
    out = []
    for r in rows:
        source = r.get("source", r.get("source_count"))
        raw = r.get("raw", r.get("raw_count"))
        missing = r.get("missing", r.get("missing_rows"))
        if missing is None and source is not None and raw is not None:
            missing = int(source) - int(raw)
        table = r.get("table", r.get("table_name"))
        out.append({"table": table, "source": source, "raw": raw, "missing": missing})
    return out


def failed_cycles(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """15-minute cycles where raw holds fewer rows than the source (when Test 0 reports cycles)."""
    cycles = summary.get("cycles") or []
    return [c for c in cycles if (c.get("raw_count") or 0) < (c.get("source_count") or 0)]


@dataclass
class _TypeView:
    etype: str
    summary: Mapping[str, Any] | None
    open: OpenStats | None


def _type_views(
    summaries: Sequence[Mapping[str, Any]], open_by_type: Mapping[str, OpenStats]
) -> list[_TypeView]:
    by_type = {s.get("exception_type"): s for s in summaries if s.get("exception_type")}
    views = []
    for etype in EXCEPTION_TYPES:
        summary, stats = by_type.get(etype), open_by_type.get(etype)
        failing = int((summary or {}).get("failing") or 0)
        if failing or (stats and stats.count) or (summary and summary.get("status") == "error"):
            views.append(_TypeView(etype, summary, stats))
    return views


# --- the alert ------------------------------------------------------------------------------


def build_alert(
    summaries: Sequence[Mapping[str, Any]],
    *,
    as_of: Any,
    now: datetime,
    open_by_type: Mapping[str, OpenStats] | None = None,
    data_docs_index: str | None = None,
    links: DocsLinks | None = None,
    failed_tasks: Sequence[str] = (),
    run_label: str | None = None,
    data_docs_error: str | None = None,
    run_url: str | None = None,
    notices: Sequence[str] = (),
    source_schema: str = "kuaisong",
) -> Alert:
    """The alert for one run: ``summaries`` of its checks, the open exceptions per type, links.

    ``open_by_type`` missing a type means "not known" (e.g. the warehouse was down), not zero.
    ``links`` turns pages into what opens (``alerts.links``); ``run_url``: the Airflow run;
    ``notices``: lines shown first (a settings mismatch the notifier found);
    ``data_docs_error``: this run's pages were not built: one line, no link to the old home page.
    """
    open_by_type = dict(open_by_type or {})
    views = _type_views(summaries, open_by_type)
    test0 = next((s for s in summaries if s.get("check") == EXTRACTION_CHECK), None)
    errors = [s for s in summaries if s.get("status") == "error"]
    new_total = sum(int(s.get("new") or 0) for s in summaries if s.get("exception_type"))
    open_total = sum(v.count for v in open_by_type.values())
    per_type = ", ".join(
        f"{SHORT_TYPE[v.etype]} {int(v.summary.get('new') or 0)}"
        for v in views
        if v.summary and int(v.summary.get("new") or 0)
    )
    subject = f"[order-tracking] {_minute(as_of)}: {new_total} new, {open_total} open"
    if per_type:
        subject += f" ({per_type})"
    if test0 and test0.get("status") == "fail":
        subject += "; extraction alarm"
    if errors:
        subject += f"; {len(errors)} check{'s' if len(errors) > 1 else ''} in error"
    links = links or DocsLinks()
    link = links.link
    index = link(data_docs_index)

    label = f" ({run_label})" if run_label else ""
    text: list[str] = [f"Order tracking checks as of {_minute(as_of)} UTC{label}"]
    parts: list[str] = [f"<p>Order tracking checks as of <b>{_minute(as_of)} UTC</b>{html.escape(label)}</p>"]
    for notice in notices:
        text.append(notice)
        parts.append(f"<p><b>{html.escape(notice)}</b></p>")
    if run_url:
        text.append(f"Airflow run: {run_url}")
        parts.append(f"<p>Airflow run: {_a(run_url)}</p>")
    if failed_tasks:
        text.append("Failed tasks: " + ", ".join(failed_tasks))
        parts.append(f"<p>Failed tasks: {html.escape(', '.join(failed_tasks))}</p>")

    for s in errors:
        check, error = str(s.get("check")), str(s.get("error") or "see the logs")
        text += ["", f"{check}: ERROR: {error}"]
        parts.append(f"<p><b>{html.escape(check)}</b>: ERROR: {html.escape(error)}</p>")

    if test0 and test0.get("status") == "fail":
        t, h = _test0_section(test0, link)
        text += ["", *t]
        parts.append(h)

    for view in views:
        t, h = _type_section(view, now, link, source_schema)
        text += ["", *t]
        parts.append(h)

    if data_docs_error:
        line = f"Data Docs: this run's pages could not be built: {data_docs_error}"
        text += ["", line]
        parts.append(f"<p>{html.escape(line)}</p>")
    elif index:
        text += ["", f"Data Docs: {index}"]  # a path (no "://") opens as the note says
        parts.append(f"<p>Data Docs: {_a(index) if '://' in index else html.escape(index)}</p>")
    pages_shown = not data_docs_error and (index or any(s.get("data_docs_page") for s in summaries))
    note = links.note() if pages_shown else None
    if note:  # once: how to open the pages when they are not web links
        text.append(note)
        parts.append(f"<p><small>{html.escape(note)}</small></p>")
    text += ["", f"All open exceptions: {CLI} exceptions"]
    parts.append(f"<p>All open exceptions: <code>{CLI} exceptions</code></p>")
    return Alert(subject, "\n".join(text) + "\n", "\n".join(parts) + "\n")


def _a(url: str) -> str:
    # Long file paths must wrap on a phone screen.
    return f'<a style="word-break:break-all" href="{html.escape(url, quote=True)}">{html.escape(url)}</a>'


def _window(summary: Mapping[str, Any]) -> str:
    window = summary.get("window") or [None, None]
    return f"{_minute(window[0])} .. {_minute(window[1])}" if window[0] else ""


def _step_lines(step: NextStep) -> tuple[list[str], str]:
    text = [f"  Next: {step.action}", f"  Run: {step.command}", f"       ({step.command_note})"]
    h = (
        f"<p>Next: {html.escape(step.action)}<br>Run: <code>{html.escape(step.command)}</code>"
        f"<br><small>{html.escape(step.command_note)}</small></p>"
    )
    return text, h


def _page_lines(summary: Mapping[str, Any], link) -> tuple[list[str], str]:
    page = link(summary.get("data_docs_page"))
    if not page:
        return [], ""
    return [f"  Page: {page}"], f"<p>Page: {_a(page) if '://' in page else html.escape(page)}</p>"


def _test0_section(summary: Mapping[str, Any], link) -> tuple[list[str], str]:
    rows = shortfall_rows(summary)
    window = _window(summary)
    text = [f"EXTRACTION ALARM (Test 0), window {window}:"]
    items = []
    for r in rows:
        text.append(f"  {r['table']}: source {r['source']}, raw {r['raw']}, missing {r['missing']}")
        items.append(
            f"<li>{html.escape(str(r['table']))}: source {r['source']}, raw {r['raw']}, "
            f"missing {r['missing']}</li>"
        )
    h = [f"<h3>Extraction alarm (Test 0)</h3><p>Window {html.escape(window)}</p><ul>{''.join(items)}</ul>"]
    cycles = failed_cycles(summary)
    if cycles:
        text.append("  15-minute cycles short of the source:")
        for c in cycles[:CYCLES_IN_EMAIL]:
            text.append(
                f"    {c.get('table')} {_minute(c.get('cycle_start'))}: "
                f"source {c.get('source_count')}, raw {c.get('raw_count')}"
            )
        h.append(
            "<p>15-minute cycles short of the source:</p><ul>"
            + "".join(
                f"<li>{html.escape(str(c.get('table')))} {_minute(c.get('cycle_start'))}: "
                f"source {c.get('source_count')}, raw {c.get('raw_count')}</li>"
                for c in cycles[:CYCLES_IN_EMAIL]
            )
            + "</ul>"
        )
    missing = summary.get("missing_rows") or []
    if missing:
        total = summary.get("missing_total") or len(missing)
        shown = missing[:SAMPLE_IN_EMAIL]
        text.append(f"  lost rows ({len(shown)} of {total}):")
        text += [f"    {m.get('table')} {m.get('key')} at {m.get('time')}" for m in shown]
        h.append(
            f"<p>Lost rows ({len(shown)} of {total}):</p><ul>"
            + "".join(
                f"<li>{html.escape(str(m.get('table')))} {html.escape(str(m.get('key')))} at "
                f"{html.escape(str(m.get('time')))}</li>"
                for m in shown
            )
            + "</ul>"
        )
    step = next_step(EXTRACTION_CHECK, as_of=summary.get("as_of"))
    t, sh = _step_lines(step)
    pt, ph = _page_lines(summary, link)
    return text + t + pt, "".join(h) + sh + ph


def _type_section(view: _TypeView, now: datetime, link, source_schema: str) -> tuple[list[str], str]:
    s = view.summary or {}
    name = next((TEST_NAMES[c] for c in TEST_NAMES if s.get("check") == c), "")
    head = [f"{int(s.get('new') or 0)} new"] if s else []
    if s:
        head.append(f"{int(s.get('failing') or 0)} found tonight")
    if view.open is not None:
        head.append(f"{view.open.count} open")
        oldest = _as_datetime(view.open.oldest_detected_at)
        if oldest is not None and view.open.count:
            head.append(f"oldest {format_age(now - oldest)}")
    title = f"{view.etype}" + (f" ({name})" if name else "")
    text = [f"{title}: {', '.join(head)}"]
    h = [f"<h3>{html.escape(title)}</h3><p>{html.escape(', '.join(head))}</p>"]
    sample = list(s.get("sample") or [])[:SAMPLE_IN_EMAIL]
    if sample:
        text.append(f"  orders ({len(sample)} of {int(s.get('failing') or len(sample))}):")
        text += [f"    {r.get('order_id')}  {r.get('notes') or ''}".rstrip() for r in sample]
        h.append(
            "<table>"
            + "".join(
                f'<tr style="vertical-align:top"><td><b>{html.escape(str(r.get("order_id")))}</b></td>'
                f"<td>{html.escape(str(r.get('notes') or ''))}</td></tr>"
                for r in sample
            )
            + "</table>"
        )
    step = next_step(
        view.etype,
        [r.get("order_id") for r in sample],
        s.get("as_of"),
        int(s.get("failing") or 0) or None,
        source_schema,
    )
    follow = follow_up_text.lines(s.get("follow_up"))  # issue 23: source verdicts, healed orders
    text += [f"  {line}" for line in follow]
    h += [f"<p>{html.escape(line)}</p>" for line in follow]
    t, sh = _step_lines(step)
    pt, ph = _page_lines(s, link)
    return text + t + pt, "".join(h) + sh + ph


# --- a summary from a GX validation result ----------------------------------------------------


def summary_from_result(
    check: str,
    evr: Any,
    recorded: Sequence[Mapping[str, Any]] = (),
    *,
    as_of: Any = None,
    data_docs_page: str | None = None,
) -> dict[str, Any]:
    """The contract summary of one check from its GX ``ExpectationValidationResult``.

    ``recorded``: what the exceptions action wrote (dicts with ``new`` and ``already_open``).
    """
    error = gx_results.result_error(evr)
    result = evr.result or {}
    details = result.get("details") or {}
    sample = details.get("sample") or []
    summary: dict[str, Any] = {
        "check": check,
        "success": bool(evr.success) and error is None,
        "status": "error" if error else ("pass" if evr.success else "fail"),
        "failing": int(result.get("observed_value") or 0),
        "new": sum(int(r.get("new") or 0) for r in recorded) if recorded else None,
        "already_open": sum(int(r.get("already_open") or 0) for r in recorded) if recorded else None,
        "exception_type": details.get("exception_type"),
        "window": [details.get("window_start"), details.get("window_end")],
        "as_of": str(as_of) if as_of is not None else None,
        "sample": [{"order_id": r.get("order_id"), "notes": r.get("notes")} for r in sample[:SAMPLE_IN_EMAIL]]
        if details.get("exception_type")
        else [],
        "data_docs_page": data_docs_page,
        "error": error,
        "follow_up": details.get("follow_up"),  # verdicts and healed orders (checks.follow_up)
    }
    if summary["exception_type"] and summary["new"] is None and summary["status"] == "pass":
        summary["new"] = summary["already_open"] = 0
    if check == EXTRACTION_CHECK:
        summary["shortfall"] = shortfall_rows({"sample": sample, "shortfall": details.get("shortfall")})
        for key in ("cycles", "missing_rows", "missing_total"):
            if details.get(key) is not None:
                summary[key] = details[key]
    return summary
