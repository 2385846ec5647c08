"""The vacuum DAG's tasks: one spec step through the maintenance engine, and the pool guard."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from order_tracking.orchestration.connections import (
    settings_for_airflow,
)
from order_tracking.orchestration.failures import (
    fail_fast_on_config_errors,
)

log = logging.getLogger(__name__)


VACUUM_POOL = "redshift_vacuum"
VACUUM_POOL_DESCRIPTION = "one Redshift VACUUM at a time"
POOL_GUARD_TASK = "check_vacuum_pool"


POOL_WAIT_SECS = 25  # a vacuum task of an existing pool is queued in the same scheduler loop
_WAITING = {"None", "scheduled"}  # states of a task the scheduler has not handed to an executor


def pool_missing_message(pool_name: str = VACUUM_POOL) -> str:
    return (
        f"Airflow pool {pool_name!r} does not exist (or has no free slot): the vacuum tasks are never "
        f"queued without it. Create it with `airflow pools set {pool_name} 1 "
        f"'{VACUUM_POOL_DESCRIPTION}'` (or `python -m order_tracking airflow-setup`), then clear this run"
    )


def check_vacuum_pool(
    context: Any,
    task_ids: list[str],
    pool_name: str = VACUUM_POOL,
    wait_secs: float = POOL_WAIT_SECS,
    poll_secs: float = 2.0,
) -> str:
    """Fail fast, with the pool's name, when the vacuum tasks of this run sit in a missing pool.

    Tasks cannot read the metadata DB in Airflow 3, and the scheduler never queues a task whose
    pool is missing (it logs a warning and waits forever). This task runs outside the pool, beside
    the vacuum tasks, and watches their states through the Task SDK: once one of them has been
    queued, the pool exists and it returns at once, silently. If none leaves "scheduled" within
    ``wait_secs``, it marks the waiting tasks skipped (the Task SDK's skip request, as a branch
    operator does) so the run can end, and fails: the run is "failed" and sends its one email.
    """
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    if isinstance(task_runner.SUPERVISOR_COMMS, InProcessSupervisorComms):
        log.info("dag.test() runs tasks one by one and ignores pools: nothing to check")
        return "not checked (dag.test)"
    ti = context["ti"]
    deadline = time.monotonic() + wait_secs
    while True:
        states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
        per_task = {t: str(s) for t, s in states.get(ti.run_id, {}).items()}
        admitted = sorted(t for t, s in per_task.items() if s not in _WAITING)
        if admitted:
            log.info("pool %s admits this run's tasks (%s)", pool_name, ", ".join(admitted))
            return f"pool {pool_name} in use"
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_secs)
    waiting = sorted(per_task)
    if waiting:
        task_runner.SUPERVISOR_COMMS.send(msg=SkipDownstreamTasks(tasks=waiting))
    raise AirflowFailException(f"{pool_missing_message(pool_name)}; skipped: {', '.join(waiting)}")


def run_vacuum_task(task_name: str, context: Any | None = None) -> list[dict[str, Any]]:
    """One of the spec's vacuum tasks through the maintenance engine; fails if a step failed."""
    from order_tracking import db, maintenance

    try:
        settings = settings_for_airflow()
        engine = db.create_engine(
            settings.warehouse_url, settings.warehouse_schemas, role="warehouse", timeouts=settings.timeouts
        )
        try:
            db.check_connection(engine, "warehouse")
            run_id = None
            if context is not None and context.get("run_id"):
                run_id = str(context["run_id"])[:64]
            outcomes = maintenance.run_task(engine, settings, task_name, run_id=run_id)
        finally:
            engine.dispose()
    except AirflowFailException:
        raise
    except Exception as exc:
        fail_fast_on_config_errors(task_name, exc)
        raise
    rows = []
    for o in outcomes:
        before, after = o.before, o.after
        rows.append(
            {
                "table": o.table,
                "operation": o.operation,
                "status": o.status,
                "ghost_rows_before": getattr(before, "ghost_rows", None),
                "ghost_rows_after": getattr(after, "ghost_rows", None),
                "error": o.error,
            }
        )
        log.info(
            "%s %s: %s (ghost rows %s -> %s)%s",
            o.operation,
            o.table,
            o.status,
            rows[-1]["ghost_rows_before"],
            rows[-1]["ghost_rows_after"],
            f": {o.error}" if o.error else "",
        )
    failed = maintenance.failures(outcomes)
    if failed:
        detail = "; ".join(f"{o.operation} {o.table}: {o.error}" for o in failed)
        raise RuntimeError(f"{len(failed)} maintenance step(s) failed: {detail}")
    unlogged = maintenance.unlogged_line(outcomes)
    if unlogged:  # the steps ran, but their record is missing: the task fails and says so
        raise RuntimeError(unlogged)
    return rows
