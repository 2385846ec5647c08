"""Helpers shared by subcommands: settings from flags, engines, timestamps."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.engine import Engine

from order_tracking import db, schema
from order_tracking.clock import parse_timestamp
from order_tracking.errors import UserError
from order_tracking.settings import Settings


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(warehouse_url=args.warehouse_url, source_url=args.source_url)


def warehouse_engine(settings: Settings, check: bool = True) -> Engine:
    engine = db.create_engine(
        settings.warehouse_url, settings.warehouse_schemas, role="warehouse", timeouts=settings.timeouts
    )
    if check:
        db.check_connection(engine, "warehouse")
    return engine


def source_engine(settings: Settings, check: bool = True) -> Engine:
    engine = db.create_engine(
        settings.source_url, [settings.source_schema], role="source", timeouts=settings.timeouts
    )
    if check:
        db.check_connection(engine, "source")
    return engine


@contextmanager
def exceptions_warehouse(args: argparse.Namespace) -> Iterator[tuple[Engine, schema.Tables]]:
    """The warehouse engine and tables, after checking the exceptions table exists; disposed after."""
    from order_tracking.checks import exceptions_store

    settings = settings_from(args)
    tables = schema.build_tables(settings)
    # Nothing to read or resolve in a database that is not there: never create one.
    db.require_database(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
    engine = warehouse_engine(settings)
    try:
        exceptions_store.require_table(engine, tables)
        yield engine, tables
    finally:
        engine.dispose()


def as_of_arg(value: str) -> datetime:
    """argparse ``type=`` for ``--as-of``: errors become one clear line."""
    try:
        return parse_timestamp(value)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_order_fix_arguments(p: argparse.ArgumentParser, verb: str, force_help: str) -> None:
    """``--order-id`` (repeated), ``--by``, ``--apply``, ``--force``: what every order fix takes
    (``backfill``, ``repair-reactivated``), worded alike so one runbook line fits both."""
    p.add_argument(
        "--order-id", dest="order_ids", type=int, action="append", required=True, metavar="N",
        help=f"order to {verb} (repeat for several; each gets its own transaction)",
    )  # fmt: skip
    p.add_argument("--by", required=True, metavar="NAME", help=f"who {verb}s (resolved_by)")
    p.add_argument("--apply", action="store_true", help="run the statements (default: only print them)")
    p.add_argument("--force", action="store_true", help=force_help)
