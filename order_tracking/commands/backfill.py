"""``backfill``: copy a flagged order's rows from the MySQL source into the mart (Tests 1 and 2)."""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from order_tracking import db
from order_tracking.checks import exceptions_store, rules, source_verdict
from order_tracking.clock import utc_now
from order_tracking.commands.common import add_order_fix_arguments, exceptions_warehouse, source_engine
from order_tracking.errors import UserError
from order_tracking.fixes import backfill
from order_tracking.fixes.backfill_plan import (
    BACKFILL_TYPES,
    DEFAULT_MAX_ROWS,
    OrderPlan,
    Refused,
    plan_order,
)

EXIT_DONE, EXIT_REFUSED_OR_FAILING = 0, 1
MAX_ROWS_LIMIT = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backfill",
        help="fix ORDER_MISSING_SPATH / UTI_UTS_TIME_MISMATCH: copy the order's rows from the MySQL source",
        description="For each order: its source verdict, the source rows to copy (count, pathTime "
        "range), the mart rows they replace and the exact statements. Dry run by default. With "
        "--apply, one transaction per order that first locks the mart tables it writes, deletes the "
        "order's mart_uni_tracking_spath rows (Test 1: also its mart_uni_tracking_info row) and "
        "inserts the source's (the columns both have, matched case-insensitively); then the check's "
        "rule runs again for the order and, if it passes, its open exception is resolved. Refuses "
        "an order (nothing changed for it) that is missing from the source, has more source rows "
        "than --max-rows, or, unless --force, whose verdict is not in_source or that has no open "
        "exception of the type. Exit 0: dry run or every order closed; 1: an order refused or still "
        "failing; 3: an error.",
    )
    p.add_argument("--type", required=True, choices=BACKFILL_TYPES, dest="exception_type")
    add_order_fix_arguments(
        p, "backfill", "also orders whose verdict is not in_source or that have no open exception of the type"
    )
    p.add_argument(
        "--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N",
        help=f"refuse an order with more source rows (default {DEFAULT_MAX_ROWS:,}; 1-{MAX_ROWS_LIMIT:,})",
    )  # fmt: skip
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> str:
    by = exceptions_store.check_text("--by", args.by, exceptions_store.BY_MAX, "say who backfills the orders")
    if len(set(args.order_ids)) != len(args.order_ids):
        raise UserError("an --order-id is given twice")
    if not 1 <= args.max_rows <= MAX_ROWS_LIMIT:
        raise UserError(f"--max-rows must be between 1 and {MAX_ROWS_LIMIT:,}, not {args.max_rows}")
    return by


def run(args: argparse.Namespace) -> int:
    by = _check_args(args)
    now = utc_now()
    with exceptions_warehouse(args) as (engine, tables):
        settings = tables.settings
        src = source_engine(settings)
        try:
            verdicts = source_verdict.look_up(src, settings, args.exception_type, args.order_ids)
            plans, refused = _plan(src, engine, tables, verdicts, args)
        finally:
            src.dispose()
        for plan in plans:
            _print_plan(plan, engine, tables, by, now)
        for line in refused:
            print(f"refused: {line}; nothing changed for it")
        if not args.apply:
            print("dry run: nothing changed; add --apply to run these statements")
            return EXIT_REFUSED_OR_FAILING if refused else EXIT_DONE
        failing = 0
        for plan in plans:
            try:
                outcome = backfill.backfill_order(engine, tables, plan, by, now)
            except sa.exc.DBAPIError as exc:
                raise UserError(
                    f"order {plan.order_id}: backfill failed and was rolled back: {db.short_reason(exc)}"
                ) from None
            print(outcome.message)
            failing += outcome.status == backfill.STILL_FAILING
    return EXIT_REFUSED_OR_FAILING if refused or failing else EXIT_DONE


def _plan(src, engine, tables, verdicts, args) -> tuple[list[OrderPlan], list[str]]:
    """Every order read before the first is changed; refusals are collected, one line each."""
    plans, refused = [], []
    with src.connect() as sconn, engine.connect() as wconn:
        figures = source_verdict.warehouse_figures(wconn, tables, args.order_ids)
        for order_id in args.order_ids:
            verdict = verdicts[order_id]
            print(
                f"-- order {order_id} ({args.exception_type}): verdict {verdict.verdict}; "
                f"{verdict.detail(figures.get(order_id))}"
            )
            try:
                plans.append(
                    plan_order(sconn, wconn, tables, verdict, force=args.force, max_rows=args.max_rows)
                )
            except Refused as exc:
                refused.append(str(exc))
    return plans, refused


def _print_plan(plan: OrderPlan, engine, tables, by: str, now) -> None:
    state = "open" if plan.open_exceptions else "none open (backfilled only with --force)"
    print(f"-- order {plan.order_id}: would copy {plan.summary()}; {plan.exception_type} exception: {state}")
    for sql in backfill.render(plan, engine.dialect, tables):
        print(f"{sql};")
    print(f"-- then: the {plan.exception_type} rule for order {plan.order_id} (by its id); if it passes:")
    update = backfill.resolve_statement(tables, plan, by, now, backfill.resolution_note(plan))
    print(f"{rules.compile_sql(update, engine.dialect).strip()};")
