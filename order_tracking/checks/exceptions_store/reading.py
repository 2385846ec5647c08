"""Reading the exceptions table: open counts per type, the gate, detail rows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from order_tracking.checks.exceptions_store import follow_up_columns
from order_tracking.checks.exceptions_store.common import UnresolvedExceptionsError, check_exception_type
from order_tracking.clock import utc_now
from order_tracking.schema import Tables

log = logging.getLogger(__name__)

# --- reading --------------------------------------------------------------------------------


def unresolved_summary(engine: Engine, tables: Tables) -> dict[str, int]:
    """Unresolved rows by type, most first (the spec's first manual query)."""
    ex = tables.exceptions
    cnt = sa.func.count().label("cnt")
    query = (
        sa.select(ex.c.exception_type, cnt)
        .where(ex.c.resolved_at.is_(None))
        .group_by(ex.c.exception_type)
        .order_by(cnt.desc(), ex.c.exception_type)
    )
    with engine.connect() as conn:
        return {t: int(n) for t, n in conn.execute(query)}


def check_unresolved(engine: Engine, tables: Tables) -> dict[str, int]:
    """Log the unresolved summary; raise :class:`UnresolvedExceptionsError` if any remain."""
    summary = unresolved_summary(engine, tables)
    total = sum(summary.values())
    if total:
        err = UnresolvedExceptionsError(summary)
        log.warning("%s", err)
        raise err
    log.info("no unresolved exceptions")
    return summary


@dataclass(frozen=True)
class TypeSummary:
    exception_type: str
    count: int  # open rows
    oldest_detected_at: datetime
    newest_last_seen_at: datetime
    resolved: int = 0  # resolved rows (counted only with include_resolved)


def summary_by_type(engine: Engine, tables: Tables, include_resolved: bool = False) -> list[TypeSummary]:
    """Open count, oldest ``detected_at`` and newest ``last_seen_at`` per type (open rows by
    default; ``include_resolved`` also counts the resolved rows, apart, and dates span both)."""
    ex = tables.exceptions
    total = sa.func.count().label("total")
    open_rows = sa.func.sum(sa.case((ex.c.resolved_at.is_(None), 1), else_=0))
    query = (
        sa.select(
            ex.c.exception_type,
            total,
            open_rows,
            sa.func.min(ex.c.detected_at),
            sa.func.max(ex.c.last_seen_at),
        )
        .group_by(ex.c.exception_type)
        .order_by(total.desc(), ex.c.exception_type)
    )
    if not include_resolved:
        query = query.where(ex.c.resolved_at.is_(None))
    with engine.connect() as conn:
        return [
            TypeSummary(t, int(n_open or 0), lo, hi, int(n) - int(n_open or 0))
            for t, n, n_open, lo, hi in conn.execute(query)
        ]


@dataclass(frozen=True)
class ExceptionRow:
    order_id: int
    exception_type: str
    detected_at: datetime
    last_seen_at: datetime
    age: timedelta  # now - detected_at: how long the problem has been known
    notes: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_notes: str | None
    # Issue 23 (None also when the table lacks the columns: init-db adds them).
    source_verdict: str | None = None
    source_detail: str | None = None
    now_passing: str | None = None  # the first run in which the open order passed again

    @staticmethod
    def passing_text(run: str | None, since: datetime | None) -> str | None:
        if since is None:
            return None
        return f"since {run or '?'} (as_of {since.isoformat(sep=' ')})"


def list_exceptions(
    engine: Engine,
    tables: Tables,
    type: str | None = None,  # the name mirrors the CLI's --type
    order_ids: Sequence[int] | None = None,
    include_resolved: bool = False,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[ExceptionRow]:
    """Exception rows, newest detection first; open rows only unless ``include_resolved``."""
    if type is not None:
        check_exception_type(type)
    ex = tables.exceptions
    query = sa.select(
        ex.c.order_id,
        ex.c.exception_type,
        ex.c.detected_at,
        ex.c.last_seen_at,
        ex.c.notes,
        ex.c.resolved_at,
        ex.c.resolved_by,
        ex.c.resolution_notes,
    ).order_by(ex.c.detected_at.desc(), ex.c.order_id, ex.c.exception_type)
    if type is not None:
        query = query.where(ex.c.exception_type == type)
    if order_ids:
        query = query.where(ex.c.order_id.in_(list(order_ids)))
    if not include_resolved:
        query = query.where(ex.c.resolved_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    now = now or utc_now()
    with engine.connect() as conn:
        extra = not follow_up_columns.missing(conn, tables)  # an older table: read without them
        if extra:
            query = query.add_columns(*(ex.c[c] for c in follow_up_columns.FOLLOW_UP_COLUMNS))
        return [
            ExceptionRow(r.order_id, r.exception_type, r.detected_at, r.last_seen_at, now - r.detected_at,
                         r.notes, r.resolved_at, r.resolved_by, r.resolution_notes,
                         *((r.source_verdict, r.source_detail,
                            ExceptionRow.passing_text(r.passing_run, r.passing_since)) if extra else ()))
            for r in conn.execute(query)
        ]  # fmt: skip


def now_passing_summary(engine: Engine, tables: Tables) -> dict[str, int] | None:
    """Open exceptions whose order passes its rule again, per type (None: the table has no
    ``passing_since`` column yet, so the count is unknown)."""
    ex = tables.exceptions
    with engine.connect() as conn:
        if follow_up_columns.missing(conn, tables):
            return None
        query = (
            sa.select(ex.c.exception_type, sa.func.count())
            .where(ex.c.resolved_at.is_(None), ex.c.passing_since.is_not(None))
            .group_by(ex.c.exception_type)
        )
        return {t: int(n) for t, n in conn.execute(query)}
