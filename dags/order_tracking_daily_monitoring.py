"""DAG 1 of the spec: the nightly data quality checks on the last 24 hours of orders.

Thin by design: it only wires tasks. The checks run the committed GX checkpoints (``gx/``) through
the great_expectations provider's operator; GX itself is imported only when a task runs, so
parsing this file stays cheap.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task

from order_tracking.alerts.notifier import FailedRunNotifier
from order_tracking.orchestration.gate import UNRESOLVED_TASK
from order_tracking.orchestration.operator import DQ_TASKS, OrderTrackingCheckpointOperator
from order_tracking.orchestration.run_context import AS_OF_PARAM, quiet_gx_logging
from order_tracking.settings import DagRetries

# Every process that parses this file (dag-processor, each task's process) logs GX's warnings only.
quiet_gx_logging()
RETRIES = DagRetries.from_env(retries=2, retry_delay_secs=300)

DOC_MD = """
# order_tracking_daily_monitoring

Four data quality tests over the last **24 hours** of orders (`as_of - 24h < update_time <= as_of`,
`as_of` = the run's `data_interval_end`, or the run param `as_of`). Findings of Tests 1-3 go to
`settlement_ods.order_tracking_exceptions` (one open row per order and type; re-detection moves
`last_seen_at`). One email per failed run (SmtpNotifier, `smtp_default`).

**Re-checking a past night:** trigger with the param `as_of` (trigger form, or
`airflow dags trigger order_tracking_daily_monitoring --conf '{"as_of": "2026-11-25T03:00:00"}'`):
all four tests, Test 0 included, then check the window ending at that time (UTC if no offset).
Empty (the default) = scheduled behaviour.

### Test 0 - `dq_extraction_count_check` (extraction count check, MySQL vs Redshift raw)
Row counts of `kuaisong.ecs_order_info`, `uni_tracking_info`, `uni_tracking_spath` vs the
`settlement_public.*_raw` copies in the closed window `[now - 2h 5min, now - 5min)` (the task's
wall-clock time: raw tables keep little history; the `as_of` param overrides it). Alarm when the
MySQL count > the raw count (rows dropped by extraction or Redshift COPY). Raises; writes no
exception rows. Check the extraction logs and Redshift COPY errors. A raw count above MySQL is
normal (re-extraction cycles).

### Test 1 - `dq_uti_uts_alignment` -> `UTI_UTS_TIME_MISMATCH`
`update_time` in `mart_uni_tracking_info` must equal `MAX(pathtime)` in `mart_uni_tracking_spath`.
Causes: backdated update_time, a missed uti or uts extraction cycle, sync drift. Investigate the
extraction logs for the order's time window; backfill if needed.

### Test 2 - `dq_missing_spath` -> `ORDER_MISSING_SPATH`
Orders with no row in `mart_uni_tracking_spath` and none in any `hist_uni_tracking_spath_*` table
(found by name: a new half-year table needs no change). A genuine data gap: verify in
`kuaisong.uni_tracking_spath`; if the source has it, a targeted backfill is required.

### Test 3 - `dq_reactivated_missing_ecs` -> `REACTIVATED_ORDER_MISSING_ECS`
Orders with no row in `mart_ecs_order_info`: dormant > 6 months, archived to
`hist_ecs_order_info_*`, then reactivated. Manual fix: insert the row back into mart_ecs from the
history table, then delete it there. Rare.

### Final step - `check_unresolved_exceptions` (trigger rule ALL_DONE)
Runs after all four, logs the unresolved rows per type and fails while any remain (or when a check
failed): that failure sends the one alert email of the run.

Findings fail a task at once (no retry); infrastructure errors (connection refused) are retried.
Connections: `order_tracking_redshift`, `order_tracking_mysql`, `smtp_default` (else the
`ORDER_TRACKING_*` environment). Alert address: Variable `order_tracking_alert_email`.
"""

with DAG(
    dag_id="order_tracking_daily_monitoring",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    tags=["order_tracking", "data_quality"],
    default_args={
        "owner": "order_tracking",
        "retries": RETRIES.retries,
        "retry_delay": timedelta(seconds=RETRIES.retry_delay_secs),
    },
    on_failure_callback=FailedRunNotifier(),
    params={
        # None and nullable: the UI's trigger form treats a non-nullable param as required and
        # disables "Trigger" while it is empty (issue 25 F3); a plain "run now" must work.
        AS_OF_PARAM: Param(
            None,
            type=["null", "string"],
            title="as_of (re-check a past night)",
            description="End of the checked window, ISO 8601, UTC if no offset "
            "(e.g. 2026-11-25T03:00:00). Sets the window of all four tests, Test 0 included. "
            "Empty: the run's data interval end (Test 0: the task's wall-clock time); a run "
            "triggered without a logical date has none: its trigger time (run_after) is used.",
        )
    },
) as dag:
    checks = [OrderTrackingCheckpointOperator(task_id=tid, check=name) for tid, name in DQ_TASKS.items()]

    @task(task_id=UNRESOLVED_TASK, trigger_rule=TriggerRule.ALL_DONE)
    def check_unresolved_exceptions(**context):
        """Fail the run while unresolved exceptions remain (or a check failed)."""
        from order_tracking.orchestration.gate import check_unresolved_exceptions as run

        return run(context)

    checks >> check_unresolved_exceptions()
