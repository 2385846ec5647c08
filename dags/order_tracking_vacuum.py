"""DAG 2 of the spec: nightly VACUUM/ANALYZE of the mart tables, one VACUUM at a time.

Redshift runs one VACUUM per cluster: every task is in the one-slot pool ``redshift_vacuum``, so
the graph keeps the spec's shape (a failing table does not block the others) while the scheduler
runs them one after another. ``python -m order_tracking airflow-setup`` creates the pool; if it is
missing, the task ``check_vacuum_pool`` (outside the pool) fails the run within a minute, naming
the pool and the command that creates it (the scheduler alone would wait forever).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from order_tracking.alerts.notifier import FailedRunNotifier
from order_tracking.orchestration.run_context import quiet_gx_logging
from order_tracking.orchestration.vacuum_task import POOL_GUARD_TASK, VACUUM_POOL
from order_tracking.settings import DagRetries

quiet_gx_logging()  # the failure callback (dag-processor) may load GX for the email's links
RETRIES = DagRetries.from_env(retries=1, retry_delay_secs=600)

DOC_MD = """
# order_tracking_vacuum

| task | table | operations | why |
|---|---|---|---|
| `vacuum_mart_uti` | `mart_uni_tracking_info` | VACUUM DELETE ONLY -> ANALYZE | 96 DELETE cycles/day |
| `vacuum_mart_uts` | `mart_uni_tracking_spath` | VACUUM DELETE ONLY -> ANALYZE | 96 DELETE cycles/day |
| `vacuum_mart_ecs_delete` | `mart_ecs_order_info` | VACUUM DELETE ONLY | post-trim DELETEs |
| `vacuum_mart_ecs_sort` | `mart_ecs_order_info` | VACUUM SORT ONLY -> ANALYZE | unsorted region grows |

All tasks run in pool `redshift_vacuum` (1 slot). Figures before/after go to the maintenance log.
A task fails if any of its steps failed (including a VACUUM that did nothing for lack of privilege).

`check_vacuum_pool` runs beside them in the default pool: it returns as soon as one vacuum task is
queued, and fails the run within a minute (skipping the waiting tasks) when the pool is missing.
"""

TASKS = ("vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete", "vacuum_mart_ecs_sort")

with DAG(
    dag_id="order_tracking_vacuum",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    tags=["order_tracking", "maintenance"],
    default_args={
        "owner": "order_tracking",
        "pool": VACUUM_POOL,
        "retries": RETRIES.retries,
        "retry_delay": timedelta(seconds=RETRIES.retry_delay_secs),
    },
    on_failure_callback=FailedRunNotifier(with_exceptions=False),
) as dag:

    def _vacuum_task(name: str):
        @task(task_id=name, pool=VACUUM_POOL)
        def run(**context):
            from order_tracking.orchestration.vacuum_task import run_vacuum_task

            return run_vacuum_task(name, context)

        return run()

    uti, uts, ecs_delete, ecs_sort = (_vacuum_task(name) for name in TASKS)
    ecs_delete >> ecs_sort

    @task(task_id=POOL_GUARD_TASK, pool="default_pool", retries=0, priority_weight=100)
    def check_vacuum_pool(**context):
        """Fail fast, naming the pool, when the vacuum tasks wait on a missing pool."""
        from order_tracking.orchestration.vacuum_task import check_vacuum_pool as run

        return run(context, list(TASKS))

    check_vacuum_pool()
