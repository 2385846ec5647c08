"""``init-db``: create the tables that are ours (and, for local use, the pipeline's)."""

from __future__ import annotations

import argparse

from order_tracking import schema
from order_tracking.commands.common import settings_from, source_engine, warehouse_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init-db",
        help="create missing tables (never drops or alters anything)",
        description="Create the settlement_ods tables that this project owns. With "
        "--with-pipeline-tables also the source, mart and raw tables (local and test databases "
        "only: in production the pipeline owns them). Existing tables are left untouched.",
    )
    p.add_argument(
        "--with-pipeline-tables",
        action="store_true",
        help="also create source (kuaisong) and warehouse mart/raw tables",
    )
    p.add_argument(
        "--print-redshift-ddl",
        action="store_true",
        help="print the Redshift CREATE TABLE statements and exit (connects to nothing)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tables = schema.build_tables(settings)
    wanted = list(tables.ods_tables) + (tables.pipeline_tables if args.with_pipeline_tables else [])
    if args.print_redshift_ddl:
        print(";\n\n".join(schema.redshift_ddl(wanted)) + ";")
        return 0
    report = schema.create_tables(warehouse_engine(settings), wanted)
    if args.with_pipeline_tables:
        report += schema.create_tables(source_engine(settings), tables.source_tables)
    for name, created in report:
        print(f"{'created' if created else 'exists '}  {name}")
    return 0
