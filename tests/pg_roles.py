"""A real PostgreSQL login role with only the privileges a test grants it (dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tests.conftest import PG_URL


@contextmanager
def restricted_role() -> Iterator[tuple[str, str, sa.Engine]]:
    """Yields (role name, its login URL, an admin engine to GRANT with); local PostgreSQL trusts
    every local login, so the role needs no password."""
    name = f"dq_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN")
    url = sa.make_url(PG_URL).set(username=name).render_as_string(hide_password=False)
    try:
        yield name, url, admin
    finally:
        with admin.connect() as conn:
            # Ends its sessions, revokes its grants and drops what it owns, then the role itself.
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
            )
            conn.exec_driver_sql(f"DROP OWNED BY {name}")
            conn.exec_driver_sql(f"DROP ROLE {name}")
        admin.dispose()


def grant_read(admin: sa.Engine, role: str, *schemas: str) -> None:
    """USAGE on each schema and SELECT on every table in it."""
    with admin.connect() as conn:
        for name in schemas:
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {name} TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO {role}")
