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


# Redshift's RBAC: VACUUM and ANALYZE are system permissions granted to roles; the system-defined
# roles sys:operator (and sys:dba, sys:superuser, which inherit it) carry both.
SVV_SYSTEM_PRIVILEGES = sa.table(
    "svv_system_privileges",
    sa.column("system_privilege"),
    sa.column("identity_name"),
    sa.column("identity_type"),
)
SVV_USER_GRANTS = sa.table("svv_user_grants", sa.column("user_name"), sa.column("role_name"))
OPERATOR_ROLES = ("sys:operator", "sys:dba", "sys:superuser")


@dataclass(frozen=True)
class VacuumRights:
    """Whether the current user may VACUUM (or ANALYZE: ``operation``) ``table``; Redshift and
    PostgreSQL skip a table the user may not maintain, silently. ``None`` fields: the catalog did
    not say (e.g. the table is not visible to the user).

    Redshift allows a superuser, the table owner, a user granted the VACUUM/ANALYZE permission,
    and a database owner only for tables shared to its database (a datashare; the tables this
    tool maintains are the database's own). PostgreSQL allows a superuser, the table owner and
    the database owner.
    """

    table: str  # schema.table as SQL spells it
    user: str | None
    owner: str | None
    superuser: bool | None
    database_owner: bool | None = None
    granted: bool | None = False  # Redshift's VACUUM/ANALYZE system permission
    operation: str = "VACUUM"
    dialect: str = "postgresql"

    @property
    def may_vacuum(self) -> bool | None:
        db_owner = bool(self.database_owner) and self.dialect != "redshift"
        if self.superuser or db_owner or self.granted or (self.owner is not None and self.owner == self.user):
            return True
        if self.superuser is None or self.owner is None or self.granted is None:
            return None
        return False

    @property
    def who_may(self) -> str:
        """Why the user may not: the rule the product checked."""
        if self.dialect == "redshift":
            return (
                f"{self.user} is neither the owner ({self.owner}) nor a superuser, nor granted the "
                f"{self.operation} permission (a database owner counts only for tables shared to it)"
            )
        return f"{self.user} is neither the owner ({self.owner}) nor a superuser"

    @property
    def fix(self) -> str:
        grant = ""
        if self.dialect == "redshift":
            grant = f'GRANT ROLE "sys:operator" TO {self.user}; (it carries VACUUM and ANALYZE), '
        return (
            f"run it as the owner of {self.table} ({self.owner or 'unknown'}) or a superuser, {grant}or "
            f"ALTER TABLE {self.table} OWNER TO {self.user};"
        )


def granted_permission(conn: Connection, operation: str, user: str) -> bool | None:
    """Redshift: is ``user`` granted the ``operation`` system permission (directly, through a role,
    or through sys:operator)? None when the views cannot be read; False on PostgreSQL (none such
    before version 17). The reads come last on ``conn``: a failure rolls its transaction back."""
    if conn.dialect.name != "redshift":
        return False
    p, g = SVV_SYSTEM_PRIVILEGES, SVV_USER_GRANTS
    roles = sa.select(g.c.role_name).where(g.c.user_name == user)
    direct = (
        sa.select(sa.func.count())
        .select_from(p)
        .where(
            p.c.system_privilege == operation,
            sa.or_(
                sa.and_(p.c.identity_type == "user", p.c.identity_name == user),
                sa.and_(p.c.identity_type == "role", p.c.identity_name.in_(roles)),
            ),
        )
    )
    operator = (
        sa.select(sa.func.count())
        .select_from(g)
        .where(g.c.user_name == user, g.c.role_name.in_(OPERATOR_ROLES))
    )
    try:
        return bool(conn.execute(direct).scalar_one() or conn.execute(operator).scalar_one())
    except sa.exc.DBAPIError:
        conn.rollback()
        return None


def vacuum_rights(conn: Connection, schema: str, table: str, operation: str = "VACUUM") -> VacuumRights:
    name = table_name(conn.dialect, schema, table)
    if not has_users(conn.dialect):
        return VacuumRights(name, None, None, True, operation=operation, dialect=conn.dialect.name)
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
    allowed = superuser or owner == user
    return VacuumRights(
        name,
        user,
        owner,
        None if superuser is None else bool(superuser),
        None if db_owner is None else bool(db_owner),
        granted=False if allowed else granted_permission(conn, operation, user or ""),
        operation=operation,
        dialect=conn.dialect.name,
    )
