"""After a check wrote its findings: re-check its open exceptions, verify them in the source.

Issue 23, run by the exceptions action of every Test 1-3 checkpoint (``monitor`` and the Airflow
DQ tasks alike), once the findings are written:

1. **Healed orders.** Every open exception of the check's type is re-checked by order id,
   whatever the order's ``update_time``, with the rule's own SQL (``rules.OrderIds`` scope, built
   once, run per batch of ``BATCH_SIZE`` ids). An order the mart still has and the rule no
   longer flags is ``now_passing``; ``passing_since``/``passing_run`` keep the first run that
   saw it pass (cleared when it fails again). It stays open (the spec's gate semantics) unless
   ``settings.auto_resolve``: then it is resolved by ``auto``, the notes naming run and as_of.
2. **Source verdicts** (Tests 1 and 2): the still-open exceptions, this run's findings first, are
   looked up in the MySQL source (``source_verdict.look_up``, at most the configured number);
   ``source_verdict``/``source_detail`` are refreshed on every run.

Reads and source look-ups run first, without any lock; the writes then run in ONE short
transaction that locks the exceptions table first (as the findings write does), each statement
keyed by ``resolved_at IS NULL`` so a row closed meanwhile (``resolve``, ``backfill``) is left
alone. A source problem gives ``unknown`` verdicts, never an error. A table without the new
columns (``init-db`` not re-run) gets no verdicts written: the run says so and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking import db
from order_tracking.checks import exceptions_store, rules, source_verdict
from order_tracking.checks.exceptions_store import follow_up_columns
from order_tracking.checks.rules import RuleQuery
from order_tracking.checks.source_verdict import SourceVerdict
from order_tracking.clock import utc_now
from order_tracking.schema import Tables
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 1000  # ids per IN list, as for the source look-ups
WRITE_BATCH = 500  # orders per verdict UPDATE (two CASEs of 500 branches: far under any limit)
IDS_KEPT = 1000  # order ids carried in the result (email, Data Docs); the counts are always whole
AUTO = "auto"

RuleFor = Callable[[Connection, rules.Scope], RuleQuery]


@dataclass
class FollowUp:
    """What the follow-up of one check found and did (``details["follow_up"]`` of its result)."""

    exception_type: str
    run: str
    as_of: datetime
    open: int = 0  # open exceptions of the type, re-checked (before any auto-resolve)
    now_passing: list[int] = field(default_factory=list)
    not_in_mart: int = 0  # open, but the order is gone from mart_uni_tracking_info: not "passing"
    auto_resolved: int = 0
    verdicts: dict[int, SourceVerdict] = field(default_factory=dict)
    stored: bool = True  # verdicts and passing runs written (False: the columns are missing)
    warning: str | None = None

    def verdict_counts(self) -> dict[str, int]:
        counts = {word: 0 for word in source_verdict.VERDICTS}
        for v in self.verdicts.values():
            counts[v.verdict] += 1
        return {k: n for k, n in counts.items() if n}

    def as_details(self) -> dict[str, Any]:
        """JSON for the validation result (stored with it, read by the email and Data Docs)."""
        in_source = sorted(i for i, v in self.verdicts.items() if v.verdict == source_verdict.IN_SOURCE)
        return {
            "exception_type": self.exception_type,
            "run": self.run,
            "as_of": self.as_of.isoformat(sep=" "),
            "open": self.open,
            "now_passing": len(self.now_passing),
            "now_passing_ids": self.now_passing[:IDS_KEPT],
            "not_in_mart": self.not_in_mart,
            "auto_resolved": self.auto_resolved,
            "verdicts": self.verdict_counts()
            if self.exception_type in source_verdict.VERIFIED_TYPES
            else None,
            "in_source_ids": in_source[:IDS_KEPT],
            "stored": self.stored,
            "warning": self.warning,
        }


def run_follow_up(
    engine: Engine,
    settings: Settings,
    tables: Tables,
    exception_type: str,
    rule_for: RuleFor,
    *,
    run: str,
    as_of: datetime,
) -> FollowUp:
    """Re-check the type's open exceptions, look them up in the source, write what was found."""
    result = FollowUp(exception_type, run, as_of)
    with engine.connect() as conn:
        missing = follow_up_columns.missing(conn, tables)
        open_ids, were_passing = _open_ids(conn, tables, exception_type, with_passing=not missing)
        result.open = len(open_ids)
        passing, absent = recheck(conn, tables, rule_for, open_ids)
    if missing:
        result.stored = False
        result.warning = (
            f"{tables.exceptions.schema}.{tables.exceptions.name} has no {', '.join(missing)} column: "
            f"source verdicts and passing runs are reported, not stored; {follow_up_columns.INIT_DB_HINT}"
        )
        log.warning("%s", result.warning)
    result.now_passing, result.not_in_mart = passing, len(absent)
    now, gone = set(passing), set(absent)
    still_open = [i for i in open_ids if not (settings.auto_resolve and i in now)]
    if exception_type in source_verdict.VERIFIED_TYPES and still_open:
        result.verdicts = verdicts_for(engine, settings, tables, exception_type, still_open)
    # Only what changed is written: newly passing, and passing before but failing again.
    newly = [i for i in passing if i not in were_passing]
    failing_again = sorted(i for i in were_passing if i not in now and i not in gone)
    result.auto_resolved = _write(engine, settings, tables, result, newly, failing_again, not missing)
    return result


def _open_ids(
    conn: Connection, tables: Tables, exception_type: str, *, with_passing: bool
) -> tuple[list[int], set[int]]:
    """Open exceptions' orders of one type, the most recently seen (this run's findings) first,
    and those already marked passing (``with_passing``: the table has the column)."""
    ex = tables.exceptions
    marked = ex.c.passing_since.is_not(None) if with_passing else sa.false()
    query = (
        sa.select(ex.c.order_id, sa.case((marked, 1), else_=0))
        .where(ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None))
        .order_by(ex.c.last_seen_at.desc(), ex.c.order_id)
    )
    rows = conn.execute(query).all()
    return list(dict.fromkeys(int(r[0]) for r in rows)), {int(r[0]) for r in rows if r[1]}


def recheck(
    conn: Connection, tables: Tables, rule_for: RuleFor, order_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """``(passing, absent)`` among ``order_ids``: orders the rule no longer flags, and orders no
    longer in ``mart_uni_tracking_info`` (neither passing nor failing: they stay as they are)."""
    if not order_ids:
        return [], []
    scope = rules.OrderIds()
    rule = rule_for(conn, scope)
    core = rule.core.subquery("failing")
    # Built and compiled once; each batch only binds its ids (an expanding IN).
    failing_sql = sa.select(core.c.order_id).where(core.c.order_id.is_not(None)).distinct()
    present_sql = rules.in_scope(tables, scope)
    failing: set[int] = set()
    present: set[int] = set()
    for batch in source_verdict.batches(list(order_ids), BATCH_SIZE):
        params = {scope.param: batch}
        failing.update(int(r[0]) for r in conn.execute(failing_sql, params))
        present.update(int(r[0]) for r in conn.execute(present_sql, params) if r[0] is not None)
    passing = [i for i in order_ids if i in present and i not in failing]
    absent = [i for i in order_ids if i not in present]
    return sorted(passing), sorted(absent)


def verdicts_for(
    engine: Engine, settings: Settings, tables: Tables, exception_type: str, order_ids: Sequence[int]
) -> dict[int, SourceVerdict]:
    """The source verdict of each order; any problem with the source URL itself is ``unknown`` too."""
    try:
        source = db.create_engine(
            settings.source_url, [settings.source_schema], role="source", timeouts=settings.timeouts
        )
    except Exception as exc:  # e.g. an unusable source URL: the findings stand, the verdict is unknown
        reason = f"source unusable: {exc}"
        return {i: source_verdict.unknown(i, exception_type, reason) for i in order_ids}
    try:
        return source_verdict.look_up(source, settings, exception_type, order_ids)
    finally:
        source.dispose()


def _write(
    engine: Engine,
    settings: Settings,
    tables: Tables,
    result: FollowUp,
    newly: list[int],
    failing: list[int],
    columns: bool,
) -> int:
    """One locked transaction: passing runs (``newly`` passing, ``failing`` again), auto-resolve,
    verdicts. Returns how many were resolved."""
    passing = result.now_passing
    if not (columns and (newly or failing or result.verdicts)) and not (settings.auto_resolve and passing):
        return 0
    ex = tables.exceptions
    base = [ex.c.exception_type == result.exception_type, ex.c.resolved_at.is_(None)]
    resolved = 0
    figures: dict[int, source_verdict.WarehouseFigures] = {}
    looked_up = [i for i, v in result.verdicts.items() if v.source_rows is not None]
    if columns and looked_up:
        with engine.connect() as conn:  # read outside the lock: the mart, not the exceptions table
            figures = source_verdict.warehouse_figures(conn, tables, looked_up)
    with exceptions_store.locked_transaction(engine, ex) as conn:
        for batch in source_verdict.batches(newly, BATCH_SIZE) if columns else ():
            first = {"passing_since": result.as_of, "passing_run": result.run[:128]}
            conn.execute(
                ex.update().where(*base, ex.c.order_id.in_(batch), ex.c.passing_since.is_(None)).values(first)
            )
        for batch in source_verdict.batches(failing, BATCH_SIZE) if columns else ():
            again = ex.update().where(*base, ex.c.order_id.in_(batch), ex.c.passing_since.is_not(None))
            conn.execute(again.values(passing_since=None, passing_run=None))
        if settings.auto_resolve:
            notes = _auto_notes(result)
            for batch in source_verdict.batches(passing, BATCH_SIZE):
                closing = ex.update().where(*base, ex.c.order_id.in_(batch))
                resolved += conn.execute(
                    closing.values(resolved_at=utc_now(), resolved_by=AUTO, resolution_notes=notes)
                ).rowcount
        if columns:
            _write_verdicts(conn, ex, base, result.verdicts, figures)
    if resolved:
        log.info("%s: %d open exceptions pass again: resolved by %s", result.exception_type, resolved, AUTO)
    return resolved


def _write_verdicts(
    conn: Connection,
    ex: sa.Table,
    base: list,
    verdicts: dict[int, SourceVerdict],
    figures: dict[int, source_verdict.WarehouseFigures],
) -> None:
    """``source_verdict``/``source_detail`` of each order. Orders that share both (``unknown``
    for one reason: over the limit, the source down) take one UPDATE per 1,000 ids; the others
    one per ``WRITE_BATCH`` with a ``CASE order_id`` for each column."""
    shared: dict[tuple[str, str], list[int]] = {}
    own: dict[int, tuple[str, str]] = {}
    for order_id, v in verdicts.items():
        text = v.detail(figures.get(order_id))
        if v.verdict == source_verdict.UNKNOWN:
            shared.setdefault((v.verdict, text), []).append(order_id)
        else:
            own[order_id] = (v.verdict, text)
    for (word, text), ids in shared.items():
        for batch in source_verdict.batches(ids, BATCH_SIZE):
            same = ex.update().where(*base, ex.c.order_id.in_(batch))
            conn.execute(same.values(source_verdict=word, source_detail=text))
    for batch in source_verdict.batches(list(own), WRITE_BATCH):
        words = {i: own[i][0] for i in batch}
        details = {i: own[i][1] for i in batch}
        conn.execute(
            ex.update()
            .where(*base, ex.c.order_id.in_(batch))
            .values(
                source_verdict=sa.case(words, value=ex.c.order_id),
                source_detail=sa.case(details, value=ex.c.order_id),
            )
        )


def _auto_notes(result: FollowUp) -> str:
    text = (
        f"auto-resolved: passed the {result.exception_type} rule again in run {result.run} "
        f"(as_of {result.as_of.isoformat(sep=' ')}); ORDER_TRACKING_AUTO_RESOLVE=true"
    )
    return source_verdict.cut_bytes(text, exceptions_store.NOTES_MAX)
