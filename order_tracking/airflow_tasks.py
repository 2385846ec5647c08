"""What the two DAGs' tasks run: settings from Airflow connections, the GX checkpoint operator,
the unresolved-exceptions gate and the vacuum tasks.

Kept light at import time (Airflow and the provider's operator module only; neither imports GX):
the DAG files import the operator class from here while parsing. GX, the rules and the
maintenance engine are imported inside the task bodies.

Findings and infrastructure errors fail differently: a finding (a failed expectation, the
extraction alarm, unresolved exceptions) raises ``AirflowFailException`` so the task fails at
once without retries; anything else (connection refused, a GX error) raises an ordinary
exception and Airflow retries it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from great_expectations_provider.common.errors import GXValidationFailed
from great_expectations_provider.operators.validate_checkpoint import GXValidateCheckpointOperator

from order_tracking import gx_results
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

WAREHOUSE_CONN_ID = "order_tracking_redshift"
SOURCE_CONN_ID = "order_tracking_mysql"
AWS_CONN_ID = "order_tracking_aws"  # optional: credentials for ORDER_TRACKING_GX_STORE_URL
VACUUM_POOL = "redshift_vacuum"

# DAG task id -> check name of order_tracking.monitoring / gx_project.CHECKS
DQ_TASKS = {
    "dq_extraction_count_check": "extraction_count",
    "dq_uti_uts_alignment": "uti_uts_alignment",
    "dq_missing_spath": "missing_spath",
    "dq_reactivated_missing_ecs": "reactivated_missing_ecs",
}
UNRESOLVED_TASK = "check_unresolved_exceptions"

# Airflow connection types -> the SQLAlchemy drivers we pin (DESIGN.md section 5).
DRIVERS = {
    "redshift": "redshift+psycopg2",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


# --- settings -------------------------------------------------------------------------------


def connection_url(conn_id: str) -> str | None:
    """SQLAlchemy URL of Airflow connection ``conn_id``, or None if no such connection exists.

    Built with ``URL.create`` from the connection's parts, so a password with ``@``, ``/`` or
    ``%`` needs no escaping. The extra ``{"drivername": "..."}`` overrides the driver.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from sqlalchemy.engine import URL

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    driver = extra.get("drivername") or DRIVERS.get((conn.conn_type or "").lower(), conn.conn_type)
    url = URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def settings_for_airflow() -> Settings:
    """Settings for a task: Airflow connections when they exist, else the ``ORDER_TRACKING_*`` env.

    The warehouse URL is also put into this task process's environment because the checkpoint's
    exceptions action reads ``Settings.from_env()`` inside GX. The checkpoints' own email action is
    switched off (it runs only when ``ORDER_TRACKING_SMTP_HOST`` is set): in Airflow the one
    alert per failed run is the DAG's SmtpNotifier, so no finding is mailed twice.
    """
    from order_tracking import aws_connection, db

    os.environ.pop("ORDER_TRACKING_SMTP_HOST", None)
    aws_connection.use_airflow_connection(AWS_CONN_ID)  # else boto3's standard chain (MWAA: execution role)
    warehouse, source = connection_url(WAREHOUSE_CONN_ID), connection_url(SOURCE_CONN_ID)
    if warehouse:
        os.environ["ORDER_TRACKING_WAREHOUSE_URL"] = warehouse
    if source:
        os.environ["ORDER_TRACKING_SOURCE_URL"] = source
    settings = Settings.from_env(warehouse_url=warehouse, source_url=source)
    log.info(
        "warehouse %s (%s), source %s (%s)",
        db.redact(settings.warehouse_url),
        f"connection {WAREHOUSE_CONN_ID}" if warehouse else "environment",
        db.redact(settings.source_url),
        f"connection {SOURCE_CONN_ID}" if source else "environment",
    )
    return settings


def _naive_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second)


def run_as_of(context: Mapping[str, Any]) -> datetime:
    """The checked window's end: ``data_interval_end``, else the logical date, else now (UTC)."""
    for key in ("data_interval_end", "logical_date"):
        value = _naive_utc(context.get(key))
        if value is not None:
            return value
    return wall_clock_now()


def wall_clock_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# --- the DQ checks through the provider's operator -----------------------------------------------


def _not_configured(*_args: Any) -> Any:
    raise RuntimeError("OrderTrackingCheckpointOperator configures GX in execute()")


def _load_gx_context(settings: Settings) -> Any:
    from order_tracking import gx_project

    return gx_project.load(settings)  # also asserts every suite holds its one expectation


class _CheckpointWithParameters:
    """Stands in for a GX Checkpoint so that the provider's ``checkpoint.run(batch_parameters=...)``
    also passes our ``expectation_parameters``; keeps the result for the operator to classify."""

    def __init__(self, check: str, expectation_parameters: dict[str, Any]) -> None:
        self.check = check
        self.expectation_parameters = expectation_parameters
        self.checkpoint: Any = None
        self.result: Any = None

    def configure(self, gx_context: Any) -> _CheckpointWithParameters:
        """The provider's ``configure_checkpoint`` callable."""
        from order_tracking import gx_project

        self.checkpoint = gx_context.checkpoints.get(gx_project.CHECKS[self.check].checkpoint)
        return self

    def run(self, batch_parameters: dict | None = None, **kwargs: Any) -> Any:
        self.result = self.checkpoint.run(
            batch_parameters=batch_parameters or None,
            expectation_parameters=self.expectation_parameters,
            **kwargs,
        )
        return self.result


class OrderTrackingCheckpointOperator(GXValidateCheckpointOperator):
    """``GXValidateCheckpointOperator`` over the committed ``gx/`` file context, for one check.

    The provider passes only batch parameters; this subclass adds the expectation parameters the
    suites read (``as_of``: the run's ``data_interval_end``; Test 0: the task's wall-clock time
    and the MySQL counts measured first) and classifies a failed validation: findings fail the
    task without retry, errors inside GX are raised as retryable.
    """

    ui_color = "#e8f4ff"

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        # The real callables are bound in execute(): Airflow runs a copy of this operator, so a
        # bound method created here would point at the parse-time instance.
        super().__init__(
            configure_checkpoint=_not_configured,
            context_type="file",
            configure_file_data_context=_not_configured,
            **kwargs,
        )
        self.check = check

    def execute(self, context: Any) -> dict[str, Any]:
        from order_tracking import monitoring

        settings = settings_for_airflow()
        if self.check == "extraction_count":
            # Raw tables keep little history: Test 0 anchors on now, not on the run's interval.
            as_of = wall_clock_now()
            parameters = {
                "as_of": as_of.isoformat(),
                "source_counts": monitoring.measure_source_counts(settings, as_of),
            }
        else:
            as_of = run_as_of(context)
            parameters = {"as_of": as_of.isoformat()}
        log.info("running checkpoint for %s as of %s", self.check, as_of.isoformat())
        wrapper = _CheckpointWithParameters(self.check, parameters)
        self.configure_file_data_context = functools.partial(_load_gx_context, settings)
        self.configure_checkpoint = wrapper.configure
        try:
            super().execute(context)
        except GXValidationFailed:
            self._raise_for_result(wrapper)
        summary = self._summary(wrapper)
        log.info("%s passed: %s", self.check, summary)
        return summary

    def _summary(self, wrapper: _CheckpointWithParameters) -> dict[str, Any]:
        from expectations_custom.actions import RECORDED

        result = wrapper.result
        if result is None:
            return {"check": self.check}
        recorded = RECORDED.pop(str(result.run_id), [])
        validation = next(iter(result.run_results.values()))
        evr = validation.results[0]
        res = evr.result or {}
        details = res.get("details") or {}
        return {
            "check": self.check,
            "success": bool(evr.success),
            "failing": int(res.get("observed_value") or 0),
            "exception_type": details.get("exception_type"),
            "window": [details.get("window_start"), details.get("window_end")],
            "sample": [str(r.get("order_id", r.get("table_name"))) for r in (details.get("sample") or [])][
                :20
            ],
            "new": sum(r.new for r in recorded),
            "already_open": sum(r.already_open for r in recorded),
            "exception_info": gx_results.result_error(evr),
        }

    def _raise_for_result(self, wrapper: _CheckpointWithParameters) -> None:
        summary = self._summary(wrapper)
        if summary.get("exception_info"):
            # GX caught an error (e.g. the warehouse went away mid-query): retryable.
            message = str(summary["exception_info"]).strip().splitlines()[0][:300]
            raise RuntimeError(f"{self.check}: the check could not run: {message}")
        if self.check == "extraction_count":
            raise AirflowFailException(
                f"extraction count alarm (Test 0): raw tables hold fewer rows than MySQL for "
                f"{', '.join(summary['sample']) or '?'} in window {summary['window'][0]} .. "
                f"{summary['window'][1]}; check the extraction logs and Redshift COPY errors"
            )
        raise AirflowFailException(
            f"{summary['exception_type']}: {summary['failing']} order(s) failing "
            f"({summary['new']} new, {summary['already_open']} already open) in window "
            f"{summary['window'][0]} .. {summary['window'][1]}; sample: {', '.join(summary['sample'])}"
        )


# --- the final gate ------------------------------------------------------------------------------


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
    from order_tracking import db, exceptions_store, schema

    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
    try:
        return exceptions_store.unresolved_summary(engine, schema.build_tables(settings))
    finally:
        engine.dispose()


def check_unresolved_exceptions(context: Any) -> dict[str, Any]:
    """The spec's final step: log the unresolved summary and fail the run if any remain.

    It also fails when a DQ task failed (e.g. Test 0, which writes no rows): this is the DAG's
    only leaf, and in Airflow a run is "failed" only when a leaf fails, so without this the
    extraction alarm would leave the run green and send no email.
    """
    from order_tracking import db, exceptions_store, schema

    settings = settings_for_airflow()
    ti = context["ti"]
    failed = failed_tasks(ti.dag_id, ti.run_id, list(DQ_TASKS))
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
    try:
        db.check_connection(engine, "warehouse")
        try:
            summary = exceptions_store.check_unresolved(engine, schema.build_tables(settings))
            total_message = ""
        except exceptions_store.UnresolvedExceptionsError as err:
            summary, total_message = err.summary, str(err)
    finally:
        engine.dispose()
    docs = settings.data_docs_index
    for etype, count in summary.items():
        log.info("unresolved %s: %d", etype, count)
    problems = [m for m in (total_message, f"failed checks: {', '.join(failed)}" if failed else "") if m]
    if problems:
        raise AirflowFailException(f"{'; '.join(problems)}. Data Docs: {docs}")
    return {"unresolved": summary, "failed_tasks": failed, "data_docs": str(docs)}


# --- vacuum ---------------------------------------------------------------------------------------


def require_pool(pool_name: str = VACUUM_POOL) -> int:
    """Fail unless the pool exists: without it the VACUUMs would not be serialized."""
    try:
        from airflow.models.pool import Pool
        from airflow.utils.session import create_session

        with create_session() as session:
            pool = session.query(Pool).filter(Pool.pool == pool_name).one_or_none()
            slots = None if pool is None else pool.slots
    except Exception as exc:
        # A worker in Airflow 3 may not reach the metadata database. There the scheduler is the
        # guard: it never queues a task whose pool does not exist (only dag.test ignores pools).
        log.warning("cannot read pool %s (%s); the scheduler enforces it", pool_name, type(exc).__name__)
        return -1
    if slots is None:
        raise AirflowFailException(
            f"Airflow pool {pool_name!r} does not exist: create it with "
            f"`airflow pools set {pool_name} 1 'one Redshift VACUUM at a time'` "
            "so that VACUUMs never run at once"
        )
    if slots != 1:
        log.warning("pool %s has %s slots; Redshift runs one VACUUM at a time: use 1", pool_name, slots)
    return int(slots)


def run_vacuum_task(task_name: str, context: Any | None = None) -> list[dict[str, Any]]:
    """One of the spec's vacuum tasks through the maintenance engine; fails if a step failed."""
    from order_tracking import db, maintenance

    require_pool()
    settings = settings_for_airflow()
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
    try:
        db.check_connection(engine, "warehouse")
        run_id = None
        if context is not None and context.get("run_id"):
            run_id = str(context["run_id"])[:64]
        outcomes = maintenance.run_task(engine, settings, task_name, run_id=run_id)
    finally:
        engine.dispose()
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
    for o in maintenance.unknowns(outcomes):  # ran, effect unproven: a warning, not a failure
        log.warning("%s %s: effect unknown: %s", o.operation, o.table, o.error)
    failed = maintenance.failures(outcomes)
    if failed:
        detail = "; ".join(f"{o.operation} {o.table}: {o.error}" for o in failed)
        raise RuntimeError(f"{len(failed)} maintenance step(s) failed: {detail}")
    return rows
