"""The spec's vacuum plan (DAG 2) and the statement each step becomes in each warehouse dialect.

Core cannot express VACUUM or ANALYZE, so these are the only SQL strings built by hand here; the
identifiers go through the dialect's ``identifier_preparer`` so they are quoted exactly when needed.
Nothing in this module connects to anything: a dry run and the exact-SQL tests use it alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Dialect

from order_tracking.errors import UserError
from order_tracking.settings import MaintenanceSettings

VACUUM_DELETE_ONLY = "VACUUM DELETE ONLY"
VACUUM_SORT_ONLY = "VACUUM SORT ONLY"
ANALYZE = "ANALYZE"
VACUUM_OPERATIONS = (VACUUM_DELETE_ONLY, VACUUM_SORT_ONLY)

UTI = "mart_uni_tracking_info"
UTS = "mart_uni_tracking_spath"
ECS = "mart_ecs_order_info"
TABLE_ALIASES = {"uti": UTI, "uts": UTS, "ecs": ECS}

# The spec's task names, in the spec's order; each task runs its steps in order. ecs has two tasks
# because the spec runs SORT ONLY (then ANALYZE) as its own task after DELETE ONLY.
PLAN: dict[str, tuple[tuple[str, str], ...]] = {
    "vacuum_mart_uti": ((UTI, VACUUM_DELETE_ONLY), (UTI, ANALYZE)),
    "vacuum_mart_uts": ((UTS, VACUUM_DELETE_ONLY), (UTS, ANALYZE)),
    "vacuum_mart_ecs_delete": ((ECS, VACUUM_DELETE_ONLY),),
    "vacuum_mart_ecs_sort": ((ECS, VACUUM_SORT_ONLY), (ECS, ANALYZE)),
}

SUPPORTED_DIALECTS = ("redshift", "postgresql", "sqlite")


@dataclass(frozen=True)
class Statement:
    """One step of the plan in one dialect: ``sql`` to run, or ``skip_reason`` when there is none."""

    task: str
    table: str
    operation: str
    sql: str | None
    skip_reason: str | None = None

    @property
    def is_vacuum(self) -> bool:
        return self.operation in VACUUM_OPERATIONS


def check_dialect(dialect: Dialect) -> str:
    """The dialect's name, or a clear error for a warehouse this tool cannot maintain."""
    if dialect.name not in SUPPORTED_DIALECTS:
        raise UserError(f"vacuum supports a {', '.join(SUPPORTED_DIALECTS)} warehouse, not {dialect.name!r}")
    return dialect.name


def qualified(dialect: Dialect, schema: str, table: str) -> str:
    """``schema.table``, each part quoted only where the dialect needs it."""
    prep = dialect.identifier_preparer
    return f"{prep.quote_schema(schema)}.{prep.quote(table)}"


def statement_for(
    dialect: Dialect,
    schema: str,
    task: str,
    table: str,
    operation: str,
    options: MaintenanceSettings | None = None,
) -> Statement:
    """The SQL of one plan step for ``dialect``; PostgreSQL/SQLite use their nearest equivalents.

    ``options``: Redshift's opt-in ``BOOST`` (VACUUM) and ``PREDICATE COLUMNS`` (ANALYZE); other
    dialects have neither and ignore them.
    """
    name = check_dialect(dialect)
    target = qualified(dialect, schema, table)
    if name == "redshift":
        suffix = ""
        if options is not None and operation in VACUUM_OPERATIONS and options.boost:
            suffix = " BOOST"
        if options is not None and operation == ANALYZE and options.predicate_columns:
            suffix = " PREDICATE COLUMNS"
        return Statement(task, table, operation, f"{operation} {target}{suffix}")
    if operation == ANALYZE:
        return Statement(task, table, operation, f"ANALYZE {target}")
    if operation == VACUUM_SORT_ONLY:
        reason = f"{name} has no VACUUM SORT ONLY: it keeps no sort-key order to restore (Redshift only)"
        return Statement(task, table, operation, None, reason)
    if name == "postgresql":
        # Plain VACUUM is PostgreSQL's DELETE ONLY: it reclaims dead rows and never reorders.
        return Statement(task, table, operation, f"VACUUM {target}")
    # SQLite vacuums a whole database file; each schema is one ATTACHed file (db.py).
    quoted = dialect.identifier_preparer.quote_identifier(schema)
    return Statement(task, table, operation, f"VACUUM {quoted}")


def resolve_tasks(tasks: Iterable[str] | None = None, tables: Iterable[str] | None = None) -> list[str]:
    """The plan's task names selected by ``tasks`` and/or ``tables`` (aliases or full names).

    Both empty means the whole plan. Unknown names are an error that names them.
    """
    selected = list(PLAN)
    if tasks:
        wanted = [t.strip() for t in tasks if t.strip()]
        unknown = [t for t in wanted if t not in PLAN]
        if unknown:
            raise UserError(f"unknown vacuum task(s) {', '.join(unknown)}; choose from {', '.join(PLAN)}")
        selected = [t for t in selected if t in wanted]
    if tables:
        names = set()
        for raw in tables:
            key = raw.strip().lower()
            if not key:
                continue
            # Accept "schema.table" too, as people copy names from the plan output.
            key = key.rsplit(".", 1)[-1]
            full = TABLE_ALIASES.get(key, key)
            if full not in TABLE_ALIASES.values():
                raise UserError(
                    f"unknown table {raw.strip()!r} for vacuum; choose from "
                    f"{', '.join(TABLE_ALIASES)} or {', '.join(TABLE_ALIASES.values())}"
                )
            names.add(full)
        selected = [t for t in selected if any(table in names for table, _ in PLAN[t])]
    return selected


def plan_statements(
    dialect: Dialect,
    schema: str,
    tasks: Iterable[str] | None = None,
    options: MaintenanceSettings | None = None,
) -> list[Statement]:
    """Every statement of the selected tasks (default: all), in plan order."""
    chosen = resolve_tasks(tasks) if tasks is not None else list(PLAN)
    return [
        statement_for(dialect, schema, task, table, operation, options)
        for task in chosen
        for table, operation in PLAN[task]
    ]


def dialect_named(name: str) -> Dialect:
    """A dialect object for ``name``, for dry runs that connect to nothing."""
    if name == "redshift":
        from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

        return RedshiftDialect_psycopg2()
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

        return PGDialect_psycopg2()
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        return SQLiteDialect_pysqlite()
    raise UserError(f"no dialect {name!r}; choose from {', '.join(SUPPORTED_DIALECTS)}")
