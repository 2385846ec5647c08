"""The plan of a targeted backfill: what to copy from the MySQL source, what it replaces, and why not.

The spec's Action for Tests 1 and 2 ends in "a targeted backfill is required". For one flagged order
:func:`plan_order` reads, without changing anything:

- the source rows to copy (``uni_tracking_spath``; for Test 1 also the ``uni_tracking_info`` row),
  counted first and refused above ``--max-rows`` before any is fetched;
- the columns the source and the mart have in common, matched case-insensitively (``pathTime`` ->
  ``pathtime``); a NOT NULL mart column without a default and without a source column is refused,
  naming it (the INSERT would fail, or the pipeline fills it some other way);
- the warehouse rows it would replace (the order's ``mart_uni_tracking_spath`` rows, and for Test 1
  its ``mart_uni_tracking_info`` row): the same DELETE + INSERT the 15-minute pipeline does;
- the statements, as Core (executed as they are, shown compiled for the dry run). The INSERTs are
  multi-row and split to stay within Redshift's statement size (16 MB); anything larger is a reload
  for the pipeline's own COPY, and is refused saying so.

:mod:`order_tracking.fixes.backfill` runs a plan; the refusals are :class:`Refused`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from order_tracking.checks import rules
from order_tracking.checks.source_verdict import IN_SOURCE, SourceVerdict
from order_tracking.schema import Tables
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH

BACKFILL_TYPES = (ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH)
DEFAULT_MAX_ROWS = 10_000
MAX_STATEMENT_BYTES = 16 * 1024 * 1024  # Redshift's maximum SQL statement size
# Rows per INSERT: also under SQLite's 32,766 bound parameters (rows x columns).
BATCH_ROWS = 1000
MAX_BOUND_PARAMETERS = 30_000
COPY_HINT = "a reload that large belongs to the pipeline's own COPY"


class Refused(Exception):
    """One order the backfill will not touch; the message is the one line that says why."""


@dataclass(frozen=True)
class TableCopy:
    """The rows of one source table to put into one mart table, for one order."""

    source_name: str  # schema.table in the source
    mart: sa.TableClause  # the mart table with the copied columns, typed from the values
    mart_name: str  # schema.table in the warehouse
    columns: tuple[str, ...]  # mart column names, in the order of each row's values
    rows: tuple[tuple, ...]
    replaced: int  # the order's rows in the mart table now (deleted by the backfill)
    key: sa.ColumnElement[bool]  # ``order_id = N`` on the mart table

    def delete(self) -> sa.Delete:
        return self.mart.delete().where(self.key)

    def inserts(self) -> list[sa.Insert]:
        """Multi-row INSERTs of every row, each within the statement size and parameter limits."""
        per_batch = max(1, min(BATCH_ROWS, MAX_BOUND_PARAMETERS // max(1, len(self.columns))))
        out = []
        for start in range(0, len(self.rows), per_batch):
            chunk = self.rows[start : start + per_batch]
            out.append(self.mart.insert().values([dict(zip(self.columns, r, strict=True)) for r in chunk]))
        return out


@dataclass(frozen=True)
class OrderPlan:
    """Everything the backfill of one order does, read before anything changes."""

    order_id: int
    exception_type: str
    verdict: SourceVerdict
    open_exceptions: int
    copies: tuple[TableCopy, ...]  # Test 1: info then spath (the lock order); Test 2: spath
    time_range: tuple[dt.datetime | None, dt.datetime | None]  # of the source pathTime copied
    notes: list[str] = field(default_factory=list)

    @property
    def spath(self) -> TableCopy:
        return self.copies[-1]

    def statements(self) -> list[sa.Executable]:
        """DELETE then INSERT per mart table, in lock order."""
        out: list[sa.Executable] = []
        for copy in self.copies:
            out.append(copy.delete())
            out.extend(copy.inserts())
        return out

    def summary(self) -> str:
        """What is copied, in words (dry run, resolution notes)."""
        first, last = self.time_range
        parts = [
            f"{len(self.spath.rows)} spath rows (pathTime {_ts(first)} .. {_ts(last)}) "
            f"from {self.spath.source_name}, replacing {self.spath.replaced} in {self.spath.mart_name}"
        ]
        if len(self.copies) > 1:
            info = self.copies[0]
            parts.append(
                f"{len(info.rows)} uni_tracking_info row from {info.source_name}, replacing "
                f"{info.replaced} in {info.mart_name}"
            )
        return "; ".join(parts)


def _ts(value: object) -> str:
    return "NULL" if value is None else str(value)


def qualified(table: sa.Table | sa.TableClause) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def _type_for(values: list[object]) -> sa.types.TypeEngine:
    """A Core type from the values themselves: the source's own types (MySQL's) would not compile
    in the warehouse's dialect, and the mart's reflected ones differ per backend."""
    sample = next((v for v in values if v is not None), None)
    kinds: list[tuple[type, sa.types.TypeEngine]] = [
        (bool, sa.Boolean()),
        (dt.datetime, sa.DateTime()),
        (dt.date, sa.Date()),
        (dt.time, sa.Time()),
        (int, sa.BigInteger()),
        (float, sa.Float()),
        (Decimal, sa.Numeric()),
        (bytes, sa.LargeBinary()),
    ]
    for kind, type_ in kinds:
        if isinstance(sample, kind):
            return type_
    return sa.String()


def mart_columns(conn: Connection, table: sa.Table) -> list[tuple[str, bool]]:
    """(name, required) for each column of the mart table: required = NOT NULL without a default."""
    if conn.dialect.name in ("postgresql", "redshift"):
        query = sa.text(
            "SELECT a.attname, a.attnotnull AND NOT a.atthasdef FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_class c ON a.attrelid = c.oid "
            "JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid "
            "WHERE n.nspname = :schema AND c.relname = :name AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum"
        )
        return [
            (str(n), bool(r)) for n, r in conn.execute(query, {"schema": table.schema, "name": table.name})
        ]
    cols = sa.inspect(conn).get_columns(table.name, schema=table.schema)
    return [
        (c["name"], not c.get("nullable", True) and c.get("default") is None and not c.get("autoincrement"))
        for c in cols
    ]


def common_columns(
    source_cols: list[str], mart_cols: list[tuple[str, bool]], source_name: str, mart_name: str
) -> list[tuple[str, str]]:
    """(source name, mart name) of the shared columns, in mart order; refuses a required mart
    column that the source lacks."""
    by_lower = {c.lower(): c for c in source_cols}
    pairs = [(by_lower[m.lower()], m) for m, _ in mart_cols if m.lower() in by_lower]
    lacking = [m for m, required in mart_cols if required and m.lower() not in by_lower]
    if lacking:
        raise Refused(
            f"{mart_name} has NOT NULL column{'s' if len(lacking) > 1 else ''} {', '.join(lacking)} "
            f"that {source_name} does not have: the INSERT cannot fill it"
        )
    if not any(m.lower() == "order_id" for _, m in pairs):
        raise Refused(f"{source_name} and {mart_name} share no order_id column")
    return pairs


def _source_table(conn: Connection, table: sa.Table) -> sa.TableClause:
    """The source table with every column, typed as the source reflects it (so that an SQLite
    source returns datetimes, not text)."""
    cols = sa.inspect(conn).get_columns(table.name, schema=table.schema)
    return sa.table(table.name, *(sa.column(c["name"], c["type"]) for c in cols), schema=table.schema)


def _copy(
    src: Connection, wh: Connection, source: sa.Table, mart: sa.Table, order_id: int, order_by: str | None
) -> TableCopy:
    src_table = _source_table(src, source)
    source_name, mart_name = qualified(source), qualified(mart)
    pairs = common_columns(list(src_table.c.keys()), mart_columns(wh, mart), source_name, mart_name)
    order_col = next(s for s, m in pairs if m.lower() == "order_id")
    query = sa.select(*(src_table.c[s] for s, _ in pairs)).where(src_table.c[order_col] == order_id)
    if order_by is not None and order_by in src_table.c:
        query = query.order_by(src_table.c[order_by])
    rows = tuple(tuple(r) for r in src.execute(query))
    mart_cols = [m for _, m in pairs]
    typed = sa.table(
        mart.name,
        *(sa.column(m, _type_for([r[i] for r in rows])) for i, m in enumerate(mart_cols)),
        schema=mart.schema,
    )
    mart_order = next(m for m in mart_cols if m.lower() == "order_id")
    key = typed.c[mart_order] == sa.literal(order_id, sa.BigInteger())
    replaced = int(
        wh.execute(
            sa.select(sa.func.count()).select_from(mart).where(mart.c.order_id == order_id)
        ).scalar_one()
    )
    return TableCopy(source_name, typed, mart_name, tuple(mart_cols), rows, replaced, key)


def _open_count(conn: Connection, tables: Tables, exception_type: str, order_id: int) -> int:
    ex = tables.exceptions
    query = sa.select(sa.func.count()).where(
        ex.c.order_id == order_id, ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None)
    )
    return int(conn.execute(query).scalar_one())


def plan_order(
    src: Connection,
    wh: Connection,
    tables: Tables,
    verdict: SourceVerdict,
    *,
    force: bool,
    max_rows: int,
) -> OrderPlan:
    """Read one order's backfill, or raise :class:`Refused` (nothing is changed either way)."""
    order_id, etype = verdict.order_id, verdict.exception_type
    uts = tables.src_uts
    n, first, last = src.execute(
        sa.select(sa.func.count(), sa.func.min(uts.c.pathTime), sa.func.max(uts.c.pathTime)).where(
            uts.c.order_id == order_id
        )
    ).one()
    n = int(n)
    src_name = qualified(uts)
    if n == 0:
        raise Refused(f"order {order_id} is missing from the source: {src_name} has no row for it")
    if etype == UTI_UTS_TIME_MISMATCH:
        info = src.execute(
            sa.select(sa.func.count()).where(tables.src_uti.c.order_id == order_id)
        ).scalar_one()
        if not info:
            raise Refused(
                f"order {order_id} is missing from the source: {qualified(tables.src_uti)} has no row for it"
            )
    if n > max_rows:
        raise Refused(
            f"order {order_id} has {n} rows in {src_name}, more than --max-rows {max_rows}: {COPY_HINT} "
            "(or raise --max-rows)"
        )
    if verdict.verdict != IN_SOURCE and not force:
        why = f" ({verdict.reason})" if verdict.reason else ""
        raise Refused(
            f"order {order_id}: source verdict is {verdict.verdict}{why}, not {IN_SOURCE}; a backfill "
            "would not fix it; add --force to copy the source's rows anyway"
        )
    open_n = _open_count(wh, tables, etype, order_id)
    if not open_n and not force:
        raise Refused(
            f"order {order_id} has no open {etype} exception (was the id mistyped? the monitor never "
            "flagged it, or it was resolved already); add --force to backfill it anyway"
        )
    copies = []
    if etype == UTI_UTS_TIME_MISMATCH:
        copies.append(_copy(src, wh, tables.src_uti, tables.mart_uti, order_id, None))
    copies.append(_copy(src, wh, uts, tables.mart_uts, order_id, "pathTime"))
    plan = OrderPlan(order_id, etype, verdict, open_n, tuple(copies), (first, last))
    check_statement_sizes(plan, wh.dialect)
    return plan


def check_statement_sizes(plan: OrderPlan, dialect: Dialect) -> list[str]:
    """Each statement as the SQL text sent for ``dialect``; refuses one over Redshift's 16 MB."""
    texts = []
    for statement in plan.statements():
        text = rules.compile_sql(statement, dialect).strip()
        size = len(text.encode("utf-8"))
        if size > MAX_STATEMENT_BYTES:
            raise Refused(
                f"order {plan.order_id}: one INSERT would be {size:,} bytes, over Redshift's "
                f"{MAX_STATEMENT_BYTES:,}-byte statement limit: {COPY_HINT}"
            )
        texts.append(text)
    return texts


def lock_tables(plan: OrderPlan, tables: Tables) -> list[sa.Table]:
    """The tables the transaction writes, in the fixed order every writer locks them."""
    return [tables.mart_uti] * (len(plan.copies) > 1) + [tables.mart_uts]
