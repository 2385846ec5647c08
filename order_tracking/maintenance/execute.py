"""Running one maintenance statement: alone, on an AUTOCOMMIT connection, one VACUUM at a time,
"VACUUM is running" retried with bounded backoff; and the ``Outcome`` every step reports.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from order_tracking.db import short_reason
from order_tracking.locked_write import RetryPolicy
from order_tracking.maintenance.metrics import Metrics

log = logging.getLogger(__name__)

# A step's status, the same words in the CLI, the maintenance log and the Airflow task:
# ok (done, with evidence), failed (not done), skipped (nothing to run in this dialect),
# unknown (ran, but the evidence cannot tell whether it did anything); "planned" in dry runs.
OK, SKIPPED, FAILED, UNKNOWN, PLANNED = "ok", "skipped", "failed", "unknown", "planned"

# Only one VACUUM runs on a Redshift cluster at a time: never start two from this process.
VACUUM_LOCK = threading.Lock()

_VACUUM_RUNNING = re.compile(r"vacuum is (already )?running|another vacuum", re.IGNORECASE)
_IN_TRANSACTION = re.compile(r"cannot run inside a transaction block|within a transaction", re.IGNORECASE)


@dataclass
class Outcome:
    """What happened to one step of the plan."""

    task: str
    table: str
    operation: str
    sql: str | None
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    before: Metrics | None = None
    after: Metrics | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    log_error: str | None = None  # the step ran but its maintenance-log row was not written


class StepFailed(Exception):
    """A statement failed in a way the outcome reports (clear message, attempts made)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def naive_utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- running one statement ---------------------------------------------------------------------


def _explain(exc: sa.exc.DBAPIError) -> str:
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code == "25001" or _IN_TRANSACTION.search(str(orig)):
        return (
            "VACUUM cannot run inside a transaction block (SQLSTATE 25001): it must run alone on an "
            f"autocommit connection, outside any BEGIN ... COMMIT ({short_reason(exc)})"
        )
    return short_reason(exc)


def execute_statement(
    autocommit: Engine,
    sql: str,
    *,
    vacuum: bool,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``sql`` alone on a connection of the ``autocommit`` engine (``db.autocommit_engine``);
    return the number of attempts made.

    A VACUUM holds the process-wide lock for its whole life (retries included) and is retried while
    Redshift says another VACUUM is running. Raises ``StepFailed`` with a clear message.
    """
    lock = VACUUM_LOCK if vacuum else None
    if lock:
        lock.acquire()
    try:
        for attempt in range(1, retry.attempts + 1):
            try:
                with autocommit.connect() as conn:
                    conn.exec_driver_sql(sql)
                return attempt
            except sa.exc.DBAPIError as exc:
                if vacuum and _VACUUM_RUNNING.search(str(exc.orig)):
                    if attempt < retry.attempts:
                        wait = retry.delay(attempt)
                        log.info("another VACUUM is running; retry %d in %.1f s: %s", attempt + 1, wait, sql)
                        sleep(wait)
                        continue
                    raise StepFailed(
                        f"another VACUUM was still running after {attempt} attempts "
                        f"(Redshift runs one VACUUM per cluster; serialize vacuum jobs): {short_reason(exc)}",
                        attempt,
                    ) from None
                raise StepFailed(_explain(exc), attempt) from None
        raise AssertionError("unreachable")  # the loop returns or raises
    finally:
        if lock:
            lock.release()
