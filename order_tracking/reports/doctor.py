"""``doctor``: a preflight of the real deployment target, one line per check, nothing written.

Every check reads the catalog (privileges, owners, table lists) or runs a statement that reads no
rows (``SELECT ... LIMIT 0``); none writes data. A failing check carries the exact GRANT or
statement that fixes it. What is checked, and why:

- both servers answer (the warehouse's isolation level, and that it accepts autocommit, which
  every VACUUM needs);
- the schemas, and every table the rules read (mart, raw, each discovered history table; the
  MySQL source tables) exist and may be SELECTed;
- the two tables we own exist and may be written (exceptions: SELECT, INSERT, UPDATE, plus
  temporary tables for the staged write; maintenance log: SELECT, INSERT);
- the user may VACUUM the three mart tables (owner or superuser; on Redshift also a user granted
  the VACUUM permission, on PostgreSQL the database owner: anything else is a silent no-op) and, on
  Redshift, sees them in ``svv_table_info`` (visible only to superusers unless
  ``GRANT SELECT ON svv_table_info TO <user>;``, else the vacuum figures are unknown).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking import db, schema
from order_tracking.db import redact, short_reason
from order_tracking.maintenance import privileges
from order_tracking.maintenance.metrics import SVV_TABLE_INFO
from order_tracking.settings import Settings

OK, WARN, FAIL = "OK", "WARN", "FAIL"
INIT_DB = "python -m order_tracking init-db"


@dataclass(frozen=True)
class Check:
    status: str
    what: str
    fix: str | None = None

    def line(self) -> str:
        return f"{self.status:<4} {self.what}" + (f"; fix: {self.fix}" if self.fix else "")


def _name(conn: Connection, table: sa.Table) -> str:
    return privileges.table_name(conn.dialect, table.schema, table.name)


def _connect(engine: Engine, role: str) -> tuple[Connection | None, Check]:
    try:
        conn = engine.connect()
        conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        return None, Check(FAIL, f"{role}: cannot connect to {redact(engine.url)}: {short_reason(exc)}",
                           f"check the {role} URL, the network path and the credentials")  # fmt: skip
    user = privileges.current_user(conn) if role == "warehouse" else None
    who = f" as {user}" if user else ""
    return conn, Check(OK, f"{role}: connected to {redact(engine.url)} ({engine.dialect.name}){who}")


# --- warehouse ---------------------------------------------------------------------------------


def _schemas(conn: Connection, names: list[str], user: str | None) -> Iterator[Check]:
    existing = set(sa.inspect(conn).get_schema_names())
    for name in names:
        if conn.dialect.name != "sqlite" and name not in existing:
            yield Check(
                FAIL,
                f"schema {name} does not exist",
                f"check the ORDER_TRACKING_*_SCHEMA settings; {INIT_DB}",
            )
        elif not privileges.schema_usage(conn, name):
            yield Check(
                FAIL, f"schema {name}: no USAGE privilege", f"GRANT USAGE ON SCHEMA {name} TO {user};"
            )
        else:
            yield Check(OK, f"schema {name}: usable")


def _readable(
    conn: Connection, tables: list[sa.Table], user: str | None, missing_fix: str
) -> Iterator[Check]:
    inspector = sa.inspect(conn)
    present = [t for t in tables if inspector.has_table(t.name, schema=t.schema)]
    for t in tables:
        if t not in present:
            yield Check(FAIL, f"{_name(conn, t)} does not exist", missing_fix)
    allowed = privileges.table_privileges(conn, [(t.schema, t.name) for t in present], "SELECT")
    for t in present:
        if allowed[(t.schema, t.name)]:
            yield Check(OK, f"{_name(conn, t)}: SELECT granted")
        else:
            yield Check(
                FAIL,
                f"{_name(conn, t)}: no SELECT privilege",
                privileges.grant("SELECT", [_name(conn, t)], user),
            )


def _history(
    conn: Connection, settings: Settings, tables: schema.Tables, user: str | None
) -> Iterator[Check]:
    mart = settings.mart_schema
    for prefix in (schema.HIST_UTS_PREFIX, schema.HIST_ECS_PREFIX):
        explicit = settings.hist_uts_tables if prefix == schema.HIST_UTS_PREFIX else None
        if explicit is not None:
            names, look_alikes = list(explicit), {}
        else:
            names, look_alikes = schema.classify_hist_tables(conn, mart, prefix)
        for name, reason in look_alikes.items():  # the reason: a missing column or its type
            yield Check(WARN, f"{mart}.{name}: named like a history table but {reason}; the checks skip it")
        if not names:
            yield Check(WARN, f"no history tables {mart}.{prefix}<YYYY>_h<1|2> found")
        yield from _readable(conn, [tables.hist_by_name(n) for n in names], user,
                             "remove it from ORDER_TRACKING_HIST_UTS_TABLES")  # fmt: skip


def _writable(conn: Connection, table: sa.Table, needed: tuple[str, ...], user: str | None) -> Check:
    name = _name(conn, table)
    if not sa.inspect(conn).has_table(table.name, schema=table.schema):
        return Check(FAIL, f"{name} does not exist", INIT_DB)
    key = (table.schema, table.name)
    denied = [p for p in needed if not privileges.table_privileges(conn, [key], p)[key]]
    if denied:
        return Check(FAIL, f"{name}: no {', '.join(denied)} privilege",
                     privileges.grant(", ".join(denied), [name], user))  # fmt: skip
    return Check(OK, f"{name}: {', '.join(needed)} granted")


def _vacuum(conn: Connection, settings: Settings, marts: list[sa.Table]) -> Iterator[Check]:
    inspector = sa.inspect(conn)
    for t in marts:
        if not inspector.has_table(t.name, schema=t.schema):
            continue  # already reported as missing
        rights = privileges.vacuum_rights(conn, t.schema, t.name)
        if rights.may_vacuum:
            yield Check(OK, f"VACUUM {rights.table}: allowed ({_who_may(conn)})")
        elif rights.may_vacuum is None:
            yield Check(
                WARN,
                f"VACUUM {rights.table}: could not read the table owner or the VACUUM permission",
                rights.fix,
            )
        else:
            yield Check(FAIL, f"VACUUM {rights.table}: {rights.who_may}, so VACUUM would skip it silently",
                        rights.fix)  # fmt: skip


def _who_may(conn: Connection) -> str:
    if conn.dialect.name == "redshift":  # a database owner only for tables shared to its database
        return "owner, superuser or granted the VACUUM permission"
    return "owner, database owner or superuser"


def _svv_table_info(conn: Connection, marts: list[sa.Table], user: str | None) -> Iterator[Check]:
    svv = SVV_TABLE_INFO
    schema_name = marts[0].schema
    try:
        query = sa.select(svv.c.table).where(
            svv.c.schema == schema_name, svv.c.table.in_([t.name for t in marts])
        )
        seen = {r[0] for r in conn.execute(query)}
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        yield Check(
            FAIL,
            f"svv_table_info cannot be read: {short_reason(exc)}",
            f"GRANT SELECT ON svv_table_info TO {user};",
        )
        return
    if not seen and conn.execute(sa.select(sa.literal(1)).select_from(svv).limit(1)).first() is None:
        # Not an error on Redshift: to a user not granted it, the view shows no rows at all. It also
        # omits empty tables, so an empty warehouse looks the same: a warning with the GRANT.
        yield Check(
            WARN,
            f"svv_table_info shows {user} no table at all: the tables are empty, or it is not granted "
            "(visible only to superusers unless granted; vacuum and analyze figures would be unknown)",
            f"GRANT SELECT ON svv_table_info TO {user};",
        )
        return
    readable = privileges.table_privileges(conn, [(t.schema, t.name) for t in marts], "SELECT")
    for t in marts:
        name = _name(conn, t)
        if t.name in seen:
            yield Check(OK, f"svv_table_info shows {name}")
        elif not readable[(t.schema, t.name)]:
            yield Check(FAIL, f"svv_table_info hides {name} (no SELECT): vacuum figures would be unknown",
                        privileges.grant("SELECT", [name], user))  # fmt: skip
        else:
            yield Check(WARN, f"svv_table_info does not list {name}: it holds no data yet")


def _isolation(engine: Engine, conn: Connection) -> Iterator[Check]:
    if conn.dialect.name == "sqlite":
        return
    level = str(conn.exec_driver_sql("SHOW TRANSACTION ISOLATION LEVEL").scalar_one())
    yield Check(OK, f"transaction isolation level: {level}")
    autocommit = db.autocommit_engine(engine)  # what the vacuum runs its statements on
    try:
        with autocommit.connect() as auto:
            auto.execute(sa.text("SELECT 1"))
    except (sa.exc.DBAPIError, sa.exc.ArgumentError) as exc:
        yield Check(FAIL, f"an autocommit connection (every VACUUM needs one) fails: {short_reason(exc)}",
                    "check the warehouse driver and its isolation level")  # fmt: skip
    else:
        yield Check(OK, "autocommit connections work (VACUUM runs outside a transaction)")
    finally:
        autocommit.dispose()


def _follow_up_columns(conn: Connection, tables: schema.Tables) -> Iterator[Check]:
    """An exceptions table from before issue 23: runs work, but store no source verdicts."""
    from order_tracking.checks.exceptions_store import follow_up_columns

    if not sa.inspect(conn).has_table(tables.exceptions.name, schema=tables.exceptions.schema):
        return
    missing = follow_up_columns.missing(conn, tables)
    if missing:
        yield Check(WARN, f"{_name(conn, tables.exceptions)} has no {', '.join(missing)} column: source "
                    "verdicts and passing runs are reported, not stored", INIT_DB)  # fmt: skip


def warehouse_checks(engine: Engine, settings: Settings) -> list[Check]:
    conn, connected = _connect(engine, "warehouse")
    checks = [connected]
    if conn is None:
        return checks
    tables = schema.build_tables(settings)
    marts = [tables.mart_uti, tables.mart_uts, tables.mart_ecs]
    try:
        user = privileges.current_user(conn)
        checks += list(_isolation(engine, conn))
        checks += list(_schemas(conn, [settings.mart_schema, settings.ods_schema], user))
        pipeline = "the pipeline creates it: check ORDER_TRACKING_MART_SCHEMA"
        checks += list(
            _readable(conn, [*marts, tables.raw_ecs, tables.raw_uti, tables.raw_uts], user, pipeline)
        )
        checks += list(_history(conn, settings, tables, user))
        checks.append(_writable(conn, tables.exceptions, ("SELECT", "INSERT", "UPDATE"), user))
        checks += list(_follow_up_columns(conn, tables))
        checks.append(_writable(conn, tables.maintenance_log, ("SELECT", "INSERT"), user))
        if privileges.temp_tables(conn):
            checks.append(Check(OK, "temporary tables allowed (staged exceptions write)"))
        else:
            database = conn.execute(sa.select(sa.func.current_database())).scalar_one()
            checks.append(Check(FAIL, "no TEMP privilege (the staged exceptions write needs it)",
                                f"GRANT TEMP ON DATABASE {database} TO {user};"))  # fmt: skip
        checks += list(_vacuum(conn, settings, marts))
        if conn.dialect.name == "redshift":
            checks += list(_svv_table_info(conn, marts, user))
    except sa.exc.DBAPIError as exc:
        checks.append(Check(FAIL, f"warehouse: a catalog query failed: {short_reason(exc)}"))
    finally:
        conn.close()
    return checks


# --- source --------------------------------------------------------------------------------------


def _mysql_user(conn: Connection) -> str:
    """The account as a MySQL GRANT names it: 'user'@'host'."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return "<dq user>"
    user, _, host = str(conn.execute(sa.select(sa.func.current_user())).scalar_one()).partition("@")
    return f"'{user}'@'{host or '%'}'"


def source_checks(engine: Engine, settings: Settings) -> list[Check]:
    conn, connected = _connect(engine, "source")
    checks = [connected]
    if conn is None:
        return checks
    try:
        user = _mysql_user(conn)
        inspector = sa.inspect(conn)
        for t in schema.build_tables(settings).source_tables:
            name = f"{t.schema}.{t.name}"
            grant = f"GRANT SELECT ON {name} TO {user};"
            if not inspector.has_table(t.name, schema=t.schema):
                # MySQL hides tables the user has no privilege on: missing or hidden look the same.
                checks.append(Check(FAIL, f"source {name} not found (missing, or hidden from the user)",
                                    f"check ORDER_TRACKING_SOURCE_SCHEMA, or {grant}"))  # fmt: skip
                continue
            try:
                conn.execute(sa.select(sa.literal(1)).select_from(t).limit(0))  # reads no row
            except sa.exc.DBAPIError as exc:
                conn.rollback()
                checks.append(Check(FAIL, f"source {name} cannot be read: {short_reason(exc)}", grant))
            else:
                checks.append(Check(OK, f"source {name}: readable"))
    finally:
        conn.close()
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
