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
from sqlalchemy.sql.ddl import CreateTableAs

from order_tracking import db
from order_tracking.checks import exceptions_store, rules, source_verdict
from order_tracking.checks.exceptions_store import follow_up_columns
from order_tracking.checks.rules import RuleQuery
from order_tracking.checks.source_verdict import SourceVerdict
from order_tracking.clock import utc_now
from order_tracking.locked_write import locked_write
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
    limit: int = 0  # settings.source_check_limit
    over_limit: int = 0  # open exceptions past the limit: "unknown", not looked up
    auto_resolved: int = 0
    verdicts: dict[int, SourceVerdict] = field(default_factory=dict)
    stored: bool = True  # verdicts and passing runs written (False: the columns are missing)
    warning: str | None = None

    @property
    def verified(self) -> bool:
        """Tests 1-2 have a source side; Test 3 has none."""
        return self.exception_type in source_verdict.VERIFIED_TYPES

    def verdict_counts(self) -> dict[str, int]:
        counts = {word: 0 for word in source_verdict.VERDICTS}
        for v in self.verdicts.values():
            counts[v.verdict] += 1
        counts[source_verdict.UNKNOWN] += self.over_limit
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
            "auto_resolved": self.auto_resolved,
            "verdicts": self.verdict_counts() if self.verified else None,
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
    """Re-check the type's open exceptions, look them up in the source, write what changed.

    Memory and statements stay flat whatever the number of open exceptions: the re-check runs in
    the warehouse over a staged copy of the open rows (``rules.OrderIds`` with a subquery), only
    what changed comes back (orders passing, or failing again after passing), and at most
    ``source_check_limit`` orders are looked up and compared with their stored verdict.
    """
    result = FollowUp(exception_type, run, as_of, limit=settings.source_check_limit)
    ex = tables.exceptions
    is_open = [ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None)]
    with engine.connect() as conn:
        missing = follow_up_columns.missing(conn, tables)
        columns = not missing
        marked = ex.c.passing_since.is_not(None) if columns else sa.false()
        n_open, n_marked = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(sa.case((marked, 1), else_=0))).where(*is_open)
        ).one()
        result.open = int(n_open or 0)
        if not result.open:
            return result
        # The staged copy lives in this transaction only: rolled back with it, on any error too.
        staged = _stage_open(conn, ex, is_open, marked)
        rule = rule_for(conn, rules.OrderIds(source=sa.select(staged.c.order_id)))
        failing = _failing_ids(rule)
        present = sa.select(tables.mart_uti.c.order_id)
        # Passing: the mart has the order and the rule does not flag it (one statement). An
        # anti-join, not NOT IN: PostgreSQL runs a NOT IN whose subquery outgrows work_mem once per
        # row (1.5M open exceptions: hours), where the join hashes both sides once.
        flagged = failing.subquery("flagged")
        rows = conn.execute(
            sa.select(staged.c.order_id, staged.c.marked)
            .select_from(staged.outerjoin(flagged, flagged.c.order_id == staged.c.order_id))
            .where(staged.c.order_id.in_(present), flagged.c.order_id.is_(None))
            .order_by(staged.c.order_id)
        ).all()
        failing_again: list[int] = []
        if columns and n_marked:
            again = sa.select(staged.c.order_id).where(staged.c.marked == 1, staged.c.order_id.in_(failing))
            failing_again = [int(r[0]) for r in conn.execute(again)]
        conn.execute(sa.schema.DropTable(staged))
        passing = list(dict.fromkeys(int(r[0]) for r in rows))
        newly = [int(r[0]) for r in rows if not r[1]]
        limit = settings.source_check_limit if result.verified else 0
        checked, stored, after = _first_open(conn, tables, exception_type, limit, columns)
    if missing:
        result.stored = False
        result.warning = (
            f"{tables.exceptions.schema}.{tables.exceptions.name} has no {', '.join(missing)} column: "
            f"source verdicts and passing runs are reported, not stored; {follow_up_columns.INIT_DB_HINT}"
        )
        log.warning("%s", result.warning)
    result.now_passing = passing
    resolving = set(passing) if settings.auto_resolve else set()
    if result.verified:
        ids = [i for i in checked if i not in resolving]
        result.verdicts = verdicts_for(engine, settings, tables, exception_type, ids)
        result.over_limit = max(result.open - len(checked), 0)
    result.auto_resolved = _write(
        engine, settings, tables, result, newly, failing_again, columns, stored=stored, after=after
    )
    return result


STAGED_OPEN = "order_tracking_staged_open"  # a TEMPORARY table of the follow-up's session


def _stage_open(conn: Connection, ex: sa.Table, is_open: list, marked) -> sa.Table:
    """The open rows' ``(order_id, marked)`` copied into a temporary table, for the re-check.

    Not a subquery on the exceptions table: its statistics lag behind a night that opened many
    rows (PostgreSQL then planned 25,000 open rows as one, and the re-check's join ran for four
    minutes in the benchmark). A fresh temporary table is planned from its real size, and on
    PostgreSQL it is ANALYZEd as the write pass does with its staged findings.
    """
    select = sa.select(ex.c.order_id, sa.case((marked, 1), else_=0).label("marked")).where(*is_open)
    create = CreateTableAs(select, STAGED_OPEN, temporary=True)
    conn.execute(create)
    exceptions_store.analyze_staged(conn, create.table)
    return create.table


def _failing_ids(rule: RuleQuery) -> sa.Select:
    """The orders the rule flags (NULL ids left out: they match no open exception)."""
    core = rule.core.subquery("failing")
    return sa.select(core.c.order_id).where(core.c.order_id.is_not(None))


def _first_open(
    conn: Connection, tables: Tables, exception_type: str, limit: int, columns: bool
) -> tuple[list[int], dict[int, tuple[str | None, str | None]], tuple | None]:
    """The ``limit`` open exceptions to look up (this run's findings first), their stored verdict
    and detail, and the (last_seen_at, order_id) after which the rest are over the limit."""
    if not limit:
        return [], {}, None
    ex = tables.exceptions
    stored_cols = (ex.c.source_verdict, ex.c.source_detail) if columns else (sa.null(), sa.null())
    query = (
        sa.select(ex.c.order_id, ex.c.last_seen_at, *stored_cols)
        .where(ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None))
        .order_by(ex.c.last_seen_at.desc(), ex.c.order_id)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    stored = {int(r[0]): (r[2], r[3]) for r in rows}
    after = (rows[-1][1], int(rows[-1][0])) if rows else None
    return list(stored), stored, after


def verdicts_for(
    engine: Engine, settings: Settings, tables: Tables, exception_type: str, order_ids: Sequence[int]
) -> dict[int, SourceVerdict]:
    """The source verdict of each order; any problem with the source URL itself is ``unknown`` too."""
    if not order_ids:
        return {}
    try:
        # An embedded source whose files are missing is never created here (a demo without one).
        db.require_database(settings.source_url, [settings.source_schema], "source")
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
    *,
    stored: dict[int, tuple[str | None, str | None]],
    after: tuple | None,
) -> int:
    """One locked transaction with what changed: passing marks (``newly`` passing, ``failing``
    again), auto-resolve, verdicts. Returns how many were resolved."""
    ex = tables.exceptions
    base = [ex.c.exception_type == result.exception_type, ex.c.resolved_at.is_(None)]
    passing = result.now_passing if settings.auto_resolve else []
    figures: dict[int, source_verdict.WarehouseFigures] = {}
    looked_up = [i for i, v in result.verdicts.items() if v.source_rows is not None]
    if columns and looked_up:
        with engine.connect() as conn:  # read outside the lock: the mart, not the exceptions table
            figures = source_verdict.warehouse_figures(conn, tables, looked_up)
    changed: dict[int, tuple[str, str]] = {}
    for order_id, v in result.verdicts.items():
        new = (v.verdict, v.detail(figures.get(order_id)))
        if stored.get(order_id) != new:
            changed[order_id] = new
    over = _over_limit(tables, result, base, after) if columns and result.over_limit else None
    if over is not None:
        with engine.connect() as conn:  # usually none: the rest said "over the limit" already
            if not conn.execute(sa.select(sa.func.count()).select_from(ex).where(*over[0])).scalar():
                over = None
    if not (passing or (columns and (newly or failing or changed or over is not None))):
        return 0

    def body(conn: Connection) -> int:  # may run again: a retry starts from a rollback
        resolved = 0
        for batch in source_verdict.batches(newly, BATCH_SIZE) if columns else ():
            first = {"passing_since": result.as_of, "passing_run": result.run[:128]}
            unmarked = ex.update().where(*base, ex.c.order_id.in_(batch), ex.c.passing_since.is_(None))
            conn.execute(unmarked.values(first))
        for batch in source_verdict.batches(failing, BATCH_SIZE) if columns else ():
            again = ex.update().where(*base, ex.c.order_id.in_(batch), ex.c.passing_since.is_not(None))
            conn.execute(again.values(passing_since=None, passing_run=None))
        if passing:
            notes = _auto_notes(result)
            for batch in source_verdict.batches(passing, BATCH_SIZE):
                closing = ex.update().where(*base, ex.c.order_id.in_(batch))
                resolved += conn.execute(
                    closing.values(resolved_at=utc_now(), resolved_by=AUTO, resolution_notes=notes)
                ).rowcount
        if columns:
            _write_verdicts(conn, ex, base, changed)
        if over is not None:
            rest = ex.update().where(*over[0])
            conn.execute(rest.values(source_verdict=source_verdict.UNKNOWN, source_detail=over[1]))
        return resolved

    resolved = locked_write(engine, [ex], body, what=f"{result.exception_type} follow-up")
    if resolved:
        log.info("%s: %d open exceptions pass again: resolved by %s", result.exception_type, resolved, AUTO)
    return resolved


def _over_limit(tables: Tables, result: FollowUp, base: list, after: tuple | None) -> tuple[list, str]:
    """(where, detail) of the open rows past the look-up limit whose detail does not say so yet."""
    ex = tables.exceptions
    text = source_verdict.over_limit(0, result.exception_type, result.limit).detail()
    where = [*base, sa.or_(ex.c.source_detail.is_(None), ex.c.source_detail != text)]
    if after is not None:  # after the last looked-up row in (last_seen_at DESC, order_id) order
        seen, order_id = after
        where.append(
            sa.or_(ex.c.last_seen_at < seen, sa.and_(ex.c.last_seen_at == seen, ex.c.order_id > order_id))
        )
    return where, text


def _write_verdicts(conn: Connection, ex: sa.Table, base: list, changed: dict[int, tuple[str, str]]) -> None:
    """``source_verdict``/``source_detail`` of the orders whose verdict or figures changed. Orders
    that share both (``unknown`` for one reason: the source down) take one UPDATE per 1,000 ids;
    the others one per ``WRITE_BATCH`` with a ``CASE order_id`` for each column."""
    shared: dict[tuple[str, str], list[int]] = {}
    own: dict[int, tuple[str, str]] = {}
    for order_id, (word, text) in changed.items():
        if word == source_verdict.UNKNOWN:
            shared.setdefault((word, text), []).append(order_id)
        else:
            own[order_id] = (word, text)
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
