"""A fake Redshift for tests: the real sqlalchemy-redshift dialect over a fake DB-API connection.

Redshift cannot run here. The fake records every SQL string it receives (tests assert the exact
text), answers the dialect's start-up queries, ``svv_table_info`` / ``sys_vacuum_history`` and
any ``canned`` query with rows, and raises chosen errors for chosen statements (error paths).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy.dialects import registry
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2


class FakeRedshiftDialect(RedshiftDialect_psycopg2):
    """The real Redshift dialect minus psycopg2's C-level type registration on connect."""

    supports_statement_cache = True

    def on_connect(self):
        return None

    def _hstore_oids(self, dbapi_connection):
        return None


# Registered once, here: a second registration of the name elsewhere would replace it for every
# test collected after it.
registry.register("redshift.fakeredshift", __name__, "FakeRedshiftDialect")


class FakePgError(psycopg2.OperationalError):
    """A psycopg2 error with a chosen SQLSTATE (psycopg2 sets pgcode only from the server)."""

    def __init__(self, message: str, code: str = "XX000") -> None:
        super().__init__(message)
        self._code = code

    @property
    def pgcode(self) -> str:
        return self._code


class FakeRedshift:
    """Shared state of every fake connection: canned answers in, executed SQL out."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, Any, bool]] = []  # (sql, params, autocommit); also -- commit/rollback
        self.errors: dict[str, list[Exception]] = {}  # sql (or its start) -> exceptions raised in turn
        self.svv: dict[str, list[dict]] = {}  # table -> successive svv_table_info rows
        self.history: dict[str, list[dict]] = {}  # table -> sys_vacuum_history rows
        # (text the SQL contains, rows): the first match answers; checked before the rest
        self.canned: list[tuple[str, list[dict]]] = []
        # what the catalog says about the user: owner of every table unless ``owners`` says else
        self.user, self.superuser, self.database_owner = "dq", False, False
        self.owners: dict[str, str] = {}  # table -> owner
        self.no_select: set[str] = set()  # "schema.table" the user may not SELECT
        self.granted = False  # the user holds Redshift's VACUUM/ANALYZE system permission
        self.svv_readable = True  # svv_table_info shows the user some table
        self.vacuum_seconds = 0.0  # how long a VACUUM "runs"
        self.isolation = "read committed"  # what SHOW TRANSACTION ISOLATION LEVEL answers
        self.tables = {"order_tracking_maintenance_log"}  # what the dialect's catalog query finds
        self.active = self.max_active = 0  # VACUUMs running at the same moment
        self._lock = threading.Lock()

    def answer(self, sql: str, params: Any) -> list[dict]:
        errors = next((e for key, e in self.errors.items() if sql.startswith(key)), None)
        if errors:
            raise errors.pop(0)
        for needle, rows in self.canned:
            if needle in sql:
                return list(rows)
        low = sql.lower()
        if "pg_catalog.version()" in low:
            return [{"version": "PostgreSQL 8.0.2 on i686-pc-linux-gnu, Redshift 1.0.77467"}]
        if "current_schema()" in low:
            return [{"current_schema": "public"}]
        if "transaction isolation level" in low:
            return [{"transaction_isolation": self.isolation}]
        if "from pg_catalog.pg_class" in low and "svv_external_tables" in low:  # has_table
            return [
                {"relkind": "r", "schema_oid": 1, "schema": "settlement_ods", "rel_oid": 2, "relname": name,
                 "diststyle": "EVEN", "owner_id": 1, "owner_name": "dq", "view_definition": None,
                 "privileges": None}
                for name in sorted(self.tables)
                if f"relname = '{name}'" in sql
            ]  # fmt: skip
        if "current_user" in low and "from" not in low:
            return [{"current_user": self.user}]
        if "from pg_catalog.pg_user" in low:
            return [{"usesuper": self.superuser}]
        if "from pg_catalog.pg_tables" in low:
            return [{"tableowner": self.owners.get(params["tablename_1"], self.user)}]
        if "from pg_catalog.pg_database" in low:
            return [{"owner": self.database_owner}]
        if "has_table_privilege(" in low:
            keys = sorted(
                (k for k in params if k.startswith("has_table_privilege_")), key=lambda k: int(k[20:])
            )
            names = [params[k] for k in keys][0::2]  # (table, privilege) pairs
            return [{f"p{i}": n not in self.no_select for i, n in enumerate(names)}]
        if "from svv_system_privileges" in low:
            return [{"count": 1 if self.granted else 0}]
        if "from svv_user_grants" in low:
            return [{"count": 0}]
        if "from svv_table_info" in low and "limit" in low:  # does it show the user anything?
            return [{"anon_1": 1}] if self.svv_readable else []
        if "from svv_table_info" in low:
            rows = self.svv.get((params or {}).get("table_1"), [])
            return [rows.pop(0) if len(rows) > 1 else rows[0]] if rows else []
        if "from sys_vacuum_history" in low:
            return list(self.history.get(params["table_name_1"], []))
        if sql.startswith("VACUUM") and self.vacuum_seconds:
            with self._lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            time.sleep(self.vacuum_seconds)
            with self._lock:
                self.active -= 1
        return []

    def statements(self, prefix: tuple[str, ...] = ("VACUUM", "ANALYZE")) -> list[str]:
        return [sql for sql, _, _ in self.executed if sql.startswith(prefix)]

    def engine(self) -> sa.Engine:
        return sa.create_engine("redshift+fakeredshift://u@h/db", creator=lambda: FakeConn(self))


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.connection = conn
        self.description = None
        self.rowcount = -1
        self._rows: list[tuple] = []

    def execute(self, sql: str, params: Any = None) -> None:
        state = self.connection.state
        state.executed.append((sql, dict(params or {}), self.connection.autocommit))
        rows = state.answer(sql, params or {})
        if rows:
            self.description = [(k, None, None, None, None, None, None) for k in rows[0]]
        elif sql.lstrip().upper().startswith(("SELECT", "SHOW")):
            self.description = [("column", None, None, None, None, None, None)]  # no rows
        else:
            self.description = None
        self._rows = [tuple(r.values()) for r in rows]
        self.rowcount = len(rows) if rows else 1

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        return self.fetchall()

    def close(self) -> None:
        pass


class FakeConn:
    notices: list[str] = []

    def __init__(self, state: FakeRedshift) -> None:
        self.state = state
        self.autocommit = False

    def cursor(self, *args, **kwargs) -> FakeCursor:
        return FakeCursor(self)

    def set_isolation_level(self, level: int) -> None:
        self.autocommit = level == 0  # psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT

    def commit(self) -> None:
        self.state.executed.append(("-- commit", {}, self.autocommit))

    def rollback(self) -> None:
        self.state.executed.append(("-- rollback", {}, self.autocommit))

    def close(self) -> None:
        pass
