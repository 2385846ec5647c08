"""What the connected warehouse user may do, read from the catalog without touching any data.

PostgreSQL and Redshift share the functions used here (``has_table_privilege``,
``has_schema_privilege``, ``pg_user.usesuper``, ``pg_tables.tableowner``, ``pg_database`` and
``pg_get_userbyid``: all present on Redshift). SQLite has no users: everything is allowed. Used
by history discovery (SELECT on each history table), the vacuum evidence (may this user vacuum
the table at all?) and ``doctor``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from order_tracking.errors import UserError

PG_USER = sa.table("pg_user", sa.column("usename"), sa.column("usesuper"), schema="pg_catalog")
PG_TABLES = sa.table(
    "pg_tables", sa.column("schemaname"), sa.column("tablename"), sa.column("tableowner"), schema="pg_catalog"
)
PG_DATABASE = sa.table("pg_database", sa.column("datname"), sa.column("datdba"), schema="pg_catalog")
WITH_USERS = ("postgresql", "redshift")


def has_users(dialect: Dialect) -> bool:
    return dialect.name in WITH_USERS


def table_name(dialect: Dialect, schema: str, table: str) -> str:
    """``schema.table`` as SQL spells it (quoted only where needed): for messages and GRANTs."""
    return dialect.identifier_preparer.format_table(sa.table(table, schema=schema))


def current_user(conn: Connection) -> str | None:
    if not has_users(conn.dialect):
        return None
    return str(conn.execute(sa.select(sa.func.current_user())).scalar_one())


def table_privileges(
    conn: Connection, tables: Sequence[tuple[str, str]], privilege: str
) -> dict[tuple[str, str], bool]:
    """``privilege`` (SELECT, INSERT, UPDATE, DELETE) of the current user on each (schema, table),
    in one query. The tables must exist."""
    if not tables or not has_users(conn.dialect):
        return {t: True for t in tables}
    checks = [
        sa.func.has_table_privilege(table_name(conn.dialect, s, t), privilege).label(f"p{i}")
        for i, (s, t) in enumerate(tables)
    ]
    row = conn.execute(sa.select(*checks)).one()
    return {t: bool(v) for t, v in zip(tables, row, strict=True)}


def schema_usage(conn: Connection, schema: str) -> bool:
    if not has_users(conn.dialect):
        return True
    return bool(conn.execute(sa.select(sa.func.has_schema_privilege(schema, "USAGE"))).scalar_one())


def temp_tables(conn: Connection) -> bool:
    """May the user create temporary tables (the staged exceptions write)?"""
    if not has_users(conn.dialect):
        return True
    query = sa.select(sa.func.has_database_privilege(sa.func.current_database(), "TEMP"))
    return bool(conn.execute(query).scalar_one())


def grant(privilege: str, names: Iterable[str], user: str | None) -> str:
    """The GRANT statement that gives ``user`` ``privilege`` on the named tables."""
    return f"GRANT {privilege} ON {', '.join(names)} TO {user or '<dq user>'};"


def require_select(conn: Connection, schema: str, tables: Sequence[str]) -> None:
    """Fail in one line, with the GRANT to run, unless the user may SELECT every table."""
    allowed = table_privileges(conn, [(schema, t) for t in tables], "SELECT")
    denied = [table_name(conn.dialect, s, t) for (s, t), ok in allowed.items() if not ok]
    if denied:
        user = current_user(conn)
        raise UserError(
            f"the warehouse user {user} may not read {', '.join(denied)} (no SELECT privilege); "
            f"run: {grant('SELECT', denied, user)}"
        )


@dataclass(frozen=True)
class VacuumRights:
    """Whether the current user may vacuum ``table``: owner, database owner or superuser
    (Redshift and PostgreSQL skip other tables silently). ``None`` fields: the catalog did not
    say (e.g. the table is not visible to the user)."""

    table: str  # schema.table as SQL spells it
    user: str | None
    owner: str | None
    superuser: bool | None
    database_owner: bool | None = None

    @property
    def may_vacuum(self) -> bool | None:
        if self.superuser or self.database_owner or (self.owner is not None and self.owner == self.user):
            return True
        if self.superuser is None or self.owner is None:
            return None
        return False

    @property
    def fix(self) -> str:
        return (
            f"run it as the owner of {self.table} ({self.owner or 'unknown'}) or a superuser, or "
            f"ALTER TABLE {self.table} OWNER TO {self.user};"
        )


def vacuum_rights(conn: Connection, schema: str, table: str) -> VacuumRights:
    name = table_name(conn.dialect, schema, table)
    if not has_users(conn.dialect):
        return VacuumRights(name, None, None, True)
    user = current_user(conn)
    superuser = conn.execute(sa.select(PG_USER.c.usesuper).where(PG_USER.c.usename == user)).scalar()
    owner = conn.execute(
        sa.select(PG_TABLES.c.tableowner).where(
            PG_TABLES.c.schemaname == schema, PG_TABLES.c.tablename == table
        )
    ).scalar()
    db = PG_DATABASE
    db_owner = conn.execute(
        sa.select(sa.func.pg_get_userbyid(db.c.datdba) == user).where(
            db.c.datname == sa.func.current_database()
        )
    ).scalar()
    return VacuumRights(
        name,
        user,
        owner,
        None if superuser is None else bool(superuser),
        None if db_owner is None else bool(db_owner),
    )
