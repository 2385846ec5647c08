"""Running one VACUUM/ANALYZE step and gathering its evidence: figures, ``sys_vacuum_history``,
what ``svv_table_info`` shows the user, and the user's rights (``judge`` decides from them).

Without the privilege VACUUM "succeeds" and does nothing, and Redshift skips a table under its
threshold: a step is "ok" or "failed" only on evidence, "skipped" when Redshift or our own
threshold skipped it, else "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking.db import short_reason
from order_tracking.maintenance import privileges
from order_tracking.maintenance.execute import (
    FAILED,
    OK,
    SKIPPED,
    UNKNOWN,
    Outcome,
    RetryPolicy,
    StepFailed,
    execute_statement,
    naive_utc_now,
)
from order_tracking.maintenance.judge import (
    SvvAccess,
    judge_postgres,
    judge_redshift_analyze,
    judge_redshift_vacuum,
    privilege_noop,
    svv_grant,
)
from order_tracking.maintenance.metrics import (
    SVV_TABLE_INFO,
    Metrics,
    analyze_history,
    read_metrics,
    vacuum_history,
    wait_for_postgres,
)
from order_tracking.maintenance.plan import ANALYZE, VACUUM_DELETE_ONLY, Statement
from order_tracking.maintenance.thresholds import decide
from order_tracking.settings import Settings

# sys_vacuum_history times come from the cluster's clock: allow for some skew against ours.
CLOCK_SKEW = timedelta(minutes=2)

# --- one step with figures -----------------------------------------------------------------------


def _safe_metrics(engine: Engine, schema_name: str, table: str, outcome: Outcome) -> Metrics | None:
    """Figures, or None with a note: a failing metrics view must not stop the maintenance itself."""
    try:
        return read_metrics(engine, schema_name, table)
    except sa.exc.DBAPIError as exc:
        outcome.notes.append(f"metrics unavailable: {short_reason(exc)}")
        return None


def svv_access(conn: Connection, schema_name: str, table: str) -> SvvAccess:
    """Why svv_table_info has no row for the table: it shows the user nothing at all (not
    granted), the user may not SELECT the table, or the table holds no rows."""
    key = (schema_name, table)
    readable = conn.execute(sa.select(sa.literal(1)).select_from(SVV_TABLE_INFO).limit(1)).first() is not None
    visible = privileges.table_privileges(conn, [key], "SELECT")[key]
    holds = None
    if visible:
        probe = sa.select(sa.literal(1)).select_from(sa.table(table, schema=schema_name)).limit(1)
        holds = conn.execute(probe).first() is not None
    return SvvAccess(readable=readable, table_visible=visible, holds_rows=holds)


def _analyze_history(engine: Engine, schema_name: str, table: str, since: datetime, outcome: Outcome) -> list:
    """sys_analyze_history rows, or none with a note: it is superuser-only unless granted."""
    try:
        rows = analyze_history(engine, schema_name, table, since)
    except sa.exc.DBAPIError as exc:
        outcome.notes.append(f"sys_analyze_history unavailable: {short_reason(exc)}")
        return []
    outcome.notes.extend(f"history: ANALYZE {str(h['status']).strip()}" for h in rows)
    return rows


def _no_row(metrics: Metrics | None) -> bool:
    return metrics is None or not metrics.detail.get("in_svv_table_info", True)


def _check_effect(engine: Engine, settings: Settings, stmt: Statement, outcome: Outcome) -> None:
    """Catch the VACUUM/ANALYZE that reports success but did nothing (missing privilege, a
    skip), without calling a step failed or ok on evidence that cannot say (then "unknown")."""
    name = engine.dialect.name
    schema_name = settings.mart_schema
    operation = "ANALYZE" if stmt.operation == ANALYZE else "VACUUM"
    if name == "redshift":
        since = (outcome.started_at or naive_utc_now()) - CLOCK_SKEW
        history = vacuum_history(engine, schema_name, stmt.table, since) if stmt.is_vacuum else []
        outcome.notes.extend(f"history: {h['vacuum_type']} {str(h['status']).strip()}" for h in history)
        with engine.connect() as conn:
            svv = svv_access(conn, schema_name, stmt.table) if _no_row(outcome.before) else None
            rights = privileges.vacuum_rights(conn, schema_name, stmt.table, operation)
        if stmt.is_vacuum:
            judged = judge_redshift_vacuum(
                stmt.operation, outcome.before, outcome.after, history, rights, svv
            )
        else:
            analyzed = _analyze_history(engine, schema_name, stmt.table, since, outcome)
            judged = judge_redshift_analyze(outcome.before, outcome.after, rights, svv, analyzed)
        if judged[0] == OK and svv is not None and svv.readable is False:
            outcome.notes.append(f"figures unavailable: run {svv_grant(rights.user)}")
    elif name == "postgresql" and stmt.operation in (VACUUM_DELETE_ONLY, ANALYZE):
        with engine.connect() as conn:
            rights = privileges.vacuum_rights(conn, schema_name, stmt.table, operation)
        if rights.may_vacuum is False:
            judged = (FAILED, privilege_noop(stmt.operation, rights))
        else:
            attribute = "last_analyze" if stmt.operation == ANALYZE else "last_vacuum"
            previous = getattr(outcome.before, attribute) if outcome.before else None
            after, moved = wait_for_postgres(engine, schema_name, stmt.table, attribute, previous)
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
    """Run one step: figures before, the threshold (a step below it is skipped, with the figure),
    the statement (on ``autocommit``), figures after, effect check. Never raises for a database
    problem; the outcome says what happened. ``run_started`` is kept for callers; each step's
    evidence counts from its own start."""
    outcome = Outcome(stmt.task, stmt.table, stmt.operation, stmt.sql, OK, started_at=naive_utc_now())
    if stmt.sql is None:
        outcome.status, outcome.error = SKIPPED, stmt.skip_reason
        outcome.finished_at = outcome.started_at
        return outcome
    outcome.before = _safe_metrics(engine, settings.mart_schema, stmt.table, outcome)
    decision = decide(stmt.operation, outcome.before, settings.maintenance)
    if not decision.run:
        outcome.status, outcome.error = SKIPPED, decision.reason
        outcome.finished_at = naive_utc_now()
        return outcome
    try:
        outcome.attempts = execute_statement(
            autocommit, stmt.sql, vacuum=stmt.is_vacuum, retry=retry, sleep=sleep
        )
    except StepFailed as exc:
        outcome.status, outcome.error, outcome.attempts = FAILED, str(exc), exc.attempts
    else:
        outcome.after = _safe_metrics(engine, settings.mart_schema, stmt.table, outcome)
        try:
            _check_effect(engine, settings, stmt, outcome)
        except sa.exc.DBAPIError as exc:
            # The statement ran, but nothing says whether it did anything: not "ok".
            outcome.status, outcome.error = UNKNOWN, f"effect check unavailable: {short_reason(exc)}"
    outcome.finished_at = naive_utc_now()
    return outcome
