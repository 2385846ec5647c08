"""The final gate ``check_unresolved_exceptions``: fails the run while exceptions stay open or a
check failed."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from order_tracking.orchestration.connections import (
    settings_for_airflow,
)
from order_tracking.orchestration.failures import (
    fail_fast_on_config_errors,
)
from order_tracking.orchestration.operator import (
    DQ_TASKS,
)
from order_tracking.settings import Settings

log = logging.getLogger(__name__)


UNRESOLVED_TASK = "check_unresolved_exceptions"
DOCS_LINKS_KEY = "data_docs_links"  # XCom: the run's alerts.links.DocsLinks


def failed_tasks(dag_id: str, run_id: str, task_ids: list[str] | None = None) -> list[str]:
    """Task ids of ``run_id`` that failed (or could not run because of a failed upstream).

    Through the task SDK's supervisor when it is there (workers, DAG processor callbacks); else
    from the metadata database (``dag.test()`` runs callbacks in-process with no supervisor).
    """
    bad = {"failed", "upstream_failed"}
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=task_ids, run_ids=[run_id])
        per_run = states.get(run_id, {})
        return sorted(t for t, s in per_run.items() if str(s) in bad)
    except Exception:
        log.debug("no supervisor for task states; reading the metadata database", exc_info=True)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(TaskInstance.task_id, TaskInstance.state).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        rows = [(t, str(s)) for t, s in query if s is not None]
    return sorted(t for t, s in rows if s in bad and (task_ids is None or t in task_ids))


def unresolved_counts(settings: Settings) -> dict[str, int]:
    from order_tracking import db, schema
    from order_tracking.checks import exceptions_store

    engine = db.create_engine(
        settings.warehouse_url, settings.warehouse_schemas, role="warehouse", timeouts=settings.timeouts
    )
    try:
        return exceptions_store.unresolved_summary(engine, schema.build_tables(settings))
    finally:
        engine.dispose()


def refresh_health_page(settings: Settings) -> None:
    """The health page once all four checks wrote: each DQ task rebuilt it as it finished, the
    last one possibly before a parallel task's write. Never fails the gate."""
    try:
        from expectations_custom.data_docs import build as data_docs
        from order_tracking.checks import gx_project
        from order_tracking.orchestration.run_context import quiet_gx_logging

        quiet_gx_logging()  # loading the context registers GX's expectations: ~200 INFO lines

        context, store_error = gx_project.load_or_local(settings)
        in_bucket = settings.gx_store is not None and store_error is None
        data_docs.refresh_health_page(
            context, None if in_bucket else settings.data_docs_index.parent, settings
        )
    except Exception:
        log.warning("Data Docs health page not refreshed", exc_info=True)


def check_unresolved_exceptions(context: Any) -> dict[str, Any]:
    """The spec's final step: log the unresolved summary and fail the run if any remain.

    It also fails when a DQ task failed (e.g. Test 0, which writes no rows): this is the DAG's
    only leaf, and in Airflow a run is "failed" only when a leaf fails, so without this the
    extraction alarm would leave the run green and send no email.
    """
    from order_tracking import db, schema
    from order_tracking.alerts.links import DocsLinks
    from order_tracking.checks import exceptions_store

    settings = settings_for_airflow()
    ti = context["ti"]
    # Where this run's pages are and how they open: the notifier (another process, maybe other
    # settings) links from this, and says so when its own settings disagree.
    links = DocsLinks.from_settings(settings)
    ti.xcom_push(key=DOCS_LINKS_KEY, value=links.to_dict())
    failed = failed_tasks(ti.dag_id, ti.run_id, list(DQ_TASKS))
    try:
        engine = db.create_engine(
            settings.warehouse_url, settings.warehouse_schemas, role="warehouse", timeouts=settings.timeouts
        )
        try:
            db.check_connection(engine, "warehouse")
            tables = schema.build_tables(settings)
            try:
                summary = exceptions_store.check_unresolved(engine, tables)
                total_message = ""
            except exceptions_store.UnresolvedExceptionsError as err:
                summary, total_message = err.summary, str(err)
            # Open exceptions once all four checks wrote: the alert's "still open" and oldest age.
            open_now = {
                r.exception_type: {"count": r.count, "oldest_detected_at": str(r.oldest_detected_at)}
                for r in exceptions_store.summary_by_type(engine, tables)
            }
            ti.xcom_push(key="open_exceptions", value=open_now)
            # Issue 23: open ones whose orders pass again (still unresolved: the spec's gate).
            now_passing = exceptions_store.now_passing_summary(engine, tables)
        finally:
            engine.dispose()
    except Exception as exc:
        fail_fast_on_config_errors(UNRESOLVED_TASK, exc)
        raise
    refresh_health_page(settings)
    # Results kept ORDER_TRACKING_KEEP_DAYS: pruned here, bounded in time, as monitor does; the
    # next run's index no longer lists them.
    from order_tracking.checks.run import prune_old_results

    prune_error = prune_old_results(settings)
    docs = links.link(settings.data_docs_location)
    note = links.note()
    if note:
        log.info("%s", note)
    for etype, count in summary.items():
        log.info("unresolved %s: %d", etype, count)
    healed = now_passing_text(summary, now_passing)
    if healed:
        log.info("%s", healed)
        total_message = f"{total_message} ({healed})" if total_message else total_message
    failed_line = f"failed checks: {', '.join(failed)}" if failed else ""
    problems = [m for m in (total_message, failed_line, prune_error or "") if m]
    if problems:
        # The run fails and its alert is due: say here if the email cannot go out (F4).
        from order_tracking.orchestration.alert_probe import warn_if_alert_cannot_be_sent

        warn_if_alert_cannot_be_sent()
        raise AirflowFailException(f"{'; '.join(problems)}. Data Docs: {docs}")
    return {"unresolved": summary, "now_passing": now_passing, "failed_tasks": failed, "data_docs": str(docs)}


def now_passing_text(unresolved: dict[str, int], now_passing: dict[str, int] | None) -> str:
    """``3 of them now pass (UTI_UTS_TIME_MISMATCH=3): ...``; says "unknown" without the column."""
    if now_passing is None:
        return "now passing: unknown (run `python -m order_tracking init-db` to add the columns)"
    total = sum(now_passing.values())
    if not total or not sum(unresolved.values()):
        return ""
    parts = ", ".join(f"{t}={n}" for t, n in sorted(now_passing.items()))
    return (
        f"{total} of them now pass ({parts}): close them with `python -m order_tracking resolve`, "
        "or set ORDER_TRACKING_AUTO_RESOLVE=true"
    )
