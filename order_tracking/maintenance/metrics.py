"""Table health figures before and after a maintenance step, per warehouse dialect.

- Redshift: ``svv_table_info`` (tbl_rows, estimated_visible_rows, unsorted, stats_off, size in 1 MB
  blocks) and ``sys_vacuum_history`` (did a VACUUM actually happen for this table?).
- PostgreSQL: ``pg_stat_user_tables`` (n_live_tup, n_dead_tup, n_mod_since_analyze, last_vacuum,
  last_analyze) and ``pg_total_relation_size``. Dead tuples are PostgreSQL's ghost rows; rows
  changed since the last ANALYZE, as a % of the live rows, are its ``stats_off``.
- SQLite: page and freelist counts of the schema's file, and the file size.

Every read runs on its own short connection so that it never holds a snapshot that a VACUUM would
have to respect.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MB = 1024 * 1024

SVV_TABLE_INFO = sa.table(
    "svv_table_info",
    sa.column("schema"),
    sa.column("table"),
    sa.column("tbl_rows"),
    sa.column("estimated_visible_rows"),
    sa.column("unsorted"),
    sa.column("stats_off"),
    sa.column("size"),
)
SYS_VACUUM_HISTORY = sa.table(
    "sys_vacuum_history",
    sa.column("schema_name"),
    sa.column("table_name"),
    sa.column("vacuum_type"),
    sa.column("is_automatic"),
    sa.column("status"),
    sa.column("start_time"),
    sa.column("end_time"),
    sa.column("reclaimed_rows"),
)
# Superuser-only by default: a regular user reads no rows (then ANALYZE is judged by stats_off).
SYS_ANALYZE_HISTORY = sa.table(
    "sys_analyze_history",
    sa.column("schema_name"),
    sa.column("table_name"),
    sa.column("is_automatic"),
    sa.column("status"),
    sa.column("start_time"),
)
PG_STAT_USER_TABLES = sa.table(
    "pg_stat_user_tables",
    sa.column("relid"),
    sa.column("schemaname"),
    sa.column("relname"),
    sa.column("n_live_tup"),
    sa.column("n_dead_tup"),
    sa.column("n_mod_since_analyze"),
    sa.column("last_vacuum"),
    sa.column("last_autovacuum"),
    sa.column("last_analyze"),
    sa.column("last_autoanalyze"),
    schema="pg_catalog",
)


@dataclass
class Metrics:
    """What one table looks like at one moment; a figure the dialect does not have is None."""

    rows: int | None = None
    ghost_rows: int | None = None  # Redshift deleted-not-reclaimed rows / PostgreSQL dead tuples
    unsorted_pct: float | None = None
    stats_off: float | None = None
    size_bytes: int | None = None
    last_vacuum: datetime | None = None
    last_analyze: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_metrics(engine: Engine, schema: str, table: str) -> Metrics:
    """The current figures of ``schema.table`` for the engine's dialect."""
    name = engine.dialect.name
    if name == "redshift":
        return _redshift_metrics(engine, schema, table)
    if name == "postgresql":
        return _postgres_metrics(engine, schema, table)
    if name == "sqlite":
        return _sqlite_metrics(engine, schema, table)
    return Metrics()


def _redshift_metrics(engine: Engine, schema: str, table: str) -> Metrics:
    t = SVV_TABLE_INFO
    query = sa.select(t.c.tbl_rows, t.c.estimated_visible_rows, t.c.unsorted, t.c.stats_off, t.c.size).where(
        t.c.schema == schema, t.c.table == table
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        # svv_table_info lists only tables that hold data AND that the user may see: the effect
        # check (maintenance._check_effect) tells the two apart with the user's privileges.
        return Metrics(detail={"in_svv_table_info": False})
    total, visible = _int(row.tbl_rows), _int(row.estimated_visible_rows)
    ghost = total - visible if total is not None and visible is not None else None
    size = _int(row.size)
    return Metrics(
        rows=visible if visible is not None else total,
        ghost_rows=ghost,
        unsorted_pct=_float(row.unsorted),
        stats_off=_float(row.stats_off),
        size_bytes=size * MB if size is not None else None,
        detail={"tbl_rows": total},
    )


def vacuum_history(engine: Engine, schema: str, table: str, since: datetime) -> list[dict[str, Any]]:
    """Redshift ``sys_vacuum_history`` rows of manual VACUUMs of the table since ``since``.

    Automatic vacuums (``is_automatic``) are Redshift's own background work: they prove nothing
    about ours. No row is NOT proof of a no-op: VACUUM skips a table already past its threshold.
    """
    h = SYS_VACUUM_HISTORY
    query = (
        sa.select(h.c.vacuum_type, h.c.status, h.c.start_time, h.c.end_time, h.c.reclaimed_rows)
        .where(
            h.c.schema_name == schema,
            h.c.table_name == table,
            h.c.start_time >= since,
            h.c.is_automatic == sa.false(),
        )
        .order_by(h.c.start_time)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def analyze_history(engine: Engine, schema: str, table: str, since: datetime) -> list[dict[str, Any]]:
    """Redshift ``sys_analyze_history`` rows of explicit ANALYZEs of the table since ``since``
    (status Full, PredicateColumn or Skipped; ``is_automatic`` is char(1), 'f' for ours)."""
    h = SYS_ANALYZE_HISTORY
    query = (
        sa.select(h.c.status, h.c.start_time)
        .where(
            h.c.schema_name == schema,
            h.c.table_name == table,
            h.c.start_time >= since,
            h.c.is_automatic == "f",
        )
        .order_by(h.c.start_time)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _postgres_metrics(engine: Engine, schema: str, table: str) -> Metrics:
    s = PG_STAT_USER_TABLES
    query = sa.select(
        s.c.n_live_tup,
        s.c.n_dead_tup,
        s.c.n_mod_since_analyze,
        s.c.last_vacuum,
        s.c.last_autovacuum,
        s.c.last_analyze,
        s.c.last_autoanalyze,
        sa.func.pg_total_relation_size(s.c.relid).label("size"),
    ).where(s.c.schemaname == schema, s.c.relname == table)
    with engine.connect() as conn:
        # Statistics are cached per transaction; start from a fresh view of them.
        conn.execute(sa.select(sa.func.pg_stat_clear_snapshot()))
        row = conn.execute(query).first()
    if row is None:
        return Metrics(detail={"in_pg_stat_user_tables": False})
    live, changed = _int(row.n_live_tup), _int(row.n_mod_since_analyze)
    # Redshift's stats_off, PostgreSQL's way: rows changed since the last ANALYZE, % of the rows.
    stats_off = None if live is None or changed is None else min(100.0, 100.0 * changed / max(live, 1))
    return Metrics(
        rows=live,
        ghost_rows=_int(row.n_dead_tup),
        stats_off=stats_off,
        size_bytes=_int(row.size),
        last_vacuum=row.last_vacuum,
        last_analyze=row.last_analyze,
        detail={"last_autovacuum": row.last_autovacuum, "last_autoanalyze": row.last_autoanalyze},
    )


def wait_for_postgres(
    engine: Engine, schema: str, table: str, attribute: str, previous: datetime | None, timeout: float = 10.0
) -> tuple[Metrics, bool]:
    """Poll until ``last_vacuum``/``last_analyze`` moves past ``previous``; (metrics, moved).

    The statistics system may publish a finished VACUUM a moment later (before PostgreSQL 15 it
    went through the stats collector), so a bounded wait avoids reporting stale figures.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        metrics = _postgres_metrics(engine, schema, table)
        value = getattr(metrics, attribute)
        if value is not None and (previous is None or value > previous):
            return metrics, True
        if time.monotonic() >= deadline:
            return metrics, False
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _sqlite_metrics(engine: Engine, schema: str, table: str) -> Metrics:
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    counted = sa.select(sa.func.count()).select_from(sa.table(table, schema=schema))
    with engine.connect() as conn:
        rows = conn.execute(counted).scalar_one()
        # PRAGMAs have no Core form; the schema name is quoted by the dialect.
        pages = conn.exec_driver_sql(f"PRAGMA {quoted}.page_count").scalar_one()
        free = conn.exec_driver_sql(f"PRAGMA {quoted}.freelist_count").scalar_one()
        page_size = conn.exec_driver_sql(f"PRAGMA {quoted}.page_size").scalar_one()
        files = {r[1]: r[2] for r in conn.exec_driver_sql("PRAGMA database_list")}
    path = files.get(schema)
    size = os.path.getsize(path) if path and os.path.exists(path) else pages * page_size
    return Metrics(
        rows=int(rows),
        size_bytes=int(size),
        detail={"page_count": int(pages), "freelist_count": int(free), "page_size": int(page_size)},
    )
