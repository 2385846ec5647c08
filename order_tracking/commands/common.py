"""Helpers shared by subcommands: settings from flags, engines, timestamps."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from order_tracking import db, schema
from order_tracking.errors import UserError
from order_tracking.settings import Settings


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(warehouse_url=args.warehouse_url, source_url=args.source_url)


def warehouse_engine(settings: Settings, check: bool = True) -> Engine:
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
    if check:
        db.check_connection(engine, "warehouse")
    return engine


def source_engine(settings: Settings, check: bool = True) -> Engine:
    engine = db.create_engine(settings.source_url, [settings.source_schema], role="source")
    if check:
        db.check_connection(engine, "source")
    return engine


@contextmanager
def exceptions_warehouse(args: argparse.Namespace) -> Iterator[tuple[Engine, schema.Tables]]:
    """The warehouse engine and tables, after checking the exceptions table exists; disposed after."""
    from order_tracking import exceptions_store

    settings = settings_from(args)
    tables = schema.build_tables(settings)
    engine = warehouse_engine(settings)
    try:
        exceptions_store.require_table(engine, tables)
        yield engine, tables
    finally:
        engine.dispose()


def parse_timestamp(value: str, name: str = "--as-of") -> datetime:
    """ISO-8601 to naive UTC (an offset is converted, a naive value is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{name} {value!r} is not a timestamp; use ISO 8601, e.g. 2026-11-25T03:00:00"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def as_of_arg(value: str) -> datetime:
    """argparse ``type=`` for ``--as-of``: errors become one clear line."""
    try:
        return parse_timestamp(value)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
