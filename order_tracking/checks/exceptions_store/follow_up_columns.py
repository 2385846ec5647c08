"""The exceptions table's issue-23 columns: added by ``init-db``, tolerated when absent.

``source_verdict``, ``source_detail`` (Tests 1-2: the finding as the MySQL source sees it) and
``passing_since``, ``passing_run`` (an open exception whose order passes its rule again: the
``as_of`` and name of the first run in which it did). All four are nullable and come last, so the
spec's manual queries (which name their columns) read the table as before.

A table created before them lacks them until ``init-db`` runs again: ``ALTER TABLE ... ADD
COLUMN``, one column a statement (Redshift adds one at a time), nothing else is altered. Until
then a run still verifies and re-checks, reports what it found in the email and the run's
output, and writes no verdict: :func:`missing` says so and the run logs a warning naming init-db.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking import db, schema
from order_tracking.schema import Tables

log = logging.getLogger(__name__)

FOLLOW_UP_COLUMNS = ("source_verdict", "source_detail", "passing_since", "passing_run")
INIT_DB_HINT = "run `python -m order_tracking init-db` to add them"


def missing(conn: Connection, tables: Tables) -> list[str]:
    """The follow-up columns the warehouse's exceptions table lacks (empty: all there)."""
    ex = tables.exceptions
    have = {name.lower() for name, _type in schema.table_columns(conn, ex.schema, ex.name)}
    return [c for c in FOLLOW_UP_COLUMNS if c not in have]


def add_statements(dialect: sa.engine.Dialect, tables: Tables, names: list[str]) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for each of ``names``, compiled for ``dialect``."""
    ex = tables.exceptions
    table = dialect.identifier_preparer.format_table(ex)
    quote = dialect.identifier_preparer.quote
    return [
        f"ALTER TABLE {table} ADD COLUMN {quote(n)} {ex.c[n].type.compile(dialect=dialect)}" for n in names
    ]


def add_missing(engine: Engine, tables: Tables) -> list[str]:
    """Add the missing follow-up columns to an existing exceptions table; return their names.

    Each ALTER runs on its own, outside any transaction block (an AUTOCOMMIT engine): DDL that
    Redshift refuses inside one stays possible, and a column added is kept whatever comes next.
    """
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(tables.exceptions.name, schema=tables.exceptions.schema):
            return []
        names = missing(conn, tables)
    if not names:
        return []
    auto = db.autocommit_engine(engine)
    try:
        with auto.connect() as conn:
            for statement in add_statements(conn.dialect, tables, names):
                conn.execute(sa.text(statement))
    finally:
        auto.dispose()
    log.info("added %s to %s.%s", ", ".join(names), tables.exceptions.schema, tables.exceptions.name)
    return names
