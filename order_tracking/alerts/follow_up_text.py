"""The follow-up of a check (issue 23) in words: source verdicts, the backfill and resolve commands.

Pure functions over the ``details["follow_up"]`` dict that ``checks.follow_up.FollowUp.as_details``
stores with each Test 1-3 result; the alert email (``content``), the ``monitor`` report, the
Airflow gate and the Data Docs pages all word it here, so they say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CLI = "python -m order_tracking"
IDS_IN_COMMAND = 50  # order ids written into one command line; the note says how to reach the rest
VERDICT_ORDER = ("in_source", "missing_in_source", "mismatch_in_source", "unknown")


def _ids(order_ids: Sequence[Any]) -> str:
    return " ".join(f"--order-id {i}" for i in order_ids[:IDS_IN_COMMAND])


def _more(shown: int, total: int, etype: str) -> str:
    if total <= shown:
        return ""
    return f" (the first {shown} of {total}: `{CLI} exceptions --type {etype} --format csv` lists all)"


def verdict_counts(follow_up: Mapping[str, Any] | None) -> str | None:
    """``source verdicts: in_source 3, missing_in_source 1`` (None: the type has no source side)."""
    counts = (follow_up or {}).get("verdicts")
    if counts is None:
        return None
    if not counts:
        return "source verdicts: none (no open exception)"
    parts = [f"{word} {counts[word]}" for word in VERDICT_ORDER if counts.get(word)]
    return "source verdicts: " + ", ".join(parts)


def backfill_command(follow_up: Mapping[str, Any] | None) -> str | None:
    """The ``backfill`` dry run for the ``in_source`` orders (the only ones a backfill can fix)."""
    fu = follow_up or {}
    ids = list(fu.get("in_source_ids") or [])
    if not ids:
        return None
    etype = fu.get("exception_type")
    total = int((fu.get("verdicts") or {}).get("in_source") or len(ids))
    command = f"{CLI} backfill --type {etype} {_ids(ids)} --by YOUR_NAME"
    return command + " (a dry run; add --apply to copy)" + _more(min(len(ids), IDS_IN_COMMAND), total, etype)


def healed_line(follow_up: Mapping[str, Any] | None) -> str | None:
    """``5 of 12 open now pass: close them with ...`` (or what auto-resolve closed)."""
    fu = follow_up or {}
    passing, open_count = int(fu.get("now_passing") or 0), int(fu.get("open") or 0)
    if not passing:
        return None
    etype = fu.get("exception_type")
    resolved = int(fu.get("auto_resolved") or 0)
    if resolved:
        return (
            f"{passing} of {open_count} open now pass: {resolved} resolved by auto "
            f"(ORDER_TRACKING_AUTO_RESOLVE=true, run {fu.get('run')})"
        )
    ids = list(fu.get("now_passing_ids") or [])
    command = f'{CLI} resolve --type {etype} {_ids(ids)} --by YOUR_NAME --notes "passes again"'
    return f"{passing} of {open_count} open now pass: close them with {command}" + _more(
        min(len(ids), IDS_IN_COMMAND), passing, etype
    )


def lines(follow_up: Mapping[str, Any] | None) -> list[str]:
    """Every follow-up line of one type, in the order the email shows them."""
    fu = follow_up or {}
    out = [verdict_counts(fu), backfill_command(fu), healed_line(fu), fu.get("warning")]
    backfill = out[1]
    if backfill:
        out[1] = f"backfill the in_source orders: {backfill}"
    return [line for line in out if line]
