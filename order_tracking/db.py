"""Engines are created here and nowhere else.

SQLite stands in for a server with schemas by ATTACHing one file per schema. GX creates its own
engines from a URL string, so the ATTACH lives in a SQLAlchemy URL plugin
(``?plugin=order_tracking_attach&attach=<schema>...``) rather than in engine kwargs: the same URL
then works in ``create_engine`` calls we do not control. Importing this module registers it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import plugins
from sqlalchemy.engine import URL, CreateEnginePlugin, Engine, make_url

from order_tracking.errors import UserError

PLUGIN_NAME = "order_tracking_attach"
DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "redshift": "redshift+psycopg2",
}


class SQLiteAttachPlugin(CreateEnginePlugin):
    """ATTACH ``<main stem>.<schema>.db`` beside the main file for every ``attach=`` schema."""

    def __init__(self, url: URL, kwargs: dict) -> None:
        super().__init__(url, kwargs)
        raw = url.query.get("attach", ())
        self.schemas = (raw,) if isinstance(raw, str) else tuple(raw)
        self.main_path = url.database

    def update_url(self, url: URL) -> URL:
        return url.difference_update_query(["attach"])

    def engine_created(self, engine: Engine) -> None:
        files = {s: schema_file(self.main_path, s) for s in self.schemas}

        @event.listens_for(engine, "connect")
        def _attach(dbapi_conn, _record) -> None:
            for schema, path in files.items():
                dbapi_conn.execute(f'ATTACH DATABASE ? AS "{schema}"', (path,))


plugins.register(PLUGIN_NAME, __name__, "SQLiteAttachPlugin")


def schema_file(main_path: str | None, schema: str) -> str:
    """File that holds ``schema`` for an embedded database whose main file is ``main_path``."""
    if not main_path or main_path == ":memory:":
        raise UserError("an embedded SQLite database needs a file path, not :memory:")
    p = Path(main_path)
    return str(p.with_name(f"{p.stem}.{schema}.db"))


def parse_url(url: str, role: str) -> URL:
    """Parse a SQLAlchemy URL, or fail with a line that names the setting (never the password)."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise UserError(f"{role} URL is not a valid SQLAlchemy URL: {redact(url)!r}") from None
    if not parsed.drivername:
        raise UserError(f"{role} URL has no database type: {redact(url)!r}")
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3 and mysql:// to mysqlclient, neither
    # of which we install: use the drivers we pin.
    driver = DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def redact(url: str | URL) -> str:
    """The URL with its password masked; tolerant of strings that do not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        text = str(url)
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return text


def with_schemas(url: str | URL, schemas: Iterable[str], role: str = "database") -> URL:
    """For SQLite, the URL that ATTACHes ``schemas``; other backends are returned unchanged."""
    parsed = parse_url(str(url) if isinstance(url, str) else url.render_as_string(False), role)
    if parsed.get_backend_name() != "sqlite":
        return parsed
    schema_file(parsed.database, "check")  # rejects :memory:
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed.update_query_pairs([("plugin", PLUGIN_NAME)] + [("attach", s) for s in schemas])


def create_engine(url: str | URL, schemas: Iterable[str] = (), role: str = "database") -> Engine:
    """The one place engines are made. ``schemas`` matters only for SQLite (ATTACH)."""
    final = with_schemas(url, schemas, role)
    kwargs: dict = {"future": True}
    if final.get_backend_name() == "sqlite":
        # Two monitor runs may write at once: wait for the lock instead of failing at once.
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        return sa.create_engine(final, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise UserError(f"{role} URL {redact(final)!r} cannot be used: {exc}") from None


def autocommit_engine(engine: Engine) -> Engine:
    """A second engine on ``engine``'s database whose connections are AUTOCOMMIT from the start.

    For statements that must run outside a transaction (VACUUM, ANALYZE). Switching pooled
    connections per statement (``execution_options(isolation_level=...)``) makes SQLAlchemy set
    the server's own level back when the connection returns to the pool, and a level it does not
    know (Redshift Serverless reports SNAPSHOT ISOLATION) fails there, after the statement ran.
    Same connection arguments and connect hooks (a new pool of the same kind); dispose it after use.
    """
    return sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", pool=engine.pool.recreate())


@functools.lru_cache(maxsize=8)
def shared_engine(url: str, schemas: tuple[str, ...], role: str = "database") -> Engine:
    """One engine (and connection pool) per URL for the life of the process.

    For code called once per checkpoint (GX actions): a new engine per call pays a fresh
    connection each time. Callers must not dispose it.
    """
    return create_engine(url, schemas, role)


def check_connection(engine: Engine, role: str) -> None:
    """Connect once so that a bad host or password fails here, in one clear line."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise UserError(f"cannot connect to {role} {redact(engine.url)}: {short_reason(exc)}") from None


def short_reason(exc: BaseException) -> str:
    """First line of a driver error, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]


def sqlite_url_for_path(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"
