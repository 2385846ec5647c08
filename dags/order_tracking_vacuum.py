"""DAG 2 of the spec: nightly VACUUM/ANALYZE of the mart tables, one VACUUM at a time.

Redshift runs one VACUUM per cluster: every task is in the one-slot pool ``redshift_vacuum``, so
the graph keeps the spec's shape (a failing table does not block the others) while the scheduler
runs them one after another. Create the pool once:
``airflow pools set redshift_vacuum 1 "one Redshift VACUUM at a time"``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from order_tracking.airflow_tasks import VACUUM_POOL
from order_tracking.alerting import FailedRunNotifier

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
        "retries": int(os.environ.get("ORDER_TRACKING_DAG_RETRIES", "1")),
        "retry_delay": timedelta(minutes=10),
    },
    on_failure_callback=FailedRunNotifier(with_exceptions=False),
) as dag:

    def _vacuum_task(name: str):
        @task(task_id=name, pool=VACUUM_POOL)
        def run(**context):
            from order_tracking.airflow_tasks import run_vacuum_task

            return run_vacuum_task(name, context)

        return run()

    uti, uts, ecs_delete, ecs_sort = (_vacuum_task(name) for name in TASKS)
    ecs_delete >> ecs_sort
