"""``resolve``: close open exceptions after a fix, with who and why (never re-closes a row)."""

from __future__ import annotations

import argparse

from order_tracking.checks import exceptions_store as store
from order_tracking.clock import utc_now
from order_tracking.commands.common import exceptions_warehouse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resolve",
        help="mark open exceptions resolved (by order ids, or all of one type)",
        description="Set resolved_at/resolved_by/resolution_notes on OPEN exceptions of one type, "
        "for the given orders or for all of them. Already-resolved rows are never touched; if an "
        "order has no open exception of that type, nothing is changed.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--order-id",
        dest="order_ids",
        type=int,
        action="append",
        metavar="N",
        help="order to resolve (repeat)",
    )
    target.add_argument("--all-of-type", action="store_true", help="every open exception of --type")
    p.add_argument("--type", dest="exception_type", required=True, metavar="T", help="exception type")
    p.add_argument("--by", required=True, metavar="NAME", help="who resolves (resolved_by)")
    p.add_argument("--notes", required=True, metavar="TEXT", help="why (resolution_notes)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with exceptions_warehouse(args) as (engine, tables):
        closed = store.resolve(
            engine,
            tables,
            order_ids=args.order_ids,
            exception_type=args.exception_type,
            all_of_type=args.all_of_type,
            by=args.by,
            notes=args.notes,
            now=utc_now(),
        )
    print(f"closed {closed} open {args.exception_type} exception{'s' if closed != 1 else ''}")
    return 0
