"""Runs the spec's vacuum plan (DAG 2): VACUUM/ANALYZE with metrics, retries and a log.

The rules that make this correct on Redshift (docs/design.md section 6):

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
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from order_tracking import db
from order_tracking.db import short_reason
from order_tracking.errors import UserError
from order_tracking.locked_write import SerializationConflict
from order_tracking.maintenance.evidence import run_statement
from order_tracking.maintenance.execute import (
    FAILED,
    PLANNED,
    SKIPPED,
    UNKNOWN,
    Outcome,
    RetryPolicy,
    naive_utc_now,
)
from order_tracking.maintenance.log import require_log_table, write_log
from order_tracking.maintenance.metrics import Metrics, read_metrics
from order_tracking.maintenance.plan import (
    PLAN,
    Statement,
    check_dialect,
    plan_statements,
    resolve_tasks,
)
from order_tracking.maintenance.thresholds import decide
from order_tracking.settings import Settings

log = logging.getLogger(__name__)


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
    progress: Callable[[Statement, Outcome | None], None] | None = None,
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
    run_started = run_started or naive_utc_now()
    retry = retry or RetryPolicy()
    if write_to_log and log_table is None:
        log_table = require_log_table(engine, settings)
    own_autocommit = autocommit is None
    autocommit = autocommit or db.autocommit_engine(engine, settings.timeouts)
    outcomes = []
    try:
        for stmt in plan_statements(engine.dialect, settings.mart_schema, [task_name], settings.maintenance):
            if progress is not None:  # a step can take many minutes on Redshift: say it started
                progress(stmt, None)
            outcome = run_statement(
                engine,
                settings,
                stmt,
                autocommit=autocommit,
                retry=retry,
                run_started=run_started,
                sleep=sleep,
            )
            if progress is not None:
                progress(stmt, outcome)
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
    except (sa.exc.DBAPIError, SerializationConflict) as exc:
        # A conflict left after the bounded retries is reported like any other failed write.
        why = short_reason(exc) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
        reason = f"not written to the maintenance log: {why}"
        outcome.notes.append(reason)
        outcome.log_error = reason
        log.warning("%s %s: %s", outcome.operation, outcome.table, reason)


def plan_outcomes(
    dialect: Dialect, settings: Settings, tasks: Iterable[str] | None = None, engine: Engine | None = None
) -> list[Outcome]:
    """The selected steps as "planned" (or "skipped") outcomes; nothing is executed.

    With ``engine`` (the dry run of a warehouse that exists) each table's figures are read, once,
    into ``before`` and each step's threshold decision goes into ``notes``: a step below its
    threshold is "skipped" with the figure. Without it, no database is touched.
    """
    figures: dict[str, Metrics | None] = {}
    outcomes = []
    for s in plan_statements(dialect, settings.mart_schema, resolve_tasks(tasks), settings.maintenance):
        outcome = Outcome(
            s.task, s.table, s.operation, s.sql, PLANNED if s.sql else SKIPPED, error=s.skip_reason
        )
        if s.sql and engine is not None:
            if s.table not in figures:
                figures[s.table] = _figures(engine, settings, s.table, outcome)
            outcome.before = figures[s.table]
        if s.sql:
            decision = decide(s.operation, outcome.before, settings.maintenance)
            outcome.notes.append(decision.reason if decision.run else f"skipped: {decision.reason}")
            if not decision.run:
                outcome.status, outcome.error = SKIPPED, decision.reason
        outcomes.append(outcome)
    return outcomes


def _figures(engine: Engine, settings: Settings, table: str, outcome: Outcome) -> Metrics | None:
    try:
        return read_metrics(engine, settings.mart_schema, table)
    except sa.exc.DBAPIError as exc:
        outcome.notes.append(f"figures unavailable: {short_reason(exc)}")
        return None


def run_plan(
    engine: Engine,
    settings: Settings,
    tasks: Iterable[str] | None = None,
    dry_run: bool = False,
    *,
    retry: RetryPolicy | None = None,
    write_to_log: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Statement, Outcome | None], None] | None = None,
) -> list[Outcome]:
    """Run the selected tasks (default: the whole plan) in the spec's order, one after another.

    ``dry_run`` returns the statements as "planned" (or "skipped") outcomes and touches nothing.
    """
    chosen = resolve_tasks(tasks)
    if dry_run:
        return plan_outcomes(engine.dialect, settings, chosen)
    check_dialect(engine.dialect)
    run_id, run_started = uuid.uuid4().hex, naive_utc_now()
    log_table = require_log_table(engine, settings) if write_to_log else None
    outcomes: list[Outcome] = []
    autocommit = db.autocommit_engine(engine, settings.timeouts)
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
                progress=progress,
            )
    finally:
        autocommit.dispose()
    return outcomes


def failures(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status == FAILED]


def unlogged(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Steps whose maintenance-log row could not be written: the run is an error (exit 3)."""
    return [o for o in outcomes if o.log_error]


def unlogged_line(outcomes: Iterable[Outcome]) -> str | None:
    """One line for the steps :func:`unlogged` lists, or None."""
    missing = unlogged(outcomes)
    if not missing:
        return None
    return f"{len(missing)} step(s) {missing[0].log_error} (first: {missing[0].operation} {missing[0].table})"


def unknowns(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Steps that ran but whose effect could not be proven: reported, not failed."""
    return [o for o in outcomes if o.status == UNKNOWN]


def raise_for_failures(outcomes: Iterable[Outcome]) -> None:
    """Raise one ``UserError`` naming every failed step (for Airflow tasks and the CLI)."""
    failed = failures(outcomes)
    if failed:
        detail = "; ".join(f"{o.operation} {o.table}: {o.error}" for o in failed)
        raise UserError(f"{len(failed)} maintenance step(s) failed: {detail}")
