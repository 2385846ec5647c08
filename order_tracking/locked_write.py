"""Every warehouse write goes through :func:`locked_write` (docs/design.md section 8).

Redshift runs every transaction at serializable (or snapshot) isolation and cancels one side of
a conflict with error 1023 ("Serializable isolation violation on table ..."). Its guide's remedy
is what this module does for each writing path (exceptions write, ``resolve``, the maintenance
log, ``repair-reactivated``, ``backfill``):

1. one transaction whose FIRST statements lock every table it writes, in ONE fixed order
   (:func:`lock_order`), so two writers queue instead of conflicting and can never deadlock;
2. error 1023 (or PostgreSQL's SQLSTATE 40001) reruns the whole transaction, a bounded number of
   times, with a log line per retry;
3. a conflict in every attempt is one line (:class:`SerializationConflict`, a ``UserError``: exit 3),
   with everything rolled back.

How to use it (a new writer, e.g. ``backfill``)::

    from order_tracking.locked_write import locked_write

    def body(conn: Connection) -> int:  # runs inside the locked transaction; may run again
        return conn.execute(stmt).rowcount

    n = locked_write(engine, [tables.exceptions, tables.mart_ecs], body, what="backfill 2026-11-25")

``body`` must be safe to run again: a retry starts from a rolled-back transaction. Pass every
table the body writes; reads of other tables need no lock. The lock statements per dialect:
Redshift ``LOCK t`` (always exclusive, blocks readers too: keep the body short), PostgreSQL
``LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE`` (writers queue, readers go on), SQLite ``BEGIN
IMMEDIATE`` (one write lock on the main and every attached file).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from order_tracking.db import short_reason
from order_tracking.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, delays doubling from ``base_delay`` up to ``max_delay`` seconds."""

    attempts: int = 6
    base_delay: float = 30.0
    max_delay: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.base_delay * (2 ** (attempt - 1)), self.max_delay)


# Redshift error 1023: the whole transaction may simply be run again (its guide's first remedy).
SERIALIZATION_RETRY = RetryPolicy(attempts=3, base_delay=2.0, max_delay=8.0)

# What Redshift says ("ERROR:  1023\nDETAIL:  Serializable isolation violation on table - 156362,
# transactions forming the cycle are: ..."); psycopg2 may drop the "ERROR:" prefix.
_SERIALIZATION = re.compile(
    r"serializable isolation violation|^(ERROR:\s*)?1023\b", re.IGNORECASE | re.MULTILINE
)


class SerializationConflict(UserError):
    """Error 1023 in every attempt: rolled back, nothing changed (exit 3)."""


def is_serialization_error(exc: BaseException) -> bool:
    """Redshift's error 1023 (by its text), or PostgreSQL's serialization_failure (SQLSTATE 40001)."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code == "40001" or bool(_SERIALIZATION.search(str(exc.orig)))


def _is_history(table: sa.Table) -> bool:
    return table.name.startswith("hist_")


def lock_order(tables: Iterable[sa.Table]) -> list[sa.Table]:
    """``tables`` without repeats, in the one order every writer locks them.

    By (history table?, schema, name): with the production names that is the tables we own
    (``settlement_ods``: exceptions, then the maintenance log), the mart tables, then the history
    tables oldest first. Any total order prevents deadlocks; this one needs no list to maintain.
    """
    unique = {(t.schema, t.name): t for t in tables}
    return [unique[k] for k in sorted(unique, key=lambda k: (_is_history(unique[k]), k[0] or "", k[1]))]


def lock_statement(dialect: Dialect, table: sa.Table) -> str:
    """The table lock statement for ``dialect`` (Core has no LOCK construct)."""
    name = dialect.identifier_preparer.format_table(table)
    if dialect.name == "redshift":
        return f"LOCK {name}"
    if dialect.name == "postgresql":
        return f"LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"
    raise ValueError(f"no table lock statement for {dialect.name}")


def transaction_start(dialect: Dialect, tables: Iterable[sa.Table]) -> list[str]:
    """How :func:`locked_write` opens its transaction, as SQL text (what dry runs print)."""
    if dialect.name == "sqlite":
        return ["BEGIN IMMEDIATE"]
    return ["BEGIN", *(lock_statement(dialect, t) for t in lock_order(tables))]


@contextmanager
def session(engine: Engine) -> Iterator[Connection]:
    """A connection for :func:`locked` (and the temporary tables that live in its session).

    SQLite: the connection is switched to driver-level autocommit (``isolation_level=None``, what
    SQLAlchemy's AUTOCOMMIT does for pysqlite, undone when the connection goes back to the pool),
    so that pysqlite emits nothing by itself and :func:`locked` issues BEGIN IMMEDIATE / COMMIT /
    ROLLBACK explicitly. This touches only this one checkout.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def locked(conn: Connection, tables: Sequence[sa.Table]) -> Iterator[Connection]:
    """One transaction on a :func:`session` connection whose first statements lock ``tables``.

    The lock must come first: a serializable transaction's snapshot starts with its first
    SELECT or DML, and locking every table at the start is how Redshift avoids error 1023.
    SQLite's ``BEGIN IMMEDIATE`` replaces pysqlite's lazy DEFERRED transaction, in which two
    writers could both read and one then fail with "database is locked" on upgrade (the engine's
    busy timeout makes the second writer wait instead).
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL).
            if conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
        return
    with conn.begin():
        for table in lock_order(tables):
            conn.execute(sa.text(lock_statement(conn.dialect, table)))
        yield conn


def locked_write_counted(
    target: Engine | Connection,
    tables: Sequence[sa.Table],
    body: Callable[[Connection], T],
    *,
    what: str,
    policy: RetryPolicy = SERIALIZATION_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """:func:`locked_write`, also returning the number of attempts it took."""
    for attempt in range(1, policy.attempts + 1):
        try:
            if isinstance(target, Engine):
                with session(target) as conn, locked(conn, tables):
                    return body(conn), attempt
            with locked(target, tables):
                return body(target), attempt
        except sa.exc.DBAPIError as exc:
            if not is_serialization_error(exc):
                raise
            if attempt == policy.attempts:
                raise SerializationConflict(
                    f"{what}: serializable isolation conflict with a concurrent transaction (Redshift "
                    f"error 1023) in each of {attempt} attempts; rolled back, nothing changed; run it "
                    f"again when the ETL is idle ({short_reason(exc)})"
                ) from None
            wait = policy.delay(attempt)
            # The retry line tests and operators count (one per conflict).
            log.warning(
                "%s: serializable isolation conflict (Redshift error 1023), attempt %d of %d; "
                "retrying in %.1f s",
                what,
                attempt,
                policy.attempts,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def locked_write(
    target: Engine | Connection,
    tables: Sequence[sa.Table],
    body: Callable[[Connection], T],
    *,
    what: str,
    policy: RetryPolicy = SERIALIZATION_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``body`` in one transaction that first locks ``tables`` (:func:`lock_order`); rerun it
    on error 1023, at most ``policy.attempts`` times in all; return what ``body`` returned.

    ``target``: an engine (a fresh session per attempt) or a :func:`session` connection (kept
    across attempts, e.g. for the temporary table the body reads). ``what`` names the write in
    the retry log line and in the final error. Any other error propagates at once, rolled back.
    """
    value, _ = locked_write_counted(target, tables, body, what=what, policy=policy, sleep=sleep)
    return value
