"""Each Test 1 / Test 2 finding checked against the MySQL source: the spec's Action, automated.

The spec's Action for Test 2 is "verify in MySQL source (kuaisong.uni_tracking_spath)", for
Test 1 "check if a backfill is needed". :func:`look_up` answers both for a batch of flagged
orders with one word each (``VERDICTS``, part of the contract: docs/rules.md) and its figures:

- ORDER_MISSING_SPATH: ``in_source`` (the source has spath rows: the pipeline lost them) or
  ``missing_in_source`` (the source has none either: an upstream gap);
- UTI_UTS_TIME_MISMATCH: ``in_source`` (in the source ``update_time`` = MAX(``pathTime``): the
  warehouse is stale), ``mismatch_in_source`` (the source has the same mismatch, or no spath row
  to match) or ``missing_in_source`` (the order is not in the source's ``uni_tracking_info``);
- both: ``unknown`` with the reason (source unreachable, timed out, over the limit).

Look-ups are batched (``BATCH_SIZE`` ids per ``IN`` list, one query per source table per batch),
run through the engine the caller made from the source URL (so its connect/read timeouts bound a
source that hangs) and stop at ``settings.source_check_limit`` orders. A source problem never
raises: the orders not yet answered get ``unknown`` and the reason, and the caller's run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking import db, schema
from order_tracking.schema import Tables
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH, Settings

log = logging.getLogger(__name__)

IN_SOURCE = "in_source"
MISSING_IN_SOURCE = "missing_in_source"
MISMATCH_IN_SOURCE = "mismatch_in_source"
UNKNOWN = "unknown"
VERDICTS = (IN_SOURCE, MISSING_IN_SOURCE, MISMATCH_IN_SOURCE, UNKNOWN)
VERIFIED_TYPES = (ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH)  # Test 3 has no source side

BATCH_SIZE = 1000  # ids per IN list: far under every server's statement and parameter limits
DETAIL_MAX = 1024  # the width of the exceptions table's source_detail column (bytes on Redshift)


@dataclass(frozen=True)
class WarehouseFigures:
    """What the warehouse holds for one order, to show beside the source's figures."""

    spath_rows: int
    # Text, both: the mart may hold 'infinity', a year past 9999 or a DATE (rules.py, issue 28),
    # which the driver cannot turn into a datetime; an open order is read whatever its time.
    update_time: str | None
    max_pathtime: str | None


@dataclass(frozen=True)
class SourceVerdict:
    """One flagged order as the source sees it (the figures are None when not read)."""

    order_id: int
    exception_type: str  # ORDER_MISSING_SPATH | UTI_UTS_TIME_MISMATCH
    verdict: str  # one of VERDICTS
    source_rows: int | None  # uni_tracking_spath rows of the order in the source
    source_update_time: datetime | None
    source_max_pathtime: datetime | None
    reason: str | None = None  # for unknown: unreachable / timed out / over the limit ...
    in_source_uti: bool | None = None  # the order has a uni_tracking_info row in the source

    def detail(self, warehouse: WarehouseFigures | None = None) -> str:
        """The figures in one line, source first, the warehouse's beside them (if given)."""
        if self.verdict == UNKNOWN:
            text = f"unknown: {self.reason or 'not looked up'}"
        else:
            uti = "" if self.in_source_uti is not False else " (no uni_tracking_info row)"
            text = (
                f"source: {self.source_rows} spath rows, update_time={_ts(self.source_update_time)}"
                f", max_pathtime={_ts(self.source_max_pathtime)}{uti}"
            )
        if warehouse is not None:
            w = warehouse
            text += (
                f"; warehouse: {w.spath_rows} spath rows, update_time={w.update_time or 'NULL'}"
                f", max_pathtime={w.max_pathtime or 'NULL'}"
            )
        return cut_bytes(text, DETAIL_MAX)


def _ts(value: object) -> str:
    """A time as the figures show it; a DATE-typed column (issue 28) or other value as text."""
    if value is None:
        return "NULL"
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def cut_bytes(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes (Redshift's VARCHAR counts bytes)."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[: limit - 3].decode("utf-8", "ignore") + "..."


def unknown(order_id: int, exception_type: str, reason: str) -> SourceVerdict:
    return SourceVerdict(order_id, exception_type, UNKNOWN, None, None, None, reason)


def over_limit(order_id: int, exception_type: str, limit: int) -> SourceVerdict:
    reason = f"over the limit: ORDER_TRACKING_SOURCE_CHECK_LIMIT={limit} orders per type and run"
    return unknown(order_id, exception_type, reason)


def decide(
    order_id: int,
    exception_type: str,
    uti: tuple[datetime | None] | None,
    spath: tuple[int, datetime | None] | None,
) -> SourceVerdict:
    """The verdict from the source's ``uni_tracking_info`` row (``(update_time,)`` or None when
    absent) and spath aggregate (``(rows, max_pathtime)`` or None when it has no row)."""
    rows, max_path = spath if spath is not None else (0, None)
    update_time = uti[0] if uti is not None else None
    if exception_type == ORDER_MISSING_SPATH:
        verdict = IN_SOURCE if rows else MISSING_IN_SOURCE
    elif exception_type == UTI_UTS_TIME_MISMATCH:
        if uti is None:
            verdict = MISSING_IN_SOURCE  # a backfill has no uni_tracking_info row to copy
        elif rows and update_time is not None and update_time == max_path:
            verdict = IN_SOURCE
        else:
            # Differs, NULL on one side, or no spath row to match: copying it would copy the
            # same finding into the warehouse.
            verdict = MISMATCH_IN_SOURCE
    else:
        raise ValueError(f"{exception_type} has no source verdict (only {', '.join(VERIFIED_TYPES)})")
    return SourceVerdict(
        order_id, exception_type, verdict, rows, update_time, max_path, None, uti is not None
    )


def source_queries(tables: Tables, order_ids: Sequence[int]) -> tuple[sa.Select, sa.Select]:
    """The two statements of one batch: the orders' ``uni_tracking_info`` rows, and their
    ``uni_tracking_spath`` row counts and MAX(``pathTime``)."""
    uti, uts = tables.src_uti, tables.src_uts
    ids = list(order_ids)
    info = sa.select(uti.c.order_id, uti.c.update_time).where(uti.c.order_id.in_(ids))
    spath = (
        sa.select(uts.c.order_id, sa.func.count().label("n"), sa.func.max(uts.c.pathTime).label("max_path"))
        .where(uts.c.order_id.in_(ids))
        .group_by(uts.c.order_id)
    )
    return info, spath


def batches(ids: Sequence[int], size: int = BATCH_SIZE) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def problem_reason(exc: BaseException) -> str:
    """``unreachable`` / ``timed out`` and the driver's first line, for an ``unknown`` verdict."""
    text = db.short_reason(exc)
    lowered = text.lower()
    timed_out = "timed out" in lowered or "timeout" in lowered or isinstance(exc, TimeoutError)
    orig = getattr(exc, "orig", None)
    if orig is not None and "timed out" in str(getattr(orig, "args", "")).lower():
        timed_out = True
    return f"source {'timed out' if timed_out else 'unreachable'}: {text}"


def look_up(
    source_engine: Engine, settings: Settings, exception_type: str, order_ids: Sequence[int]
) -> dict[int, SourceVerdict]:
    """A verdict for every one of ``order_ids`` (looked up in the given order, duplicates once).

    The first ``settings.source_check_limit`` orders are looked up; the rest are ``unknown``
    "over the limit". The first source error ends the look-ups: that batch and every later
    one are ``unknown`` with the error's reason (a hanging source is not waited out per batch).
    """
    if exception_type not in VERIFIED_TYPES:
        raise ValueError(f"{exception_type} has no source verdict (only {', '.join(VERIFIED_TYPES)})")
    ids = list(dict.fromkeys(int(i) for i in order_ids))
    limit = settings.source_check_limit
    checked, over = ids[:limit], ids[limit:]
    out: dict[int, SourceVerdict] = {}
    for order_id in over:
        out[order_id] = over_limit(order_id, exception_type, limit)
    if not checked:
        return out
    tables = schema.build_tables(settings)
    pending = list(checked)
    try:
        with source_engine.connect() as conn:
            while pending:
                batch, pending = pending[:BATCH_SIZE], pending[BATCH_SIZE:]
                out.update(_look_up_batch(conn, tables, exception_type, batch))
    except Exception as exc:  # any source problem: never a lost finding, never a failed run
        reason = problem_reason(exc)
        log.warning("%s source verdicts unknown for %d orders: %s", exception_type, len(checked), reason)
        for order_id in checked:
            if order_id not in out:
                out[order_id] = unknown(order_id, exception_type, reason)
    return out


def _look_up_batch(
    conn: Connection, tables: Tables, exception_type: str, batch: list[int]
) -> dict[int, SourceVerdict]:
    info, spath = source_queries(tables, batch)
    uti = {int(r.order_id): (r.update_time,) for r in conn.execute(info)}
    uts = {int(r.order_id): (int(r.n), r.max_path) for r in conn.execute(spath)}
    return {i: decide(i, exception_type, uti.get(i), uts.get(i)) for i in batch}


def warehouse_figures(
    conn: Connection, tables: Tables, order_ids: Sequence[int]
) -> dict[int, WarehouseFigures]:
    """The mart's figures for ``order_ids`` (batched like the source), for :meth:`SourceVerdict.detail`."""
    uti, uts = tables.mart_uti, tables.mart_uts
    out: dict[int, WarehouseFigures] = {}
    for batch in batches(list(dict.fromkeys(order_ids))):
        times = {
            int(r[0]): r[1]
            for r in conn.execute(
                sa.select(uti.c.order_id, sa.cast(sa.func.max(uti.c.update_time), sa.String(64)))
                .where(uti.c.order_id.in_(batch))
                .group_by(uti.c.order_id)
            )
        }
        paths = {
            int(r[0]): (int(r[1]), r[2])
            for r in conn.execute(
                sa.select(
                    uts.c.order_id,
                    sa.func.count(),
                    sa.cast(sa.func.max(uts.c.pathtime), sa.String(64)),  # text, as in rules.py
                )
                .where(uts.c.order_id.in_(batch))
                .group_by(uts.c.order_id)
            )
        }
        for order_id in batch:
            rows, max_path = paths.get(order_id, (0, None))
            out[order_id] = WarehouseFigures(rows, times.get(order_id), max_path)
    return out
