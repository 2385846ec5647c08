"""Test 0's SQL: row counts per table and per 15-minute cycle, and the keys of lost rows.

Built with SQLAlchemy Core like the rules of Tests 1-3 (``rules.py``), compiled per dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from order_tracking.checks.rules import Window
from order_tracking.schema import Tables

# --- Test 0: extraction counts ---------------------------------------------------------------

EXTRACTION_TABLES = ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")


@dataclass(frozen=True)
class ExtractionTable:
    """One Test 0 table pair and the key that identifies a row on both sides.

    - ``ecs_order_info``: ``order_id`` (one row per order in the source);
    - ``uni_tracking_info``: ``(order_id, update_time)``: the source keeps the latest version of
      an order, raw keeps one row per cycle that saw it, so the source version must be in raw;
    - ``uni_tracking_spath``: the source ``id`` (copied into raw), reported with order_id and
      pathTime.
    """

    name: str
    source: sa.Table
    raw: sa.Table
    source_time: str
    raw_time: str
    key: str  # the reported key column ("order_id" or "id")

    def match_columns(self, side: str) -> tuple[str, ...]:
        """Columns whose values identify the same row in source and raw."""
        if self.name == "uni_tracking_info":
            return ("order_id", self.source_time if side == "source" else self.raw_time)
        return (self.key,)


def extraction_tables(tables: Tables) -> tuple[ExtractionTable, ...]:
    return (
        ExtractionTable("ecs_order_info", tables.src_ecs, tables.raw_ecs, "add_time", "add_time", "order_id"),
        ExtractionTable(
            "uni_tracking_info", tables.src_uti, tables.raw_uti, "update_time", "update_time", "order_id"
        ),
        ExtractionTable("uni_tracking_spath", tables.src_uts, tables.raw_uts, "pathTime", "pathtime", "id"),
    )


def _count_in(table: sa.Table, time_col: str, window: Window) -> sa.Select:
    col = table.c[time_col]
    return sa.select(sa.func.count()).select_from(table).where(col >= window.start, col < window.end)


def source_counts(tables: Tables, window: Window) -> sa.Select:
    """``(table_name, row_count)`` per source table in the closed window (run on MySQL)."""
    parts = [
        sa.select(
            sa.literal(name).label("table_name"),
            _count_in(t, col, window).scalar_subquery().label("row_count"),
        )
        for name, t, col in ((e.name, e.source, e.source_time) for e in extraction_tables(tables))
    ]
    return sa.union_all(*parts)


def extraction_counts(tables: Tables, window: Window, source: dict[str, int]) -> sa.Select:
    """``(table_name, source_count, raw_count, missing_rows)`` for every Test 0 table."""
    missing = [name for name in EXTRACTION_TABLES if name not in source]
    if missing:
        raise ValueError(f"source counts lack {', '.join(missing)}")
    parts = [
        sa.select(
            sa.literal(name).label("table_name"),
            sa.literal(int(source[name]), sa.BigInteger).label("source_count"),
            _count_in(t, col, window).scalar_subquery().label("raw_count"),
        )
        for name, t, col in ((e.name, e.raw, e.raw_time) for e in extraction_tables(tables))
    ]
    counts = sa.union_all(*parts).subquery("counts")
    return sa.select(
        counts.c.table_name,
        counts.c.source_count,
        counts.c.raw_count,
        (counts.c.source_count - counts.c.raw_count).label("missing_rows"),
    )


def extraction_shortfall(tables: Tables, window: Window, source: dict[str, int]) -> sa.Select:
    """Raw tables that hold fewer rows than the source for the window (the Test 0 alarm).

    ``uni_tracking_info_raw`` may hold MORE rows than the source (an order seen in several
    15-minute cycles): only a shortfall is an alarm.
    """
    counts = extraction_counts(tables, window, source).subquery("all_counts")
    return sa.select(*counts.c).where(counts.c.raw_count < counts.c.source_count)


def measure_source_counts(conn: Connection, tables: Tables, window: Window) -> dict[str, int]:
    return {row.table_name: int(row.row_count) for row in conn.execute(source_counts(tables, window))}


# --- Test 0: which cycle lost which rows -------------------------------------------------------


class cycle_index(FunctionElement):
    """``floor((t - origin) / cycle_secs)``: the 15-minute extraction cycle of ``t`` from ``origin``.

    Whole seconds, truncated (a row at 01:14:59.7 belongs to the cycle that starts at 01:00), in
    each dialect's own words; ``t >= origin`` always (origin is the window start, floored).
    """

    type = sa.Integer()
    inherit_cache = True


def _cycle_parts(element, compiler, **kw) -> tuple[str, str, int]:
    t, origin, secs = list(element.clauses)
    return compiler.process(t, **kw), compiler.process(origin, **kw), int(secs.value)


@compiles(cycle_index)
def _cycle_index_default(element, compiler, **kw):
    t, origin, secs = _cycle_parts(element, compiler, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM ({t} - {origin})) / {secs}) AS INTEGER)"


@compiles(cycle_index, "redshift")
def _cycle_index_redshift(element, compiler, **kw):
    t, origin, secs = _cycle_parts(element, compiler, **kw)
    return f"DATEDIFF(second, {origin}, {t}) / {secs}"  # integer division truncates


@compiles(cycle_index, "mysql")
@compiles(cycle_index, "mariadb")
def _cycle_index_mysql(element, compiler, **kw):
    t, origin, secs = _cycle_parts(element, compiler, **kw)
    return f"TIMESTAMPDIFF(SECOND, {origin}, {t}) DIV {secs}"


@compiles(cycle_index, "sqlite")
def _cycle_index_sqlite(element, compiler, **kw):
    t, origin, secs = _cycle_parts(element, compiler, **kw)
    # strftime('%s') is whole epoch seconds (truncated); julianday arithmetic would round.
    return f"(CAST(strftime('%s', {t}) AS INTEGER) - CAST(strftime('%s', {origin}) AS INTEGER)) / {secs}"


def cycle_origin(window: Window, cycle_secs: int) -> datetime:
    """The start of the clock-aligned cycle holding ``window.start`` (cycles run at :00, :15 ...)."""
    midnight = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
    into_day = int((window.start - midnight).total_seconds())
    return midnight + timedelta(seconds=into_day - into_day % cycle_secs)


def cycle_counts(table: sa.Table, time_col: str, window: Window, cycle_secs: int) -> sa.Select:
    """``(cycle, row_count)`` per extraction cycle in the window: one GROUP BY, ≤ 9 rows for 2h."""
    col = table.c[time_col]
    origin = sa.literal(cycle_origin(window, cycle_secs), sa.DateTime)
    per_row = (
        sa.select(cycle_index(col, origin, sa.literal(cycle_secs, sa.Integer)).label("cycle"))
        .where(col >= window.start, col < window.end)
        .subquery("per_row")
    )
    # Grouped by the subquery's column: no dialect has to match a repeated expression.
    return (
        sa.select(per_row.c.cycle, sa.func.count().label("row_count"))
        .group_by(per_row.c.cycle)
        .order_by(per_row.c.cycle)
    )


def extraction_keys(
    spec: ExtractionTable, side: str, ranges: Sequence[tuple[datetime, datetime]]
) -> sa.Select:
    """The rows of the given ``[start, end)`` time ranges (the short cycles) on one side.

    Source rows carry ``key``, ``order_id`` and the time for the report; raw rows only what
    identifies them (``ExtractionTable.match_columns``).
    """
    table = spec.source if side == "source" else spec.raw
    time = table.c[spec.source_time if side == "source" else spec.raw_time]
    wanted = [spec.key, "order_id"] if side == "source" else []
    columns = list(dict.fromkeys([*wanted, *spec.match_columns(side)]))
    select = sa.select(*(table.c[c] for c in columns))
    if side == "source":
        select = select.add_columns(time.label("row_time"))
    return select.where(sa.or_(*(sa.and_(time >= start, time < end) for start, end in ranges)))
