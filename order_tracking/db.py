"""Engines are created here and nowhere else.

SQLite stands in for a server with schemas by ATTACHing one file per schema. GX creates its own
engines from a URL string, so the ATTACH lives in a SQLAlchemy URL plugin
(``?plugin=order_tracking_attach&attach=<schema>...``) rather than in engine kwargs: the same URL
then works in ``create_engine`` calls we do not control. Importing this module registers it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import plugins
from sqlalchemy.engine import URL, CreateEnginePlugin, Engine, make_url

from order_tracking.errors import UserError
from order_tracking.settings import Timeouts

log = logging.getLogger(__name__)

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

        @event.listens_for(engine, "handle_error")
        def _name_read_only_file(context) -> BaseException | None:
            # SQLite says "attempt to write a readonly database" without saying which of the
            # ATTACHed files: name it, so the user knows what to chmod.
            orig = context.original_exception
            if "readonly database" not in str(orig):
                return None
            paths = [p for p in (self.main_path, *files.values()) if p]
            stuck = [p for p in paths if Path(p).exists() and not os.access(p, os.W_OK)]
            stuck += [str(Path(p).parent) for p in paths[:1] if not os.access(Path(p).parent, os.W_OK)]
            where = ", ".join(stuck) if stuck else "one of " + ", ".join(paths)
            named = type(orig)(f"{orig} ({where} is not writable)")
            return sa.exc.OperationalError(context.statement, context.parameters, named)


plugins.register(PLUGIN_NAME, __name__, "SQLiteAttachPlugin")

TIMEOUT_PLUGIN_NAME = "order_tracking_timeouts"
_TIMEOUT_KEYS = ("statement_timeout_ms", "maintenance_statement_timeout_ms")
_MAINTENANCE = ("VACUUM", "ANALYZE")


def _is_maintenance(statement: str) -> bool:
    return statement.lstrip()[:7].upper().startswith(_MAINTENANCE)


def _set_statement_timeout(dbapi_conn, ms: int) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"SET statement_timeout TO {int(ms)}")
    finally:
        cursor.close()


def limit_maintenance_statements(engine: Engine, statement_ms: int, maintenance_ms: int) -> None:
    """VACUUM/ANALYZE on ``engine`` run under ``maintenance_ms``; the connection is set back after.

    They run alone on AUTOCOMMIT connections, so each SET takes effect at once. Engine events do
    not carry over to engines derived from this one (``autocommit_engine``): it calls this too.
    """
    if maintenance_ms == statement_ms:
        return

    def _restore(conn, statement: str) -> None:
        if _is_maintenance(statement):
            _set_statement_timeout(conn.connection.dbapi_connection, statement_ms)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany) -> None:
        if _is_maintenance(statement):
            _set_statement_timeout(cursor.connection, maintenance_ms)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany) -> None:
        _restore(conn, statement)

    @event.listens_for(engine, "handle_error")
    def _failed(ctx) -> None:
        if ctx.connection is not None and ctx.statement and not ctx.is_disconnect:
            try:
                _restore(ctx.connection, ctx.statement)
            except Exception:  # the statement's own error is the one to report
                log.debug("statement_timeout not restored after a failed VACUUM/ANALYZE", exc_info=True)


class StatementTimeoutPlugin(CreateEnginePlugin):
    """``SET statement_timeout`` on every new PostgreSQL/Redshift connection.

    ``?statement_timeout_ms=N`` (0: no limit) applies to every statement; VACUUM and ANALYZE get
    ``maintenance_statement_timeout_ms`` (``limit_maintenance_statements``).
    """

    def __init__(self, url: URL, kwargs: dict) -> None:
        super().__init__(url, kwargs)
        self.statement_ms = int(url.query.get("statement_timeout_ms", "0"))
        self.maintenance_ms = int(url.query.get("maintenance_statement_timeout_ms", "0"))

    def update_url(self, url: URL) -> URL:
        return url.difference_update_query(_TIMEOUT_KEYS)

    def engine_created(self, engine: Engine) -> None:
        statement_ms = self.statement_ms

        # A pool event: engines made on this pool (``autocommit_engine``) keep it.
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            _set_statement_timeout(dbapi_conn, statement_ms)
            dbapi_conn.commit()  # SET is transactional: a later ROLLBACK must not undo it

        limit_maintenance_statements(engine, statement_ms, self.maintenance_ms)


plugins.register(TIMEOUT_PLUGIN_NAME, __name__, "StatementTimeoutPlugin")


HANDSHAKE_PLUGIN_NAME = "order_tracking_mysql_handshake"


class MySQLHandshakePlugin(CreateEnginePlugin):
    """PyMySQL's handshake bounded by ``connect_timeout``; ``read_timeout`` from then on.

    PyMySQL bounds only the TCP connect by ``connect_timeout``: it then waits for the server's
    greeting under ``read_timeout`` (600 s by default), so a port that accepts and never answers
    held a run for 10 minutes whatever the connect timeout said (issue 28). The driver connects
    with ``read_timeout`` = ``connect_timeout``; once connected, the URL's ``read_timeout`` applies.
    PyMySQL has no public setter for it: ``_read_timeout`` is the attribute its ``_read_packet``
    applies before every read (PyMySQL 1.2.4, pinned; test_settings_effect proves the read limit
    still holds after connect, test_fault_injection the handshake limit).
    """

    def __init__(self, url: URL, kwargs: dict) -> None:
        super().__init__(url, kwargs)
        self.connect = url.query.get("connect_timeout")
        self.read = url.query.get("read_timeout")

    def update_url(self, url: URL) -> URL:
        if self.connect is None or self.read is None:
            return url
        return url.update_query_dict({"read_timeout": self.connect})

    def engine_created(self, engine: Engine) -> None:
        if self.connect is None or self.read is None:
            return
        read_secs = float(self.read)

        # A pool event: it runs for every new DBAPI connection, before anything else reads on it.
        @event.listens_for(engine, "connect")
        def _after_handshake(dbapi_conn, _record) -> None:
            if not hasattr(dbapi_conn, "_read_timeout"):  # a PyMySQL that changed: fail loudly
                raise RuntimeError("PyMySQL has no _read_timeout: the source read timeout cannot be set")
            dbapi_conn._read_timeout = read_secs


plugins.register(HANDSHAKE_PLUGIN_NAME, __name__, "MySQLHandshakePlugin")


def schema_file(main_path: str | None, schema: str) -> str:
    """File that holds ``schema`` for an embedded database whose main file is ``main_path``."""
    if not main_path or main_path == ":memory:":
        raise UserError("an embedded SQLite database needs a file path, not :memory:")
    p = Path(main_path)
    return str(p.with_name(f"{p.stem}.{schema}.db"))


def require_database(url: str, schemas: Iterable[str], role: str) -> None:
    """Refuse an embedded SQLite database whose files are missing, before anything connects.

    For commands with nothing to do on an empty database (reading, resolving): SQLite creates a
    missing file on connect and the ATTACH of every schema another, so a mistyped path would
    leave a directory of empty databases behind. Server URLs are left to the connection.
    """
    parsed = parse_url(url, role)
    if parsed.get_backend_name() != "sqlite":
        return
    files = [(parsed.database, "")] + [(schema_file(parsed.database, s), f" (schema {s})") for s in schemas]
    for path, which in files:
        if not Path(path).is_file():
            raise UserError(
                f"no database at {path}{which}: check the {role} URL "
                f"(--{role}-url or ORDER_TRACKING_{role.upper()}_URL), or create it with init-db"
            )


# Characters that must be percent-encoded inside a URL's user:password part. A password holding
# them unencoded parses "successfully" into the wrong password and host (``u:p@ss@h`` -> password
# ``p``, host ``ss@h``), or fails deep inside SQLAlchemy with a traceback.
_USERINFO_FORBIDDEN = re.compile(r"[@/?#\[\]]|%(?![0-9A-Fa-f]{2})")
ENCODE_HINT = "percent-encode special characters in the user name and password (e.g. @ as %40, # as %23)"


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """``(scheme, userinfo, host_and_rest)`` of a URL with a ``user[:password]@`` part, else None.

    The host part is what follows the LAST ``@``: passwords hold ``@`` more often than hosts do.
    """
    if "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    if "@" not in rest or rest.startswith("/"):
        return None
    userinfo, host = rest.rsplit("@", 1)
    return scheme, userinfo, host


def _check_userinfo(url: str, role: str) -> None:
    parts = _split_userinfo(url)
    if parts is not None and _USERINFO_FORBIDDEN.search(parts[1]):
        raise UserError(f"{role} URL {parts[0]}://***@{parts[2]} cannot be parsed: {ENCODE_HINT}")


def parse_url(url: str, role: str) -> URL:
    """Parse a SQLAlchemy URL, or fail with a line that names the setting (never the password)."""
    _check_userinfo(url, role)
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise UserError(f"{role} URL is not a valid SQLAlchemy URL: {redact(url)!r}; {ENCODE_HINT}") from None
    if not parsed.drivername:
        raise UserError(f"{role} URL has no database type: {redact(url)!r}")
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3 and mysql:// to mysqlclient, neither
    # of which we install: use the drivers we pin.
    driver = DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def redact(url: str | URL) -> str:
    """The URL with its password masked; no part of a password ever shows, parseable or not."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    text = str(url)
    parts = _split_userinfo(text)
    if parts is None:
        return text
    scheme, userinfo, host = parts
    if _USERINFO_FORBIDDEN.search(userinfo):
        # Where the user name ends and the password starts is unknowable: show neither.
        return f"{scheme}://***@{host}"
    user, has_password, _ = userinfo.partition(":")
    return f"{scheme}://{user}:***@{host}" if has_password else text


def with_schemas(url: str | URL, schemas: Iterable[str], role: str = "database") -> URL:
    """For SQLite, the URL that ATTACHes ``schemas``; other backends are returned unchanged."""
    parsed = parse_url(str(url) if isinstance(url, str) else url.render_as_string(False), role)
    if parsed.get_backend_name() != "sqlite":
        return parsed
    schema_file(parsed.database, "check")  # rejects :memory:
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed.update_query_pairs([("plugin", PLUGIN_NAME)] + [("attach", s) for s in schemas])


def _with_defaults(url: URL, pairs: dict[str, str]) -> URL:
    """``url`` plus the query parameters it does not already set (an explicit URL value wins)."""
    missing = [(k, v) for k, v in pairs.items() if k not in url.query]
    return url.update_query_pairs(missing) if missing else url


def _ms(secs: float) -> int:
    return int(secs * 1000)


def engine_url(
    url: str | URL, schemas: Iterable[str] = (), role: str = "database", timeouts: Timeouts | None = None
) -> URL:
    """The URL every engine is made from, ours and GX's: schemas (SQLite) and timeouts included.

    GX creates its own engine from a connection string, so connection limits travel in the URL:
    driver parameters where the driver has them (psycopg2 ``connect_timeout`` and TCP keepalives;
    PyMySQL ``connect_timeout``/``read_timeout``/``write_timeout``; SQLite's busy ``timeout``),
    the ``order_tracking_timeouts`` plugin for the server-side ``statement_timeout``, which
    PostgreSQL and Redshift both accept as a session setting, and the
    ``order_tracking_mysql_handshake`` plugin, which bounds PyMySQL's handshake by the connect timeout.
    """
    t = timeouts or Timeouts()  # the caller passes settings.timeouts; never the environment here
    final = with_schemas(url, schemas, role)
    backend = final.get_backend_name()
    connect = str(max(1, math.ceil(t.connect_secs)))
    if backend == "sqlite":
        return _with_defaults(final, {"timeout": str(t.sqlite_busy_secs)})
    if backend in ("mysql", "mariadb"):
        io = str(max(1, math.ceil(t.read_secs)))
        final = _with_defaults(final, {"connect_timeout": connect, "read_timeout": io, "write_timeout": io})
        # Appended: other plugins in the URL stay. It bounds the handshake by connect_timeout.
        return final.update_query_pairs([("plugin", HANDSHAKE_PLUGIN_NAME)], append=True)
    if backend in ("postgresql", "redshift"):
        final = _with_defaults(
            final,
            {
                "connect_timeout": connect,
                # A peer that vanished mid-query (no TCP answer) is noticed in about a minute.
                "keepalives": "1",
                "keepalives_idle": "30",
                "keepalives_interval": "10",
                "keepalives_count": "3",
            },
        )
        return final.update_query_pairs(
            [
                ("plugin", TIMEOUT_PLUGIN_NAME),  # appended: other plugins in the URL stay
                ("statement_timeout_ms", str(_ms(t.statement_secs))),
                ("maintenance_statement_timeout_ms", str(_ms(t.vacuum_statement_secs))),
            ],
            append=True,
        )
    return final


def create_engine(
    url: str | URL, schemas: Iterable[str] = (), role: str = "database", timeouts: Timeouts | None = None
) -> Engine:
    """The one place engines are made. ``schemas`` matters only for SQLite (ATTACH)."""
    final = engine_url(url, schemas, role, timeouts)
    kwargs: dict = {"future": True}
    if final.get_backend_name() != "sqlite":
        kwargs["pool_pre_ping"] = True
    try:
        return sa.create_engine(final, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise UserError(f"{role} URL {redact(final)!r} cannot be used: {exc}") from None


def autocommit_engine(engine: Engine, timeouts: Timeouts | None = None) -> Engine:
    """A second engine on ``engine``'s database whose connections are AUTOCOMMIT from the start.

    For statements that must run outside a transaction (VACUUM, ANALYZE). Switching pooled
    connections per statement (``execution_options(isolation_level=...)``) makes SQLAlchemy set
    the server's own level back when the connection returns to the pool, and a level it does not
    know (Redshift Serverless reports SNAPSHOT ISOLATION) fails there, after the statement ran.
    Same connection arguments and connect hooks (a new pool of the same kind); dispose it after use.
    """
    derived = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", pool=engine.pool.recreate())
    if derived.dialect.name in ("postgresql", "redshift"):
        # The pool's connect hook (statement_timeout) came along; the engine's VACUUM limit not.
        t = timeouts or Timeouts()
        limit_maintenance_statements(derived, _ms(t.statement_secs), _ms(t.vacuum_statement_secs))
    return derived


@functools.lru_cache(maxsize=8)
def shared_engine(
    url: str, schemas: tuple[str, ...], role: str = "database", timeouts: Timeouts | None = None
) -> Engine:
    """One engine (and connection pool) per URL for the life of the process.

    For code called once per checkpoint (GX actions): a new engine per call pays a fresh
    connection each time. Callers must not dispose it.
    """
    return create_engine(url, schemas, role, timeouts)


def check_connection(engine: Engine, role: str) -> None:
    """Connect once so that a bad host or password fails here, in one clear line."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        # Without the query: our timeouts and plugin parameters say nothing about which server,
        # and the MySQL handshake plugin shows its connect-time read_timeout there.
        where = redact(engine.url.set(query={}))
        raise UserError(f"cannot connect to {role} {where}: {short_reason(exc)}") from None


def short_reason(exc: BaseException) -> str:
    """First line of a driver error, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]


def sqlite_url_for_path(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"
