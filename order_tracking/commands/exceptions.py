"""``exceptions``: what is open in the exceptions store, by type or in detail.

Without ``--type``/``--order-id`` it prints one line per type (count, oldest first detection,
newest last sighting); with them, one line per exception with its age, so that a finding that
was first detected weeks ago and is still seen today stands out.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from order_tracking.alerts.content import format_age
from order_tracking.checks import exceptions_store as store
from order_tracking.clock import utc_now
from order_tracking.commands.common import exceptions_warehouse
from order_tracking.errors import UserError

SUMMARY_COLUMNS = ("exception_type", "count", "oldest_detected_at", "newest_last_seen_at")
SUMMARY_WITH_RESOLVED_COLUMNS = (
    "exception_type",
    "open",
    "resolved",
    "oldest_detected_at",
    "newest_last_seen_at",
)
DETAIL_COLUMNS = (
    "order_id",
    "exception_type",
    "detected_at",
    "last_seen_at",
    "age",
    "notes",
    "resolved_at",
    "resolved_by",
    "resolution_notes",
    # Issue 23: the source verdict (Tests 1-2) and the run since which an open order passes again.
    "source_verdict",
    "source_detail",
    "now_passing",
)
# The table view puts the long evidence column last, so that the resolution (when, who, why)
# stays on screen beside the order instead of past the end of a terminal line.
LONG_COLUMNS = ("source_detail", "notes")  # the finding's own evidence stays last
TABLE_DETAIL_COLUMNS = (*(c for c in DETAIL_COLUMNS if c not in LONG_COLUMNS), *LONG_COLUMNS)
AGE_JSON_KEY = "age_seconds"  # JSON carries the age as a number: its name says the unit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exceptions",
        help="show exceptions: a summary by type, or the rows of one type / some orders",
        description="Without --type/--order-id: open exceptions by type (count, oldest detection, "
        "newest sighting). With them: one row per exception, with first detected, last seen and "
        "age, so stale findings stand out.",
    )
    p.add_argument("--type", dest="exception_type", metavar="T", help="only this exception type")
    p.add_argument(
        "--order-id",
        dest="order_ids",
        type=int,
        action="append",
        metavar="N",
        help="only this order (repeat)",
    )
    p.add_argument("--include-resolved", action="store_true", help="also show resolved exceptions")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    p.add_argument("--limit", type=int, metavar="N", help="at most N detail rows (with --type/--order-id)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: give a number of rows >= 1")
    if args.limit is not None and args.exception_type is None and not args.order_ids:
        # Silently ignored before: the summary has at most one line per type, nothing to cut.
        raise UserError(
            f"--limit {args.limit} limits detail rows: give --type T or --order-id N with it "
            "(the summary has one line per type)"
        )
    with exceptions_warehouse(args) as (engine, tables):
        if args.exception_type is None and not args.order_ids:
            summary = store.summary_by_type(engine, tables, include_resolved=args.include_resolved)
            if args.include_resolved:  # open and resolved apart: "12" alone would mix them
                columns = SUMMARY_WITH_RESOLVED_COLUMNS
                records = [
                    dict(zip(columns, (s.exception_type, s.count, s.resolved, s.oldest_detected_at,
                                       s.newest_last_seen_at), strict=True))
                    for s in summary
                ]  # fmt: skip
            else:
                columns = SUMMARY_COLUMNS
                records = [
                    dict(zip(columns, (s.exception_type, s.count, s.oldest_detected_at,
                                       s.newest_last_seen_at), strict=True))
                    for s in summary
                ]  # fmt: skip
            _emit(
                records,
                columns,
                args.format,
                empty="no exceptions" if args.include_resolved else "no open exceptions",
            )
        else:
            rows = store.list_exceptions(
                engine,
                tables,
                type=args.exception_type,
                order_ids=args.order_ids,
                include_resolved=args.include_resolved,
                limit=None if args.limit is None else args.limit + 1,  # one more: was anything cut?
                now=utc_now(),
            )
            truncated = args.limit is not None and len(rows) > args.limit
            rows = rows[: args.limit] if truncated else rows
            records = [{c: getattr(r, c) for c in DETAIL_COLUMNS} for r in rows]
            columns = TABLE_DETAIL_COLUMNS if args.format == "table" else DETAIL_COLUMNS
            _emit(records, columns, args.format, empty="no matching exceptions")
            if truncated:
                # On stderr, so that csv/json output stays machine-readable.
                print(
                    f"showing the newest {args.limit} rows; more match (raise --limit or drop it)",
                    file=sys.stderr,
                )
    return 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, timedelta):
        return format_age(value)
    return str(value)


def _cell(value: Any) -> str:
    """A table cell on one line: a line break in a note would split the row."""
    return " ".join(_text(value).splitlines())


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())  # age in seconds: easy to sort and compare
    return value


def _emit(records: list[dict], columns: tuple[str, ...], fmt: str, empty: str) -> None:
    if fmt == "json":
        out = [{AGE_JSON_KEY if c == "age" else c: _json(r[c]) for c in columns} for r in records]
        print(json.dumps(out, indent=2))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in records:
            writer.writerow([_text(r[c]) for c in columns])
        return
    if not records:
        print(empty)
        return
    cells = [[_cell(r[c]) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
