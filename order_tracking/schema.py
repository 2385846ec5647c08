"""All tables of docs/design.md section 3 as SQLAlchemy Core metadata, for every backend.

Warehouse identifiers are lower case (Redshift folds them); the MySQL source keeps ``pathTime``.
Indexes serve the 24-hour window queries on SQLite/PostgreSQL/MariaDB; Redshift has no indexes
(CREATE INDEX fails, and with it the CREATE TABLE of the same transaction), so every index is
created only on ``INDEXED_DIALECTS``. On Redshift the same tables carry DISTKEY/SORTKEY instead
(rendered by sqlalchemy-redshift, see ``redshift_ddl``).

In production only the ``settlement_ods`` tables are ours; ``create_tables`` creates the pipeline
tables (source, mart, raw, history) only when asked, for local and test databases. Nothing here
ever drops anything.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from order_tracking.errors import UserError
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

ORDER_ID = sa.BigInteger
TS = sa.DateTime  # naive UTC everywhere

HIST_UTS_PREFIX = "hist_uni_tracking_spath_"
HIST_ECS_PREFIX = "hist_ecs_order_info_"
# What Tests 2 and 3 and the repair read from every history table.
HIST_REQUIRED_COLUMNS = ("order_id",)
HIST_RE = re.compile(
    r"^(?P<prefix>hist_(?:uni_tracking_spath|ecs_order_info)_)(?P<year>\d{4})_h(?P<half>[12])$"
)

EXCEPTIONS_TABLE = "order_tracking_exceptions"
MAINTENANCE_LOG_TABLE = "order_tracking_maintenance_log"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

# Every backend we create tables on except Redshift, which has no indexes.
INDEXED_DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb")


def _index(name: str, *columns: sa.Column, **kw) -> sa.Index:
    """An index that is never sent to Redshift."""
    return sa.Index(name, *columns, **kw).ddl_if(dialect=INDEXED_DIALECTS)


@dataclass(frozen=True)
class Tables:
    """The project's tables for one set of schema names."""

    metadata: sa.MetaData
    settings: Settings
    # source (MySQL kuaisong)
    src_ecs: sa.Table
    src_uti: sa.Table
    src_uts: sa.Table
    # warehouse settlement_public
    mart_ecs: sa.Table
    mart_uti: sa.Table
    mart_uts: sa.Table
    raw_ecs: sa.Table
    raw_uti: sa.Table
    raw_uts: sa.Table
    # warehouse settlement_ods
    exceptions: sa.Table
    maintenance_log: sa.Table

    @property
    def source_tables(self) -> list[sa.Table]:
        return [self.src_ecs, self.src_uti, self.src_uts]

    @property
    def pipeline_tables(self) -> list[sa.Table]:
        return [self.mart_ecs, self.mart_uti, self.mart_uts, self.raw_ecs, self.raw_uti, self.raw_uts]

    @property
    def ods_tables(self) -> list[sa.Table]:
        return [self.exceptions, self.maintenance_log]

    def hist_uts(self, year: int, half: int) -> sa.Table:
        return self._hist(HIST_UTS_PREFIX, year, half)

    def hist_ecs(self, year: int, half: int) -> sa.Table:
        return self._hist(HIST_ECS_PREFIX, year, half)

    def hist_by_name(self, name: str) -> sa.Table:
        m = HIST_RE.match(name)
        if not m:
            raise ValueError(f"{name!r} is not a history table name")
        return self._hist(m["prefix"], int(m["year"]), int(m["half"]))

    def _hist(self, prefix: str, year: int, half: int) -> sa.Table:
        if half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, not {half}")
        name = f"{prefix}{year:04d}_h{half}"
        key = f"{self.settings.mart_schema}.{name}"
        if key in self.metadata.tables:
            return self.metadata.tables[key]
        if prefix == HIST_UTS_PREFIX:
            return _uts_like(self.metadata, name, self.settings.mart_schema, "pathtime")
        return _ecs_like(self.metadata, name, self.settings.mart_schema)


def _ecs_like(md: sa.MetaData, name: str, schema: str, *, source: bool = False) -> sa.Table:
    extra: dict = {}
    if not source:
        # mart_ecs is queried by partner first (spec: SORTKEY(partner_id, add_time, order_id)).
        extra = {
            "redshift_diststyle": "KEY",
            "redshift_distkey": "order_id",
            "redshift_sortkey": ("partner_id", "add_time", "order_id"),
        }
    cols = [
        sa.Column("order_id", ORDER_ID, primary_key=source, nullable=False, autoincrement=False),
        sa.Column("partner_id", sa.Integer),
        sa.Column("add_time", TS),
    ]
    t = sa.Table(name, md, *cols, schema=schema, **extra)
    if not source:
        _index(f"ix_{name}_order_id", t.c.order_id)
    _index(f"ix_{name}_add_time", t.c.add_time)
    return t


def _uti_like(md: sa.MetaData, name: str, schema: str, *, source: bool = False) -> sa.Table:
    extra: dict = {}
    if not source:
        extra = {
            "redshift_diststyle": "KEY",
            "redshift_distkey": "order_id",
            "redshift_sortkey": ("update_time", "order_id"),
        }
    t = sa.Table(
        name,
        md,
        sa.Column("order_id", ORDER_ID, primary_key=source, nullable=False, autoincrement=False),
        sa.Column("update_time", TS),
        schema=schema,
        **extra,
    )
    _index(f"ix_{name}_update_time", t.c.update_time)
    if not source:
        _index(f"ix_{name}_order_id", t.c.order_id)
    return t


def _uts_like(md: sa.MetaData, name: str, schema: str, time_col: str, *, with_id: bool = False) -> sa.Table:
    cols = []
    if with_id:
        cols.append(sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False))
    cols += [sa.Column("order_id", ORDER_ID, nullable=False), sa.Column(time_col, TS)]
    t = sa.Table(
        name,
        md,
        *cols,
        schema=schema,
        redshift_diststyle="KEY",
        redshift_distkey="order_id",
        redshift_sortkey=("order_id", time_col),
    )
    # (order_id, time) answers both "any row for this order" and "MAX(time) per order".
    _index(f"ix_{name}_order_time", t.c.order_id, t.c[time_col])
    _index(f"ix_{name}_{time_col.lower()}", t.c[time_col])
    return t


def build_tables(settings: Settings) -> Tables:
    md = sa.MetaData()
    src, mart, ods = settings.source_schema, settings.mart_schema, settings.ods_schema
    exceptions = sa.Table(
        EXCEPTIONS_TABLE,
        md,
        sa.Column("exception_id", _ID, sa.Identity(), primary_key=True, redshift_identity=(1, 1)),
        sa.Column("order_id", ORDER_ID, nullable=False),
        sa.Column("exception_type", sa.String(64), nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("notes", sa.String(1024)),
        sa.Column("resolved_at", TS),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("resolution_notes", sa.String(1024)),
        # Issue 23, added by init-db to older tables (exceptions_store.follow_up_columns): the
        # source verdict of Tests 1-2 and the run in which an open exception first passed again.
        sa.Column("source_verdict", sa.String(32)),
        sa.Column("source_detail", sa.String(1024)),
        sa.Column("passing_since", TS),  # that run's as_of
        sa.Column("passing_run", sa.String(128)),
        schema=ods,
        redshift_diststyle="KEY",
        redshift_distkey="order_id",
        redshift_sortkey=("exception_type", "detected_at"),
        implicit_returning=False,  # Redshift has no RETURNING
    )
    _index(f"ix_{EXCEPTIONS_TABLE}_type_open", exceptions.c.exception_type, exceptions.c.resolved_at)
    # Belt and braces where the backend can: at most one open row per (order, type). Redshift
    # enforces no uniqueness, so the writer locks the table as well (exceptions_store).
    sa.Index(
        f"uq_{EXCEPTIONS_TABLE}_open",
        exceptions.c.order_id,
        exceptions.c.exception_type,
        unique=True,
        postgresql_where=exceptions.c.resolved_at.is_(None),
        sqlite_where=exceptions.c.resolved_at.is_(None),
    ).ddl_if(dialect=("postgresql", "sqlite"))

    maintenance_log = sa.Table(
        MAINTENANCE_LOG_TABLE,
        md,
        sa.Column("log_id", _ID, sa.Identity(), primary_key=True, redshift_identity=(1, 1)),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_name", sa.String(64)),
        sa.Column("table_name", sa.String(256), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer),
        sa.Column("sql_text", sa.String(1024)),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("rows_before", sa.BigInteger),
        sa.Column("rows_after", sa.BigInteger),
        sa.Column("ghost_rows_before", sa.BigInteger),
        sa.Column("ghost_rows_after", sa.BigInteger),
        sa.Column("unsorted_pct_before", sa.Float),
        sa.Column("unsorted_pct_after", sa.Float),
        sa.Column("stats_off_before", sa.Float),
        sa.Column("stats_off_after", sa.Float),
        sa.Column("size_before", sa.BigInteger),
        sa.Column("size_after", sa.BigInteger),
        sa.Column("error", sa.String(1024)),
        schema=ods,
        # Redshift has no INSERT ... RETURNING, which SQLAlchemy would add to fetch log_id.
        implicit_returning=False,
        redshift_diststyle="EVEN",
        redshift_sortkey=("started_at",),
    )
    _index(
        f"ix_{MAINTENANCE_LOG_TABLE}_table_started",
        maintenance_log.c.table_name,
        maintenance_log.c.started_at,
    )

    return Tables(
        metadata=md,
        settings=settings,
        src_ecs=_ecs_like(md, "ecs_order_info", src, source=True),
        src_uti=_uti_like(md, "uni_tracking_info", src, source=True),
        src_uts=_uts_like(md, "uni_tracking_spath", src, "pathTime", with_id=True),
        mart_ecs=_ecs_like(md, "mart_ecs_order_info", mart),
        mart_uti=_uti_like(md, "mart_uni_tracking_info", mart),
        mart_uts=_uts_like(md, "mart_uni_tracking_spath", mart, "pathtime"),
        raw_ecs=_ecs_like(md, "ecs_order_info_raw", mart),
        raw_uti=_uti_like(md, "uni_tracking_info_raw", mart),
        raw_uts=_uts_like(md, "uni_tracking_spath_raw", mart, "pathtime", with_id=True),
        exceptions=exceptions,
        maintenance_log=maintenance_log,
    )


# --- creating -----------------------------------------------------------------------------


def schema_statements(dialect: Dialect, schemas: Iterable[str]) -> list[str]:
    """CREATE SCHEMA (MariaDB: DATABASE) IF NOT EXISTS; none for SQLite (schemas are ATTACHed files)."""
    backend = dialect.name
    keyword = {"postgresql": "SCHEMA", "redshift": "SCHEMA", "mysql": "DATABASE", "mariadb": "DATABASE"}
    if backend not in keyword:
        return []
    quote = dialect.identifier_preparer.quote_identifier
    return [f"CREATE {keyword[backend]} IF NOT EXISTS {quote(schema)}" for schema in schemas]


def ensure_schemas(conn: Connection, schemas: Iterable[str]) -> None:
    for statement in schema_statements(conn.dialect, schemas):
        conn.execute(sa.text(statement))


def _schemas_of(tables: Iterable[sa.Table]) -> list[str]:
    return sorted({t.schema for t in tables if t.schema})


def create_tables(engine: Engine, tables: Iterable[sa.Table]) -> list[tuple[str, bool]]:
    """Create the missing ones among ``tables``; return ``(schema.table, created)`` per table.

    Idempotent and additive: an existing table is left exactly as it is.
    """
    tables = list(tables)
    report: list[tuple[str, bool]] = []
    with engine.begin() as conn:
        ensure_schemas(conn, _schemas_of(tables))
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for table in tables:
            exists = inspector.has_table(table.name, schema=table.schema)
            if not exists:
                # Checked just above; checkfirst would ask the catalog again, differently per dialect.
                table.create(conn, checkfirst=False)  # indexes come with the table (not on Redshift)
            report.append((f"{table.schema}.{table.name}", not exists))
    return report


def require_table(engine: Engine, table: sa.Table) -> None:
    """Fail in one line pointing at ``init-db`` when ``table`` does not exist: only ``init-db``
    creates anything (the DQ user may lack CREATE on the schema, and should)."""
    with engine.connect() as conn:
        exists = sa.inspect(conn).has_table(table.name, schema=table.schema)
    if not exists:
        # Name the database checked: a URL naming another database (``.../otherdb``) is as likely
        # as a missing init-db, and init-db there would not help (issue 28). Our query parameters
        # (timeouts, plugins) say nothing about where; the password is never shown.
        where = engine.url.set(query={}).render_as_string(hide_password=True)
        raise UserError(
            f"table {table.schema}.{table.name} does not exist in warehouse database "
            f"{engine.url.database!r} ({where}); run `python -m order_tracking init-db` first, "
            "or point the warehouse URL at the database that has it"
        )


def redshift_ddl(tables: Iterable[sa.Table]) -> list[str]:
    """Every DDL statement ``create_tables`` sends to Redshift for ``tables`` missing there, in
    order: CREATE SCHEMA IF NOT EXISTS, then each CREATE TABLE (DISTKEY/SORTKEY, IDENTITY) with
    whatever else SQLAlchemy emits for it (no indexes: ``INDEXED_DIALECTS``)."""
    tables = list(tables)
    statements: list[str] = []

    def capture(ddl: sa.schema.ExecutableDDLElement, *_args, **_kw) -> None:
        statements.append(str(ddl.compile(dialect=mock.dialect)).strip())

    # A mock engine runs the same DDL machinery as ``Table.create`` (ddl_if included), sending nothing.
    mock = sa.create_mock_engine("redshift+psycopg2://", capture)
    for table in tables:
        table.create(mock, checkfirst=False)
    return schema_statements(mock.dialect, _schemas_of(tables)) + statements


_PG_ATTRIBUTE = sa.table(
    "pg_attribute",
    sa.column("attrelid"),
    sa.column("attname"),
    sa.column("atttypid"),
    sa.column("atttypmod"),
    sa.column("attnum"),
    sa.column("attisdropped"),
    schema="pg_catalog",
)
_PG_CLASS = sa.table(
    "pg_class", sa.column("oid"), sa.column("relname"), sa.column("relnamespace"), schema="pg_catalog"
)
_PG_NAMESPACE = sa.table("pg_namespace", sa.column("oid"), sa.column("nspname"), schema="pg_catalog")


def table_columns(conn: Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, type as the database spells it) of every column of ``schema.table``, in order.

    PostgreSQL and Redshift are read from pg_catalog directly: sqlalchemy-redshift 1.0.0's
    ``get_columns`` fails under SQLAlchemy 2.1 (``_reflect_type() got multiple values for argument
    'type_description'``), and ``format_type`` gives the exact declared type (``character
    varying(20)``) to compare two tables by.
    """
    if conn.dialect.name not in ("postgresql", "redshift"):
        return [(c["name"], str(c["type"])) for c in sa.inspect(conn).get_columns(table, schema=schema)]
    a, c, n = _PG_ATTRIBUTE, _PG_CLASS, _PG_NAMESPACE
    query = (
        sa.select(a.c.attname, sa.func.format_type(a.c.atttypid, a.c.atttypmod))
        .select_from(a.join(c, a.c.attrelid == c.c.oid).join(n, c.c.relnamespace == n.c.oid))
        .where(n.c.nspname == schema, c.c.relname == table, a.c.attnum > 0, sa.not_(a.c.attisdropped))
        .order_by(a.c.attnum)
    )
    return [(str(name), str(type_)) for name, type_ in conn.execute(query)]


# Types the rules can compare with the mart's BIGINT order_id, as table_columns spells them
# (PostgreSQL/Redshift ``format_type``: ``bigint``, ``numeric(20,0)``; SQLAlchemy: ``BIGINT``).
# Anything else (``character varying(32)``, ``text``) fails the whole check on PostgreSQL and
# Redshift: ``operator does not exist: text = bigint`` (issue 28).
_COMPARABLE_ORDER_ID = re.compile(
    r"^(big|small|tiny|medium)?int(eger)?\d?\b|^(numeric|decimal|real|float|double)\b", re.IGNORECASE
)


def hist_table_problem(columns: Iterable[tuple[str, str]]) -> str | None:
    """Why the rules cannot read a table named like a history table (its ``(name, type)``
    columns), or ``None`` when they can."""
    types = {name.lower(): type_ for name, type_ in columns}
    missing = [c for c in HIST_REQUIRED_COLUMNS if c not in types]
    if missing:
        return f"has no {', '.join(missing)} column"
    order_id = types["order_id"]
    if not _COMPARABLE_ORDER_ID.match(order_id.strip()):
        return f"its order_id column is {order_id}, not a number the rules can compare with BIGINT"
    return None


def classify_hist_tables(conn: Connection, schema: str, prefix: str) -> tuple[list[str], dict[str, str]]:
    """(history tables of one kind in ``schema``, look-alikes with the reason each is skipped):
    both oldest first."""
    inspector = sa.inspect(conn)
    named = sorted(
        n
        for n in inspector.get_table_names(schema=schema)
        if (m := HIST_RE.match(n)) and m["prefix"] == prefix
    )
    usable: list[str] = []
    look_alikes: dict[str, str] = {}
    for name in named:
        problem = hist_table_problem(table_columns(conn, schema, name))
        if problem is None:
            usable.append(name)
        else:
            look_alikes[name] = problem
    return usable, look_alikes


def find_hist_tables(conn: Connection, schema: str, prefix: str) -> tuple[list[str], list[str]]:
    """(history tables of one kind in ``schema``, look-alikes): both oldest first. A look-alike is
    named like a history table but lacks a column the rules read, or has one of the wrong type."""
    usable, look_alikes = classify_hist_tables(conn, schema, prefix)
    return usable, list(look_alikes)


def discover_hist_tables(conn: Connection, schema: str, prefix: str) -> list[str]:
    """History tables of one kind in ``schema`` that the rules can read, oldest first.

    - A table named like a history table but without the columns the rules read (a look-alike,
      e.g. a backup with other columns), or whose order_id the rules cannot compare (text), is
      skipped with a warning naming it and why; the others are used.
    - The catalog lists tables the user may not read (sqlalchemy-redshift reflects through
      ``pg_class``): a history table without SELECT fails here, in one line with the GRANT to
      run, rather than as a permission error in the middle of Tests 2 and 3.
    """
    from order_tracking.maintenance import privileges

    usable, look_alikes = classify_hist_tables(conn, schema, prefix)
    for name, problem in look_alikes.items():
        log.warning("skipping %s.%s: it is named like a history table but %s", schema, name, problem)
    privileges.require_select(conn, schema, usable)
    return usable
