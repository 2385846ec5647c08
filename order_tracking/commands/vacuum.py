"""``vacuum``: the spec's DAG 2 plan (VACUUM DELETE ONLY / SORT ONLY / ANALYZE) from the shell."""

from __future__ import annotations

import argparse
import sys

from order_tracking import db, maintenance
from order_tracking.commands.common import settings_from, warehouse_engine
from order_tracking.errors import UserError
from order_tracking.maintenance.plan import PLAN, SUPPORTED_DIALECTS, dialect_named
from order_tracking.maintenance.report import print_plan, print_results, progress_printer
from order_tracking.settings import Settings


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


def _dry_run(args: argparse.Namespace, settings: Settings, tasks: list[str]) -> int:
    """The plan with, per table, the figures read, each step's decision and its statement.

    ``--dialect`` connects to nothing; otherwise the warehouse's figures are read (catalog views
    only) when its database exists: a plan never creates an embedded database.
    """
    if args.dialect:
        dialect = dialect_named(args.dialect)
        print_plan(
            maintenance.plan_outcomes(dialect, settings, tasks),
            dialect,
            figures="--dialect connects to nothing",
        )
        return 0
    dialect = db.parse_url(settings.warehouse_url, "warehouse").get_dialect()()
    try:
        db.require_database(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
        engine = warehouse_engine(settings)
    except UserError as exc:
        print_plan(maintenance.plan_outcomes(dialect, settings, tasks), dialect, figures=str(exc))
        return 0
    try:
        print_plan(maintenance.plan_outcomes(engine.dialect, settings, tasks, engine), engine.dialect)
    finally:
        engine.dispose()
    return 0


def _split(value: str | None) -> list[str] | None:
    return [v for v in (value or "").split(",") if v.strip()] or None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tasks = maintenance.resolve_tasks(_split(args.tasks), _split(args.tables))
    if args.dialect and not args.dry_run:
        raise UserError("--dialect only goes with --dry-run (a real run uses the warehouse's dialect)")
    if args.dry_run:
        return _dry_run(args, settings, tasks)
    # Nothing to vacuum in a database that is not there: never create one.
    db.require_database(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
    engine = warehouse_engine(settings)
    retry = maintenance.RetryPolicy(attempts=args.retry_attempts, base_delay=args.retry_delay)
    print_plan(maintenance.plan_outcomes(engine.dialect, settings, tasks, engine), engine.dialect)
    print()
    outcomes = maintenance.run_plan(engine, settings, tasks, retry=retry, progress=progress_printer())
    print()
    print_results(outcomes)
    unknown = maintenance.unknowns(outcomes)
    if unknown:
        print(f"warning: {len(unknown)} step(s) ran but their effect is unknown (see above)", file=sys.stderr)
    failed = maintenance.failures(outcomes)
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} maintenance steps failed", file=sys.stderr)
        return 3
    unlogged = maintenance.unlogged_line(outcomes)
    if unlogged:  # the steps ran, but their record is missing: an error, never a quiet success
        print(f"error: {unlogged}", file=sys.stderr)
        return 3
    return 0
