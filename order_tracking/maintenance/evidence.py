"""Whether a VACUUM/ANALYZE step did anything: figures, ``sys_vacuum_history`` and the user's rights.

Without the privilege VACUUM "succeeds" and does nothing, and Redshift skips a table under its
threshold without a trace: a step is "ok" or "failed" only on evidence, else "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
from order_tracking.maintenance.metrics import Metrics, read_metrics, vacuum_history, wait_for_postgres
from order_tracking.maintenance.plan import (
    ANALYZE,
    VACUUM_DELETE_ONLY,
    VACUUM_SORT_ONLY,
    Statement,
)
from order_tracking.settings import Settings

# Redshift VACUUM's default threshold: it skips a table whose rows are at least 95 % sorted
# (SORT ONLY) or not marked for deletion (DELETE ONLY), and then logs nothing.
VACUUM_THRESHOLD_PCT = 95
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
    outcome = Outcome(stmt.task, stmt.table, stmt.operation, stmt.sql, OK, started_at=naive_utc_now())
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
    outcome.finished_at = naive_utc_now()
    return outcome
