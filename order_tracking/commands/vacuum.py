"""``vacuum``: the spec's DAG 2 plan (VACUUM DELETE ONLY / SORT ONLY / ANALYZE) from the shell."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import Dialect

from order_tracking import db, maintenance
from order_tracking.commands.common import settings_from, warehouse_engine
from order_tracking.errors import UserError
from order_tracking.maintenance_metrics import MB, Metrics
from order_tracking.maintenance_sql import PLAN, SUPPORTED_DIALECTS, dialect_named


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vacuum",
        help="VACUUM/ANALYZE the mart tables (the spec's DAG 2) with before/after figures",
        description="Run the spec's maintenance plan: mart_uni_tracking_info and "
        "mart_uni_tracking_spath get VACUUM DELETE ONLY then ANALYZE; mart_ecs_order_info gets "
        "VACUUM DELETE ONLY, VACUUM SORT ONLY, ANALYZE. Each step runs alone on an autocommit "
        "connection and is written to the maintenance log. Status per step: ok, failed, skipped, or "
        "unknown (it ran, but nothing proves it did anything). Exit 3 if any step failed.",
    )
    p.add_argument("--tables", help="comma-separated: uti,uts,ecs or full table names (default: all)")
    p.add_argument("--tasks", help=f"comma-separated task names: {', '.join(PLAN)} (default: all)")
    p.add_argument("--dry-run", action="store_true", help="print the exact SQL and execute nothing")
    p.add_argument(
        "--dialect",
        choices=SUPPORTED_DIALECTS,
        help="with --dry-run: show this dialect's SQL without connecting (e.g. redshift)",
    )
    p.add_argument(
        "--retry-attempts",
        type=_positive_int,
        default=maintenance.RetryPolicy.attempts,
        help="tries while another VACUUM is running (default %(default)s)",
    )
    p.add_argument(
        "--retry-delay",
        type=_non_negative_float,
        default=maintenance.RetryPolicy.base_delay,
        help="first wait in seconds before a retry; doubles each time (default %(default)s)",
    )
    p.set_defaults(func=run)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds >= 0")
    return number


def _split(value: str | None) -> list[str] | None:
    return [v for v in (value or "").split(",") if v.strip()] or None


def print_plan(outcomes: list[maintenance.Outcome], dialect: Dialect, out=sys.stdout) -> None:
    """The plan as a SQL script: one statement per line, skipped steps as comments."""
    print(f"-- vacuum plan for {dialect.name}", file=out)
    task = None
    for o in outcomes:
        if o.task != task:
            task = o.task
            print(f"-- {task}", file=out)
        if o.sql:
            print(f"{o.sql};", file=out)
        else:
            print(f"-- skipped {o.operation} {o.table}: {o.error}", file=out)


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


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tasks = maintenance.resolve_tasks(_split(args.tasks), _split(args.tables))
    if args.dialect and not args.dry_run:
        raise UserError("--dialect only goes with --dry-run (a real run uses the warehouse's dialect)")
    if args.dry_run:
        if args.dialect:
            engine_dialect = dialect_named(args.dialect)
        else:
            engine_dialect = db.create_engine(
                settings.warehouse_url, settings.warehouse_schemas, role="warehouse"
            ).dialect
        print_plan(maintenance.plan_outcomes(engine_dialect, settings, tasks), engine_dialect)
        return 0
    engine = warehouse_engine(settings)
    retry = maintenance.RetryPolicy(attempts=args.retry_attempts, base_delay=args.retry_delay)
    print_plan(maintenance.plan_outcomes(engine.dialect, settings, tasks), engine.dialect)
    print()
    outcomes = maintenance.run_plan(engine, settings, tasks, retry=retry)
    print_results(outcomes)
    unknown = maintenance.unknowns(outcomes)
    if unknown:
        print(f"warning: {len(unknown)} step(s) ran but their effect is unknown (see above)", file=sys.stderr)
    failed = maintenance.failures(outcomes)
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} maintenance steps failed", file=sys.stderr)
        return 3
    return 0
