"""``init-db``: create the tables that are ours (and, for local use, the pipeline's)."""

from __future__ import annotations

import argparse

from order_tracking import schema
from order_tracking.checks.exceptions_store import follow_up_columns
from order_tracking.commands.common import settings_from, source_engine, warehouse_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init-db",
        help="create missing tables and add missing exceptions-table columns (never drops anything)",
        description="Create the settlement_ods tables that this project owns. With "
        "--with-pipeline-tables also the source, mart and raw tables (local and test databases "
        "only: in production the pipeline owns them). Existing tables are left untouched, except that an "
        "exceptions table from an older version gets the nullable columns it lacks "
        "(source_verdict, source_detail, passing_since, passing_run).",
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
    warehouse = warehouse_engine(settings)
    report = schema.create_tables(warehouse, wanted)
    added = follow_up_columns.add_missing(warehouse, tables)
    if args.with_pipeline_tables:
        report += schema.create_tables(source_engine(settings), tables.source_tables)
    for name, created in report:
        print(f"{'created' if created else 'exists '}  {name}")
    for column in added:
        print(f"added    {tables.exceptions.schema}.{tables.exceptions.name}.{column}")
    return 0
