"""Test 0's evidence: which 15-minute extraction cycle lost which rows.

When a raw table holds fewer rows than its MySQL source in the closed window, the counts alone
("source=15 raw=13") leave the engineer to search by hand. This compares the two sides in three
steps whose cost follows the 2-hour window, never the size of the tables:

1. per short table, rows per extraction cycle on each side (one ``GROUP BY`` each, at most 9
   rows for 2 hours);
2. the cycles where raw < source ("short cycles") are the only ones whose keys are fetched;
3. the source keys with no raw copy in those cycles are the missing rows.

The result goes into the validation result ``details`` (TEAM.md contract): ``cycles`` (every
cycle of every short table: table, cycle_start, source_count, raw_count), ``missing_rows``
(``{table, key, order_id, time}``, up to ``LOST_ROWS_LIMIT``, oldest first) and
``missing_total``. The key per table is described in ``rules.ExtractionTable``. Rows missing
from a cycle that is not short (raw holds extra rows there, normal for uti) are not searched.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from order_tracking.checks import extraction_sql, rules
from order_tracking.schema import Tables
from order_tracking.settings import EXTRACTION_CYCLE_SECS, LOST_ROWS_LIMIT


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)  # a DATE column's date ('2026-11-25'), or text the driver left as it was


def _per_cycle(
    conn: Connection, table, time_col: str, window: rules.Window, cycle_secs: int
) -> dict[int, int]:
    select = extraction_sql.cycle_counts(table, time_col, window, cycle_secs)
    return {int(row.cycle): int(row.row_count) for row in conn.execute(select)}


def report(
    source: Connection,
    warehouse: Connection,
    tables: Tables,
    window: rules.Window,
    short_tables: Iterable[str],
    limit: int = LOST_ROWS_LIMIT,
    cycle_secs: int = EXTRACTION_CYCLE_SECS,
) -> dict:
    """``{"cycles": [...], "missing_rows": [...], "missing_total": n}`` for the short tables."""
    wanted = set(short_tables)
    origin = extraction_sql.cycle_origin(window, cycle_secs)
    step = timedelta(seconds=cycle_secs)
    last = int((window.end - origin - timedelta(microseconds=1)) / step)
    cycles: list[dict] = []
    missing: list[dict] = []
    for spec in extraction_sql.extraction_tables(tables):
        if spec.name not in wanted:
            continue
        src = _per_cycle(source, spec.source, spec.source_time, window, cycle_secs)
        raw = _per_cycle(warehouse, spec.raw, spec.raw_time, window, cycle_secs)
        short_ranges = []
        # Every cycle of the window, empty ones too: the short cycle stands out in a full row.
        for index in range(last + 1):
            start = origin + index * step
            cycles.append(
                {
                    "table": spec.name,
                    "cycle_start": _iso(start),
                    "source_count": src.get(index, 0),
                    "raw_count": raw.get(index, 0),
                }
            )
            if raw.get(index, 0) < src.get(index, 0):
                # Clipped to the window: the first and last cycles are partly outside it.
                short_ranges.append((max(start, window.start), min(start + step, window.end)))
        if short_ranges:
            missing.extend(_missing_keys(source, warehouse, spec, short_ranges))
    # A NULL key sorts after every number (None and int do not compare).
    missing.sort(key=lambda r: (r["time"] or "", r["table"], r["key"] is None, r["key"] or 0))
    return {"cycles": cycles, "missing_rows": missing[:limit], "missing_total": len(missing)}


def raw_retention(
    source: Connection, warehouse: Connection, tables: Tables, window: rules.Window
) -> str | None:
    """Why the window cannot be checked when raw retention explains a shortfall, else ``None``.

    The raw tables keep recent rows only; the source keeps everything. Re-checking a night older
    than the raw side's oldest row found raw short of the source and listed every source row as
    "lost". Retention is read from the data: the raw side holds nothing before some point inside
    the window (or before its end), and the source holds rows from before that point, which the
    raw side would show if it kept them. The oldest row of all three raw tables is the bound (a
    sparse table, few new orders in ecs, may have its own oldest row late by chance); empty raw
    tables or a source with nothing older (a first night, a small test) are read as a real
    shortfall. One ``MIN`` per raw table and at most one row per source table, run only when
    Test 0 is short.
    """
    oldest = []
    for spec in extraction_sql.extraction_tables(tables):
        first = warehouse.execute(sa.select(sa.func.min(spec.raw.c[spec.raw_time]))).scalar()
        if isinstance(first, date) and not isinstance(first, datetime):  # a DATE-typed column
            first = datetime.combine(first, datetime.min.time())
        if isinstance(first, datetime):
            oldest.append(first)
    if not oldest or min(oldest) <= window.start:
        return None
    since = min(oldest)
    older = (
        sa.select(sa.literal(1))
        .select_from(spec.source)
        .where(spec.source.c[spec.source_time] < since)
        .limit(1)
        for spec in extraction_sql.extraction_tables(tables)
    )
    if not any(source.execute(select).first() for select in older):
        return None
    return (
        f"raw retention: the raw tables keep rows since {_iso(since)}; this window "
        f"[{_iso(window.start)}, {_iso(window.end)}) cannot be checked"
    )


def _missing_keys(
    source: Connection,
    warehouse: Connection,
    spec: extraction_sql.ExtractionTable,
    ranges: list[tuple[datetime, datetime]],
) -> list[dict]:
    """Source rows of the short cycles with no raw row of the same key."""
    raw_cols = spec.match_columns("raw")
    in_raw = {
        tuple(row._mapping[c] for c in raw_cols)
        for row in warehouse.execute(extraction_sql.extraction_keys(spec, "raw", ranges))
    }
    src_cols = spec.match_columns("source")
    out = []
    for row in source.execute(extraction_sql.extraction_keys(spec, "source", ranges)):
        m = row._mapping
        if tuple(m[c] for c in src_cols) in in_raw:
            continue
        # A source row with a NULL key or order_id is missing like any other: it is listed (as
        # null, shown "NULL"), never a TypeError that loses the whole report (issue 28).
        out.append(
            {
                "table": spec.name,
                "key": _int_or_none(m[spec.key]),
                "order_id": _int_or_none(m["order_id"]),
                "time": _iso(m["row_time"]) if m["row_time"] is not None else None,
            }
        )
    return out


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _shown(value: Any) -> str:
    return "NULL" if value is None else str(value)


def summary_lines(details: dict, keys: int = 5) -> list[str]:
    """Plain lines for a terminal: the short cycles, then a few missing keys with the total."""
    lines = [
        f"  short cycle {c['table']} {c['cycle_start']}: source={c['source_count']} raw={c['raw_count']}"
        for c in details.get("cycles") or []
        if c["raw_count"] < c["source_count"]
    ]
    missing = details.get("missing_rows") or []
    if missing:
        shown = ", ".join(
            f"{m['table']} key={_shown(m['key'])} order_id={_shown(m['order_id'])} at {_shown(m['time'])}"
            for m in missing[:keys]
        )
        total = details.get("missing_total", len(missing))
        lines.append(f"  missing rows ({total}): {shown}" + (" ..." if total > keys else ""))
    if details.get("lost_rows_error"):
        lines.append(f"  {details['lost_rows_error']}")
    return lines
