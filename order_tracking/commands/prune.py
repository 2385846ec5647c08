"""``prune``: remove validation results and Data Docs pages older than ORDER_TRACKING_KEEP_DAYS."""

from __future__ import annotations

import argparse

from order_tracking.clock import utc_now
from order_tracking.commands.common import settings_from
from order_tracking.errors import UserError
from order_tracking.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="remove validation results and Data Docs pages older than ORDER_TRACKING_KEEP_DAYS",
        description="Remove the GX validation results and their Data Docs pages whose run is older "
        "than ORDER_TRACKING_KEEP_DAYS (default 90), from the local gx/uncommitted/ folders or the "
        "ORDER_TRACKING_GX_STORE_URL bucket, then rebuild the Data Docs index without them. The "
        "exceptions table and the maintenance log are never touched. monitor does the same at the "
        "end of every run, within a time budget.",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from order_tracking.stores import retention

    settings = settings_from(args)
    try:
        pruned = retention.prune(settings, utc_now(), dry_run=args.dry_run)
    except OSError as exc:  # a local folder we may not write: one line, exit 3
        raise UserError(f"prune: {exc.strerror or exc}: {exc.filename or settings.gx_root}") from None
    print(pruned.line())
    if pruned.removed and not pruned.dry_run:
        print(f"Data Docs index rebuilt: {rebuild_index(settings)}")
    return 0


def rebuild_index(settings: Settings) -> str:
    """Rebuild the Data Docs index (and health page) from what the results store now holds."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from expectations_custom.data_docs.build import build_data_docs
    from expectations_custom.run_settings import settings_bound
    from order_tracking.checks import gx_project

    context = gx_project.load(settings)
    suite = ExpectationSuiteIdentifier(name=next(iter(gx_project.CHECKS.values())).suite)
    with settings_bound(settings):
        build_data_docs(context, [suite])  # a suite page that exists: only the index is rebuilt
    return settings.data_docs_location
