"""The SQL of the four checks, built once with SQLAlchemy Core and compiled per dialect.

Every rule starts from the 24-hour window over ``mart_uni_tracking_info`` (``as_of - lookback <
update_time <= as_of``) so that the warehouse prunes by sort key / index before any join. Each
finding rule returns one row per failing order with the columns ``order_id``, ``update_time``,
``notes`` (plain words of what was observed, stored in the exceptions table) and rule-specific
evidence columns. The same ``Select`` feeds the GX expectation (validation), the exceptions store
(``INSERT ... SELECT``) and the benchmark, so a rule exists exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from order_tracking import schema
from order_tracking.schema import Tables
from order_tracking.settings import (
    ORDER_MISSING_SPATH,
    REACTIVATED_ORDER_MISSING_ECS,
    UTI_UTS_TIME_MISMATCH,
)

SAMPLE_SIZE = 200  # GX's own cap on fetched rows (MAX_RESULT_RECORDS)


# --- dialect-specific pieces, compiled by SQLAlchemy -----------------------------------------


class microseconds_between(FunctionElement):
    """``later - earlier`` in whole microseconds, in each dialect's own words.

    Microseconds, not seconds: a sub-second mismatch is a real Test 1 finding and its note must
    not say ``diff=0s`` (issue 11).
    """

    type = sa.BigInteger()
    inherit_cache = True


@compiles(microseconds_between)
def _microseconds_between_default(element, compiler, **kw):
    later, earlier = list(element.clauses)
    delta = f"{compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}"
    return f"CAST(EXTRACT(EPOCH FROM ({delta})) * 1000000 AS BIGINT)"


@compiles(microseconds_between, "postgresql")
def _microseconds_between_postgresql(element, compiler, **kw):
    # PostgreSQL holds 'infinity' and '-infinity' timestamps (Redshift has none) and refuses to
    # subtract them ("cannot subtract infinite timestamps"), which lost every finding of Test 1
    # (issue 28): no difference (NULL) for those, and the note says why.
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    delta = f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000 AS BIGINT)"
    return f"CASE WHEN isfinite({later}) AND isfinite({earlier}) THEN {delta} END"


@compiles(microseconds_between, "redshift")
def _microseconds_between_redshift(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"DATEDIFF(microsecond, {compiler.process(earlier, **kw)}, {compiler.process(later, **kw)})"


@compiles(microseconds_between, "sqlite")
def _microseconds_between_sqlite(element, compiler, **kw):
    # julianday() keeps milliseconds only. SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff': whole
    # seconds from strftime('%s'), microseconds from the text after the dot (padded if short).
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)

    def micros(t: str) -> str:
        return (
            f"(CAST(strftime('%s', {t}) AS INTEGER) * 1000000 + "
            f"CAST(substr(substr({t}, 21) || '000000', 1, 6) AS INTEGER))"
        )

    return f"({micros(later)} - {micros(earlier)})"


@compiles(microseconds_between, "mysql")
@compiles(microseconds_between, "mariadb")
def _microseconds_between_mysql(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"TIMESTAMPDIFF(MICROSECOND, {compiler.process(earlier, **kw)}, {compiler.process(later, **kw)})"


def _seconds_text(micros: ColumnElement) -> ColumnElement:
    """Microseconds as seconds for a note: ``3600``, ``-0.250000``, ``NULL``; same text everywhere."""
    # No ``%``: compiled with literal binds for psycopg2 it becomes ``%%`` in the text GX runs.
    whole = sa.cast(sa.func.abs(micros) // 1000000, sa.BigInteger)
    fraction = sa.func.abs(micros) - whole * 1000000
    sign = sa.case((micros < 0, sa.literal("-")), else_=sa.literal(""))
    # 1000000 + fraction is 7 digits: dropping the leading 1 zero-pads the fraction to 6.
    padded = sa.func.substr(sa.cast(fraction + 1000000, sa.String(16)), 2, 6)
    return sa.case(
        (micros.is_(None), sa.literal("NULL")),
        (fraction == 0, sign + sa.cast(whole, sa.String(32))),
        else_=sign + sa.cast(whole, sa.String(32)) + sa.literal(".") + padded,
    )


def _text(expr: ColumnElement) -> ColumnElement:
    """A timestamp or number as text, for notes (concatenation is ``||`` or ``concat()``)."""
    return sa.func.coalesce(sa.cast(expr, sa.String(64)), sa.literal("NULL"))


# --- the window ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """``start < t <= end`` for Tests 1-3; ``start <= t < end`` for Test 0 (closed, half-open)."""

    start: datetime
    end: datetime

    @classmethod
    def lookback(cls, as_of: datetime, hours: int) -> Window:
        return cls(as_of - timedelta(hours=hours), as_of)

    @classmethod
    def extraction(cls, as_of: datetime, window_secs: int, buffer_secs: int) -> Window:
        end = as_of - timedelta(seconds=buffer_secs)
        return cls(end - timedelta(seconds=window_secs), end)


@dataclass(frozen=True)
class OrderIds:
    """The other scope of a rule: given orders whatever their ``update_time`` (issue 23).

    By default the ids are the expanding bind parameter ``ORDER_IDS_PARAM``, so the rule is built
    and compiled once and run per batch: ``conn.execute(sql, {ORDER_IDS_PARAM: ids})``. With
    ``source`` (a SELECT of order ids, e.g. the open exceptions of a type) the ids stay in the
    warehouse: one statement whatever their number, nothing fetched into Python.
    """

    param: str = "order_ids"
    source: sa.Select | None = None


ORDER_IDS_PARAM = OrderIds().param
Scope = Window | OrderIds


def _scope(tables: Tables, window: Scope) -> sa.Subquery:
    """Orders updated in the window (or the given ones): the first, most selective step of every rule.

    Rows with a NULL ``order_id`` stay in scope (Tests 2 and 3 find them, since nothing joins to
    NULL): validation counts them as ``skipped_null_order_ids`` and the write pass leaves them
    out, as they cannot be keyed (issue 11). Filtering them here would hide them.
    """
    uti = tables.mart_uti
    if isinstance(window, OrderIds):
        ids = window.source if window.source is not None else sa.bindparam(window.param, expanding=True)
        where = [uti.c.order_id.in_(ids)]
    else:
        where = [uti.c.update_time > window.start, uti.c.update_time <= window.end]
    return sa.select(uti.c.order_id, uti.c.update_time).where(*where).subquery("scope")


def in_scope(tables: Tables, window: Scope) -> sa.Select:
    """The distinct orders a rule looks at in ``window``: with :class:`OrderIds`, which of the
    given orders the mart still has (one absent from ``mart_uni_tracking_info`` is not "passing")."""
    scope = _scope(tables, window)
    return sa.select(scope.c.order_id).distinct()


# --- the rules -------------------------------------------------------------------------------


Annotate = Callable[[sa.FromClause], sa.Select]


@dataclass(frozen=True)
class RuleQuery:
    """One finding rule: its exception type, its SQL and the tables it reads (for Data Docs).

    ``core`` selects the failing orders with cheap columns; ``annotate``, if any, adds evidence
    that costs a lookup per order (Test 3: which history table holds it). Validation counts over
    ``core`` and annotates only the fetched sample; the write pass annotates every finding.
    """

    exception_type: str
    core: sa.Select
    tables_read: tuple[str, ...]
    annotate: Annotate | None = None

    @property
    def select(self) -> sa.Select:
        """Every failing order with all its columns, ``notes`` included."""
        if self.annotate is None:
            return self.core
        return self.annotate(self.core.subquery("failing"))

    def count(self) -> sa.Select:
        """``SELECT COUNT(*)`` of the failing rows: the raw-SQL cost of the rule."""
        return sa.select(sa.func.count()).select_from(self.core.subquery("findings"))

    def sample_with_count(self, limit: int = SAMPLE_SIZE) -> sa.Select:
        """Count and sample in ONE scan: one row per failing order, each carrying the totals.

        Every row carries ``failing_count`` (distinct failing orders: an order listed twice in
        ``mart_uni_tracking_info`` counts once, as the exceptions store writes it once) and
        ``skipped_null_order_ids`` (failing rows whose ``order_id`` is NULL: they cannot be keyed,
        so they are counted, reported and never written). The failing rows are grouped by
        ``order_id`` (``MAX`` of each column, as the store's ``MAX(notes)``); the NULL group, if
        any, sorts last and carries the totals even when no order can be keyed.

        The totals sit in their own subquery and ORDER BY ... LIMIT outside it. Written flat
        (``SELECT ..., COUNT(*) OVER () ... ORDER BY order_id LIMIT n``) PostgreSQL plans the rule
        for "first rows by order_id": it walks the whole ``order_id`` index of
        ``mart_uni_tracking_info`` and filters out the 97% outside the window (EXPLAIN: 1.1 s
        against 0.6 s for the COUNT(*) on 1M orders), although the window aggregate must read
        every row anyway. A subquery holding a window function is never flattened, so the rule
        inside gets the same plan as its ``COUNT(*)``; the top-n sort of the failing rows is cheap.
        The annotation runs over the limited sample only (a LIMIT subquery is not flattened
        either): inside the scan the planner hashed whole history tables for Test 3.
        """
        f = self.core.subquery("findings")
        per_order = (
            sa.select(
                f.c.order_id,
                *(sa.func.max(c).label(c.name) for c in f.c if c.name != "order_id"),
                sa.func.count().label("rows_per_order"),
            )
            .group_by(f.c.order_id)
            .subquery("per_order")
        )
        nulls = sa.case((per_order.c.order_id.is_(None), per_order.c.rows_per_order), else_=0)
        counted = sa.select(
            *(c for c in per_order.c if c.name != "rows_per_order"),
            sa.func.count(per_order.c.order_id).over().label("failing_count"),
            sa.func.sum(nulls).over().label("skipped_null_order_ids"),
        ).subquery("counted")
        sample = sa.select(*counted.c).order_by(counted.c.order_id.nulls_last()).limit(limit)
        if self.annotate is None:
            return sample
        annotated = self.annotate(sample.subquery("sample"))
        return annotated.order_by(annotated.selected_columns.order_id.nulls_last())

    def per_order(self) -> sa.Select:
        """Every failing order once, with the core's columns and ``rows_per_order``: what
        ``monitor`` stages (CREATE TEMPORARY TABLE ... AS) for validation AND the write, so the rule
        runs once per check whatever the number of findings (see :func:`sample_from_staged`). The
        annotation, if any, is not in it: it runs over the staged rows (``exceptions_store.stage``).

        Grouped as in :meth:`sample_with_count`: ``MAX`` of each column per ``order_id``; the
        failing rows whose ``order_id`` is NULL make one row, whose ``rows_per_order`` counts them.
        """
        f = self.core.subquery("findings")
        return sa.select(
            f.c.order_id,
            *(sa.func.max(c).label(c.name) for c in f.c if c.name != "order_id"),
            sa.func.count().label("rows_per_order"),
        ).group_by(f.c.order_id)

    def findings(self) -> sa.Select:
        """``(order_id, notes)``: what the exceptions store inserts."""
        f = self.select.subquery("findings")
        return sa.select(f.c.order_id, f.c.notes)


def sample_from_staged(staged: sa.Table, limit: int = SAMPLE_SIZE) -> sa.Select:
    """What :meth:`RuleQuery.sample_with_count` returns, read from the staged :meth:`RuleQuery.per_order`
    rows instead of the warehouse tables: the failing orders (lowest ids first, the NULL group
    last), each carrying ``failing_count`` and ``skipped_null_order_ids``."""
    nulls = sa.case((staged.c.order_id.is_(None), staged.c.rows_per_order), else_=0)
    counted = sa.select(
        *(c for c in staged.c if c.name != "rows_per_order"),
        sa.func.count(staged.c.order_id).over().label("failing_count"),
        sa.func.sum(nulls).over().label("skipped_null_order_ids"),
    ).subquery("counted")
    return sa.select(*counted.c).order_by(counted.c.order_id.nulls_last()).limit(limit)


def _name(table: sa.Table) -> str:
    return f"{table.schema}.{table.name}"


def uti_uts_time_mismatch(tables: Tables, window: Scope) -> RuleQuery:
    """Test 1: ``update_time`` differs from ``MAX(pathtime)`` in mart spath.

    Orders without any mart spath row are Test 2's business (docs/design.md section 4): the inner
    join leaves them out.
    """
    scope = _scope(tables, window)
    uts = tables.mart_uts
    last_path = (
        sa.select(uts.c.order_id, sa.func.max(uts.c.pathtime).label("max_pathtime"))
        .where(uts.c.order_id.in_(sa.select(scope.c.order_id)))
        .group_by(uts.c.order_id)
        .subquery("last_path")
    )
    diff = microseconds_between(scope.c.update_time, last_path.c.max_pathtime)
    all_null = last_path.c.max_pathtime.is_(None)
    observed = sa.literal("update_time=") + _text(scope.c.update_time)
    seen_path = observed + sa.literal(" max_pathtime=") + _text(last_path.c.max_pathtime)
    notes = sa.case(
        # Spath rows exist but none has a time: not Test 2's (rows exist), so a Test 1 finding.
        (all_null, observed + sa.literal(" max_pathtime=NULL: every pathtime of the order is NULL")),
        # 'infinity' (PostgreSQL), a year past 9999 (SQLite's date functions): still a finding,
        # with the value as the warehouse spells it.
        (diff.is_(None), seen_path + sa.literal(": no diff can be computed (infinite or out of range)")),
        else_=seen_path + sa.literal(" diff=") + _seconds_text(diff) + sa.literal("s"),
    )
    select = (
        sa.select(
            scope.c.order_id,
            scope.c.update_time,
            # As text: pathtime is whatever the pipeline wrote ('infinity', year 294276, a DATE
            # column), and the driver would turn it into a Python value that cannot hold it
            # ("year 294276 is out of range") or a wrong one (psycopg2: infinity -> 9999-12-31).
            # update_time needs no such care: the window bounds it.
            sa.cast(last_path.c.max_pathtime, sa.String(64)).label("max_pathtime"),
            (sa.cast(diff, sa.Float) / 1000000).label("diff_seconds"),
            notes.label("notes"),
        )
        .select_from(scope.join(last_path, last_path.c.order_id == scope.c.order_id))
        .where(sa.or_(scope.c.update_time != last_path.c.max_pathtime, all_null))
    )
    return RuleQuery(UTI_UTS_TIME_MISMATCH, select, (_name(tables.mart_uti), _name(uts)))


def order_missing_spath(tables: Tables, window: Scope, hist_uts: Sequence[sa.Table]) -> RuleQuery:
    """Test 2: no row in mart spath nor in any history spath table."""
    scope = _scope(tables, window)
    spath_tables = [tables.mart_uts, *hist_uts]
    conditions = [~sa.exists().where(t.c.order_id == scope.c.order_id).correlate(scope) for t in spath_tables]
    searched = ", ".join(t.name for t in spath_tables)
    notes = (
        sa.literal("no spath rows; update_time=")
        + _text(scope.c.update_time)
        + sa.literal(f"; searched {searched}")
    )
    select = sa.select(scope.c.order_id, scope.c.update_time, notes.label("notes")).where(*conditions)
    return RuleQuery(ORDER_MISSING_SPATH, select, (_name(tables.mart_uti), *(_name(t) for t in spath_tables)))


def reactivated_order_missing_ecs(tables: Tables, window: Scope, hist_ecs: Sequence[sa.Table]) -> RuleQuery:
    """Test 3: an active order with no row in ``mart_ecs_order_info``.

    The note names the history table that holds the order (the repair moves it from there); that
    lookup is an annotation, run only for failing orders (see ``RuleQuery``).
    """
    scope = _scope(tables, window)
    ecs = tables.mart_ecs
    core = sa.select(scope.c.order_id, scope.c.update_time).where(
        ~sa.exists().where(ecs.c.order_id == scope.c.order_id).correlate(scope)
    )
    newest_first = list(reversed(list(hist_ecs)))  # a reactivated order was archived last

    def annotate(failing: sa.Subquery) -> sa.Select:
        none = sa.literal("none", sa.String)
        whens = [
            (
                sa.exists().where(t.c.order_id == failing.c.order_id).correlate(failing),
                sa.literal(t.name, sa.String),
            )
            for t in newest_first
        ]
        located = sa.select(
            *failing.c, (sa.case(*whens, else_=none) if whens else none).label("found_in")
        ).subquery("located")
        notes = (
            sa.literal("not in mart_ecs_order_info; update_time=")
            + _text(located.c.update_time)
            + sa.literal("; found in ")
            + located.c.found_in
        )
        return sa.select(*located.c, notes.label("notes"))

    return RuleQuery(
        REACTIVATED_ORDER_MISSING_ECS,
        core,
        (_name(tables.mart_uti), _name(ecs), *(_name(t) for t in hist_ecs)),
        annotate,
    )


# --- history tables --------------------------------------------------------------------------


def hist_uts_tables(conn: Connection, tables: Tables, explicit: Sequence[str] | None) -> list[sa.Table]:
    """History spath tables: the explicit list from settings, else every one found by name."""
    names = (
        list(explicit)
        if explicit is not None
        else schema.discover_hist_tables(conn, tables.settings.mart_schema, schema.HIST_UTS_PREFIX)
    )
    return [tables.hist_by_name(n) for n in names]


def hist_ecs_tables(conn: Connection, tables: Tables) -> list[sa.Table]:
    names = schema.discover_hist_tables(conn, tables.settings.mart_schema, schema.HIST_ECS_PREFIX)
    return [tables.hist_by_name(n) for n in names]


def compile_sql(statement: sa.ClauseElement, dialect: Dialect) -> str:
    """SQL text with every value inlined, for GX (which runs plain text) and for display."""
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
