"""``repair-reactivated``: move reactivated orders' rows from history back into mart_ecs_order_info."""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from order_tracking import db
from order_tracking.clock import utc_now
from order_tracking.commands.common import add_order_fix_arguments, exceptions_warehouse
from order_tracking.errors import UserError
from order_tracking.fixes import repair_reactivated as repair


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair-reactivated",
        help="fix REACTIVATED_ORDER_MISSING_ECS: move the order's row from history into the mart",
        description="For each order: find the hist_ecs_order_info_<YYYY>_h<1|2> table that holds it, "
        "then in ONE transaction that first locks the exceptions table, mart_ecs_order_info and that "
        "history table, INSERT the row (every column) into mart_ecs_order_info, DELETE it from "
        "history and close the open REACTIVATED_ORDER_MISSING_ECS exception. Dry run by default: "
        "prints the exact statements. Refuses (nothing changed) if an order is in no history table, "
        "in more than one history row, already in mart_ecs_order_info, if the two tables' columns "
        "differ, or (unless --force) if the order has no open REACTIVATED_ORDER_MISSING_ECS exception.",
    )
    add_order_fix_arguments(
        p,
        "repair",
        "with --apply: also move orders that have no open REACTIVATED_ORDER_MISSING_ECS exception",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    now = utc_now()
    with exceptions_warehouse(args) as (engine, tables):
        # Every order is checked before the first one is changed: one refusal, no change at all.
        # A dry run shows unflagged orders too (it changes nothing); --apply refuses them.
        locations = repair.plan(engine, tables, args.order_ids, args.by, force=args.force or not args.apply)
        by = repair.check_by(args.by)
        for where in locations:
            stmts = repair.repair_statements(tables, where, by, now)
            state = "open" if where.open_exceptions else "none open (--apply refuses it without --force)"
            print(
                f"-- order {where.order_id}: in {repair.qualified(where.hist)}; "
                f"{repair.REACTIVATED_ORDER_MISSING_ECS} exception: {state}"
            )
            start = repair.transaction_start(engine.dialect, tables, where.hist)
            for sql in repair.render(stmts, engine.dialect, start):
                print(f"{sql};")
        if not args.apply:
            print("dry run: nothing changed; add --apply to run these statements")
            return 0
        for where in locations:
            try:
                result = repair.apply(engine, tables, where, by, now, force=args.force)
            except sa.exc.DBAPIError as exc:
                raise UserError(
                    f"order {where.order_id}: repair failed and was rolled back: {db.short_reason(exc)}"
                ) from None
            print(
                f"moved order {result.order_id} from {result.hist_name} to "
                f"{repair.qualified(tables.mart_ecs)}; closed {result.closed} exception"
                f"{'s' if result.closed != 1 else ''}"
            )
    return 0
