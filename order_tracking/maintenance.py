"""Runs the spec's vacuum plan (DAG 2): VACUUM/ANALYZE with metrics, retries and a log.

The rules that make this correct on Redshift (DESIGN.md section 6):

- every statement runs alone on a connection of a dedicated AUTOCOMMIT engine
  (``db.autocommit_engine``), so a caller's open transaction can never swallow it (VACUUM fails
  inside a transaction block, SQLSTATE 25001) and no pooled connection is switched back and forth;
- one VACUUM at a time per process (a lock), and Redshift's "VACUUM is running" (another VACUUM
  on the cluster) is retried with bounded exponential backoff;
- without the privilege, VACUUM "succeeds" and does nothing: figures are read before and after,
  with ``sys_vacuum_history`` (manual runs) and the user's rights on the table (owner,
  superuser); a step is "ok" or "failed" only on evidence, else "unknown" (``_check_effect``);
- every step is written to ``order_tracking_maintenance_log`` in its own ordinary transaction; the
  table must exist (``init-db`` creates it: nothing here creates schemas or tables), and a log
  row that cannot be written is a warning line, never silent;
- one step's failure never stops the others: the caller gets every ``Outcome``.

Airflow tasks call ``run_task(engine, settings, "vacuum_mart_uti")``; the CLI calls ``run_plan``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from order_tracking import db, privileges, schema
from order_tracking.db import short_reason
from order_tracking.errors import UserError
from order_tracking.maintenance_metrics import Metrics, read_metrics, vacuum_history, wait_for_postgres
from order_tracking.maintenance_sql import (
    ANALYZE,
    PLAN,
    VACUUM_DELETE_ONLY,
    VACUUM_SORT_ONLY,
    Statement,
    check_dialect,
    plan_statements,
    resolve_tasks,
)
from order_tracking.settings import Settings

__all__ = [
    "PLAN",
    "Outcome",
    "RetryPolicy",
    "failures",
    "plan_outcomes",
    "raise_for_failures",
    "resolve_tasks",
    "run_plan",
    "run_task",
]

log = logging.getLogger(__name__)

# A step's status, the same words in the CLI, the maintenance log and the Airflow task:
# ok (done, with evidence), failed (not done), skipped (nothing to run in this dialect),
# unknown (ran, but the evidence cannot tell whether it did anything); "planned" in dry runs.
OK, SKIPPED, FAILED, UNKNOWN, PLANNED = "ok", "skipped", "failed", "unknown", "planned"
# Redshift VACUUM's default threshold: it skips a table whose rows are at least 95 % sorted
# (SORT ONLY) or not marked for deletion (DELETE ONLY), and then logs nothing.
VACUUM_THRESHOLD_PCT = 95

# Only one VACUUM runs on a Redshift cluster at a time: never start two from this process.
VACUUM_LOCK = threading.Lock()

_VACUUM_RUNNING = re.compile(r"vacuum is (already )?running|another vacuum", re.IGNORECASE)
_IN_TRANSACTION = re.compile(r"cannot run inside a transaction block|within a transaction", re.IGNORECASE)
# sys_vacuum_history times come from the cluster's clock: allow for some skew against ours.
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for another VACUUM: ``attempts`` tries, delays doubling from ``base_delay``."""

    attempts: int = 6
    base_delay: float = 30.0
    max_delay: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.base_delay * (2 ** (attempt - 1)), self.max_delay)


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


class StepFailed(Exception):
    """A statement failed in a way the outcome reports (clear message, attempts made)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def _now() -> datetime:
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


# --- one step with figures -----------------------------------------------------------------------


def _safe_metrics(engine: Engine, schema_name: str, table: str, outcome: Outcome) -> Metrics | None:
    """Figures, or None with a note: a failing metrics view must not stop the maintenance itself."""
    try:
        return read_metrics(engine, schema_name, table)
    except sa.exc.DBAPIError as exc:
        outcome.notes.append(f"metrics unavailable: {short_reason(exc)}")
        return None


def _check_effect(
    engine: Engine, settings: Settings, stmt: Statement, outcome: Outcome, run_started: datetime
) -> None:
    """Catch the VACUUM/ANALYZE that reports success but did nothing (missing privilege), without
    calling a step failed or ok on evidence that cannot say (then the status is "unknown")."""
    name = engine.dialect.name
    if name == "redshift" and stmt.is_vacuum:
        history = vacuum_history(engine, settings.mart_schema, stmt.table, run_started - CLOCK_SKEW)
        outcome.notes.extend(f"history: {h['vacuum_type']} {str(h['status']).strip()}" for h in history)
        with engine.connect() as conn:
            rights = privileges.vacuum_rights(conn, settings.mart_schema, stmt.table)
            visible = None
            if outcome.before is None or not outcome.before.detail.get("in_svv_table_info", True):
                key = (settings.mart_schema, stmt.table)
                visible = privileges.table_privileges(conn, [key], "SELECT")[key]
        judged = judge_redshift_vacuum(
            stmt.operation, outcome.before, outcome.after, history, rights, visible
        )
    elif name == "postgresql" and stmt.operation in (VACUUM_DELETE_ONLY, ANALYZE):
        with engine.connect() as conn:
            rights = privileges.vacuum_rights(conn, settings.mart_schema, stmt.table)
        if rights.may_vacuum is False:
            judged = (FAILED, _privilege_noop(stmt.operation, rights))
        else:
            attribute = "last_analyze" if stmt.operation == ANALYZE else "last_vacuum"
            previous = getattr(outcome.before, attribute) if outcome.before else None
            after, moved = wait_for_postgres(engine, settings.mart_schema, stmt.table, attribute, previous)
            outcome.after = after
            judged = judge_postgres(stmt.operation, outcome.before, after, moved, attribute)
    else:
        return
    status, reason = judged
    if status != OK or reason:
        outcome.status = status
        if status == OK:
            outcome.notes.append(reason)
        else:
            outcome.error = reason


def _reduced(before: Metrics | None, after: Metrics | None, figure: str) -> bool:
    b, a = getattr(before, figure, None), getattr(after, figure, None)
    return b is not None and a is not None and a < b


def _privilege_noop(operation: str, rights: privileges.VacuumRights) -> str:
    return (
        f"{operation} skips tables it may not maintain without an error (a privilege no-op): "
        f"{rights.user} is neither the owner ({rights.owner}) nor a superuser; fix: {rights.fix}"
    )


def judge_redshift_vacuum(
    operation: str,
    before: Metrics | None,
    after: Metrics | None,
    history: list[dict],
    rights: privileges.VacuumRights,
    visible: bool | None,
) -> tuple[str, str | None]:
    """(status, reason) of a Redshift VACUUM from every piece of evidence, strongest first.

    - a ``sys_vacuum_history`` row of this run is proof either way;
    - figures that moved the right way are proof it ran;
    - a user who is neither owner nor superuser gets a silent no-op: failed;
    - no figures (svv_table_info shows only tables the user may see) prove nothing: unknown;
    - VACUUM skips a table already past its threshold (95 %: ghost rows or unsorted rows at most
      5 %) and logs no row: that is ok;
    - otherwise there is no evidence either way: unknown, never a guess.
    """
    failed = [h for h in history if "fail" in str(h.get("status") or "").lower()]
    if failed:
        return FAILED, f"sys_vacuum_history reports status {str(failed[-1]['status']).strip()!r}"
    if history:
        return OK, None
    figure = "unsorted_pct" if operation == VACUUM_SORT_ONLY else "ghost_rows"
    if _reduced(before, after, figure):
        return OK, None
    if rights.may_vacuum is False:
        return (
            FAILED,
            f"no sys_vacuum_history row, no drop in the figures: {_privilege_noop(operation, rights)}",
        )
    rows = None if before is None else before.rows
    value = None if before is None else getattr(before, figure)
    if rows is None or value is None:
        if visible:
            return OK, "not in svv_table_info although readable: the table is empty, nothing to vacuum"
        why = (
            f"{rights.user} may not SELECT the table, so svv_table_info hides it (GRANT SELECT to see it)"
            if visible is False
            else "svv_table_info gave no figures"
        )
        return UNKNOWN, f"no sys_vacuum_history row and no figures to judge by: {why}"
    if figure == "ghost_rows":
        share = 100.0 * value / (rows + value) if rows + value else 0.0
    else:
        share = float(value)
    if share <= 100 - VACUUM_THRESHOLD_PCT:
        return (
            OK,
            f"nothing past VACUUM's {VACUUM_THRESHOLD_PCT} % threshold ({share:.1f} %): Redshift skipped it",
        )
    who = "the user may vacuum it" if rights.may_vacuum else "the table's owner could not be read"
    return UNKNOWN, (
        f"no sys_vacuum_history row and {figure.replace('_', ' ')} did not drop ({share:.1f} %) although "
        f"{who}: no evidence that VACUUM ran; check sys_vacuum_history by hand"
    )


def judge_postgres(
    operation: str, before: Metrics | None, after: Metrics, moved: bool, attribute: str
) -> tuple[str, str | None]:
    """(status, reason) of a PostgreSQL VACUUM/ANALYZE run by a user allowed to run it."""
    if not moved:
        return UNKNOWN, f"{operation} reported success but {attribute} did not change within the wait"
    if operation == ANALYZE or before is None or not before.ghost_rows:
        return OK, None
    if after.ghost_rows is not None and after.ghost_rows >= before.ghost_rows:
        return FAILED, (
            f"VACUUM ran but reclaimed no dead rows ({before.ghost_rows} -> {after.ghost_rows}): a "
            "transaction older than the deletes still needs them (see pg_stat_activity.backend_xmin); "
            "they are reclaimed by the first VACUUM after it ends"
        )
    return OK, None


def run_statement(
    engine: Engine,
    settings: Settings,
    stmt: Statement,
    *,
    autocommit: Engine,
    retry: RetryPolicy,
    run_started: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run one step: figures before, the statement (on ``autocommit``), figures after, effect
    check. Never raises for a database problem; the outcome says what happened."""
    outcome = Outcome(stmt.task, stmt.table, stmt.operation, stmt.sql, OK, started_at=_now())
    if stmt.sql is None:
        outcome.status, outcome.error = SKIPPED, stmt.skip_reason
        outcome.finished_at = outcome.started_at
        return outcome
    outcome.before = _safe_metrics(engine, settings.mart_schema, stmt.table, outcome)
    try:
        outcome.attempts = execute_statement(
            autocommit, stmt.sql, vacuum=stmt.is_vacuum, retry=retry, sleep=sleep
        )
    except StepFailed as exc:
        outcome.status, outcome.error, outcome.attempts = FAILED, str(exc), exc.attempts
    else:
        outcome.after = _safe_metrics(engine, settings.mart_schema, stmt.table, outcome)
        try:
            _check_effect(engine, settings, stmt, outcome, run_started)
        except sa.exc.DBAPIError as exc:
            # The statement ran, but nothing says whether it did anything: not "ok".
            outcome.status, outcome.error = UNKNOWN, f"effect check unavailable: {short_reason(exc)}"
    outcome.finished_at = _now()
    return outcome


# --- the maintenance log ---------------------------------------------------------------------------


def require_log_table(engine: Engine, settings: Settings) -> sa.Table:
    """The log table; a clear error pointing at ``init-db`` if it is missing (never created here)."""
    table = schema.build_tables(settings).maintenance_log
    schema.require_table(engine, table)
    return table


def _clip(text: str | None, limit: int = 1024) -> str | None:
    return None if text is None else text[:limit]


def write_log(engine: Engine, table: sa.Table, run_id: str, outcome: Outcome) -> None:
    """One row per step, in its own ordinary transaction (the VACUUM itself is long committed)."""
    before, after = outcome.before or Metrics(), outcome.after or Metrics()
    error = "; ".join(([outcome.error] if outcome.error else []) + outcome.notes) or None
    values = {
        "run_id": run_id,
        "task_name": outcome.task,
        "table_name": outcome.table,
        "operation": outcome.operation,
        "attempts": outcome.attempts,
        "sql_text": _clip(outcome.sql),
        "started_at": outcome.started_at or _now(),
        "finished_at": outcome.finished_at,
        "status": outcome.status,
        "rows_before": before.rows,
        "rows_after": after.rows,
        "ghost_rows_before": before.ghost_rows,
        "ghost_rows_after": after.ghost_rows,
        "unsorted_pct_before": before.unsorted_pct,
        "unsorted_pct_after": after.unsorted_pct,
        "stats_off_before": before.stats_off,
        "stats_off_after": after.stats_off,
        "size_before": before.size_bytes,
        "size_after": after.size_bytes,
        "error": _clip(error),
    }
    # inline(): no key pre-fetch. The log_id is the table's IDENTITY; without inline() SQLAlchemy
    # runs ``select nextval(...)`` first (implicit_returning=False), and Redshift has no sequences.
    with engine.begin() as conn:
        conn.execute(sa.insert(table).inline().values(**values))


# --- tasks and plans -------------------------------------------------------------------------------


def run_task(
    engine: Engine,
    settings: Settings,
    task_name: str,
    *,
    run_id: str | None = None,
    run_started: datetime | None = None,
    retry: RetryPolicy | None = None,
    log_table: sa.Table | None = None,
    write_to_log: bool = True,
    autocommit: Engine | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Run one of the spec's tasks (``vacuum_mart_uti`` ...) and return every step's outcome.

    Steps continue after a failure (ANALYZE is still worth running after a VACUUM that waited too
    long); use ``raise_for_failures`` to fail an Airflow task. ``autocommit`` (made and disposed
    here if not given) runs the VACUUM/ANALYZE statements.
    """
    if task_name not in PLAN:
        resolve_tasks([task_name])  # raises the clear "unknown task" error
    check_dialect(engine.dialect)
    run_id = run_id or uuid.uuid4().hex
    run_started = run_started or _now()
    retry = retry or RetryPolicy()
    if write_to_log and log_table is None:
        log_table = require_log_table(engine, settings)
    own_autocommit = autocommit is None
    autocommit = autocommit or db.autocommit_engine(engine)
    outcomes = []
    try:
        for stmt in plan_statements(engine.dialect, settings.mart_schema, [task_name]):
            outcome = run_statement(
                engine,
                settings,
                stmt,
                autocommit=autocommit,
                retry=retry,
                run_started=run_started,
                sleep=sleep,
            )
            log.info("%s %s %s: %s", task_name, stmt.operation, stmt.table, outcome.status)
            if write_to_log and log_table is not None:
                _log_outcome(engine, log_table, run_id, outcome)
            outcomes.append(outcome)
    finally:
        if own_autocommit:
            autocommit.dispose()
    return outcomes


def _log_outcome(engine: Engine, log_table: sa.Table, run_id: str, outcome: Outcome) -> None:
    """Write the log row; a failure is a warning line (stderr on the CLI, the Airflow task log)."""
    try:
        write_log(engine, log_table, run_id, outcome)
    except sa.exc.DBAPIError as exc:
        reason = f"not written to the maintenance log: {short_reason(exc)}"
        outcome.notes.append(reason)
        log.warning("%s %s: %s", outcome.operation, outcome.table, reason)


def plan_outcomes(dialect: Dialect, settings: Settings, tasks: Iterable[str] | None = None) -> list[Outcome]:
    """The selected steps as "planned" (or "skipped") outcomes, without touching any database."""
    return [
        Outcome(s.task, s.table, s.operation, s.sql, PLANNED if s.sql else SKIPPED, error=s.skip_reason)
        for s in plan_statements(dialect, settings.mart_schema, resolve_tasks(tasks))
    ]


def run_plan(
    engine: Engine,
    settings: Settings,
    tasks: Iterable[str] | None = None,
    dry_run: bool = False,
    *,
    retry: RetryPolicy | None = None,
    write_to_log: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Run the selected tasks (default: the whole plan) in the spec's order, one after another.

    ``dry_run`` returns the statements as "planned" (or "skipped") outcomes and touches nothing.
    """
    chosen = resolve_tasks(tasks)
    if dry_run:
        return plan_outcomes(engine.dialect, settings, chosen)
    check_dialect(engine.dialect)
    run_id, run_started = uuid.uuid4().hex, _now()
    log_table = require_log_table(engine, settings) if write_to_log else None
    outcomes: list[Outcome] = []
    autocommit = db.autocommit_engine(engine)
    try:
        for task in chosen:
            outcomes += run_task(
                engine,
                settings,
                task,
                run_id=run_id,
                run_started=run_started,
                retry=retry,
                log_table=log_table,
                write_to_log=write_to_log,
                autocommit=autocommit,
                sleep=sleep,
            )
    finally:
        autocommit.dispose()
    return outcomes


def failures(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status == FAILED]


def unknowns(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Steps that ran but whose effect could not be proven: reported, not failed."""
    return [o for o in outcomes if o.status == UNKNOWN]


def raise_for_failures(outcomes: Iterable[Outcome]) -> None:
    """Raise one ``UserError`` naming every failed step (for Airflow tasks and the CLI)."""
    failed = failures(outcomes)
    if failed:
        detail = "; ".join(f"{o.operation} {o.table}: {o.error}" for o in failed)
        raise UserError(f"{len(failed)} maintenance step(s) failed: {detail}")
