"""The maintenance plan and its results as the ``vacuum`` command prints them."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from sqlalchemy.engine import Dialect

from order_tracking import maintenance
from order_tracking.maintenance.metrics import MB, Metrics
from order_tracking.maintenance.plan import Statement
from order_tracking.maintenance.thresholds import describe

SQLITE_NOTE = (
    "-- sqlite has no table-level VACUUM: each VACUUM DELETE ONLY below rebuilds the whole file of\n"
    "-- the schema (every table in it, the same work each time); ANALYZE is per table."
)


def _stand_in(o: maintenance.Outcome | Statement) -> str:
    """`` (runs: VACUUM "x")`` when the dialect runs something other than the spec's operation."""
    return "" if not o.sql or o.sql.startswith(o.operation) else f" (runs: {o.sql})"


def print_plan(
    outcomes: list[maintenance.Outcome], dialect: Dialect, out=sys.stdout, figures: str | None = None
) -> None:
    """The plan as a SQL script: one statement per line, skipped steps as comments.

    Each step that has a statement gets a comment with its decision (its threshold and figure).
    ``figures``: None when the figures were read (each table's first step then shows them), else
    why they were not (e.g. no connection).
    """
    print(f"-- vacuum plan for {dialect.name}", file=out)
    if dialect.name == "sqlite":
        print(SQLITE_NOTE, file=out)
    if figures:
        print(f"-- figures not read: {figures}", file=out)
    task, shown = None, set()
    for o in outcomes:
        if o.task != task:
            task = o.task
            print(f"-- {task}", file=out)
        if figures is None and o.sql and o.table not in shown:
            shown.add(o.table)
            unread = [n for n in o.notes if n.startswith("figures unavailable")]
            print(f"-- {o.table}: {unread[0] if unread else describe(o.before)}", file=out)
        decision = next((n for n in o.notes if n.startswith(("runs", "skipped"))), None)
        if o.sql and o.status == maintenance.SKIPPED:
            print(f"-- skipped {o.operation} {o.table}: {o.error}; would run: {o.sql};", file=out)
        elif o.sql:
            if decision:
                print(f"-- {o.operation} {o.table}: {decision}", file=out)
            stands_for = f"  -- {o.operation} {o.table}" if _stand_in(o) else ""
            print(f"{o.sql};{stands_for}", file=out)
        else:
            print(f"-- skipped {o.operation} {o.table}: {o.error}", file=out)


def progress_printer(out=sys.stdout):
    """A ``maintenance.run_plan`` progress callback: a line when each step starts and ends."""
    started: dict[tuple[str, str, str], float] = {}

    def progress(stmt: Statement, outcome: maintenance.Outcome | None) -> None:
        key = (stmt.task, stmt.table, stmt.operation)
        step = f"{stmt.operation} {stmt.table}{_stand_in(stmt)}"
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        if outcome is None:
            started[key] = time.monotonic()
            if stmt.sql:
                print(f"{stamp} start {step}", file=out, flush=True)
            return
        took = time.monotonic() - started.pop(key, time.monotonic())
        tries = f", {outcome.attempts} tries" if outcome.attempts > 1 else ""
        print(f"{stamp} {outcome.status} {step} in {took:.1f} s{tries}", file=out, flush=True)

    return progress


def _pair(before: object, after: object) -> str:
    def fmt(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    return f"{fmt(before)} -> {fmt(after)}"


def _size(metrics: Metrics | None) -> str | None:
    if metrics is None or metrics.size_bytes is None:
        return None
    size = metrics.size_bytes
    return f"{size / MB:.1f} MB" if size >= MB else f"{size / 1024:.1f} KB"


def print_results(outcomes: list[maintenance.Outcome], out=sys.stdout) -> None:
    """A before/after table, one line per step, then the reason for every failed or skipped step."""
    header = ("table", "operation", "status", "tries", "rows", "ghost/dead rows", "unsorted %", "size")
    rows = [header]
    for o in outcomes:
        b, a = o.before or Metrics(), o.after or Metrics()
        rows.append(
            (
                o.table,
                o.operation,
                o.status,
                str(o.attempts),
                _pair(b.rows, a.rows),
                _pair(b.ghost_rows, a.ghost_rows),
                _pair(b.unsorted_pct, a.unsorted_pct),
                _pair(_size(o.before), _size(o.after)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip(), file=out)
    for o in outcomes:
        if o.error and o.status != maintenance.OK:
            print(f"{o.status}: {o.operation} {o.table}: {o.error}", file=out)
