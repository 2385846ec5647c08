"""What the two DAGs' tasks run: settings from Airflow connections, the GX checkpoint operator,
the unresolved-exceptions gate, the vacuum tasks and the vacuum pool guard.

Kept light at import time (Airflow and the provider's operator module only; neither imports GX):
the DAG files import the operator class from here while parsing. GX, the rules and the
maintenance engine are imported inside the task bodies.

Three kinds of failure, three behaviours:
- a finding (a failed expectation, the extraction alarm, unresolved exceptions) raises
  ``AirflowFailException``: the task fails at once, no retry;
- a configuration error (bad URL, unknown driver, missing table, wrong password, bad ``as_of``)
  also raises ``AirflowFailException``: retrying cannot fix it, and the alert should not wait;
- anything else (connection refused, a timeout) raises an ordinary exception: Airflow retries.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from great_expectations_provider.common.errors import GXValidationFailed
from great_expectations_provider.operators.validate_checkpoint import GXValidateCheckpointOperator

from order_tracking import alert_content
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

WAREHOUSE_CONN_ID = "order_tracking_redshift"
SOURCE_CONN_ID = "order_tracking_mysql"
AWS_CONN_ID = "order_tracking_aws"  # optional: credentials for ORDER_TRACKING_GX_STORE_URL
VACUUM_POOL = "redshift_vacuum"
VACUUM_POOL_DESCRIPTION = "one Redshift VACUUM at a time"
POOL_GUARD_TASK = "check_vacuum_pool"
AS_OF_PARAM = "as_of"
SUMMARY_KEY = "summary"  # the XCom each DQ task pushes (TEAM.md contract)

# DAG task id -> check name of order_tracking.monitoring / gx_project.CHECKS
DQ_TASKS = {
    "dq_extraction_count_check": "extraction_count",
    "dq_uti_uts_alignment": "uti_uts_alignment",
    "dq_missing_spath": "missing_spath",
    "dq_reactivated_missing_ecs": "reactivated_missing_ecs",
}
UNRESOLVED_TASK = "check_unresolved_exceptions"

# Airflow connection types -> the SQLAlchemy drivers we pin (DESIGN.md section 5). Without the
# amazon/mysql/postgres providers Airflow stores such types as "generic": `airflow-setup` then
# writes the driver into the extra {"drivername": ...}, which wins over the type.
DRIVERS = {
    "redshift": "redshift+psycopg2",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}

# Words in a driver/GX error that say "retrying cannot help" (messages of PostgreSQL, MariaDB,
# SQLAlchemy). Connection refused, timeouts and server restarts are not here: they retry.
_CONFIG_ERROR_WORDS = (
    "password authentication failed",
    "access denied",
    "does not exist",
    "doesn't exist",
    "unknown database",
    "no such table",
    "undefinedtable",
    "undefined table",
    "nosuchtable",
    "can't load plugin",
    "is not a valid sqlalchemy url",
    "permission denied",
)


# --- settings -------------------------------------------------------------------------------


def connection_url(conn_id: str) -> str | None:
    """SQLAlchemy URL of Airflow connection ``conn_id``, or None if no such connection exists.

    Built with ``URL.create`` from the connection's parts, so a password with ``@``, ``/`` or
    ``%`` needs no escaping. The extra ``{"drivername": "..."}`` overrides the driver and the extra
    ``{"query": {...}}`` adds URL query parameters (both written by ``airflow-setup``).
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from sqlalchemy.engine import URL

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    conn_type = (conn.conn_type or "").lower()
    driver = extra.get("drivername") or DRIVERS.get(conn_type)
    if not driver:
        raise AirflowFailException(
            f"Airflow connection {conn_id!r} has type {conn.conn_type!r} and no extra 'drivername': "
            "recreate it with `python -m order_tracking airflow-setup`"
        )
    url = URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=extra.get("query") or {},  # e.g. {"sslmode": "require"}
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


def requested_as_of(context: Mapping[str, Any]) -> datetime | None:
    """The run's ``as_of`` param (trigger form / ``--conf``) as naive UTC; None when empty."""
    from order_tracking.commands.common import parse_timestamp
    from order_tracking.errors import UserError

    params = context.get("params") or {}
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    raw = params.get(AS_OF_PARAM) or conf.get(AS_OF_PARAM)
    if raw is None or not str(raw).strip():
        return None
    try:
        return parse_timestamp(str(raw), f"param {AS_OF_PARAM}")
    except UserError as exc:
        raise AirflowFailException(str(exc)) from None


def run_as_of(context: Mapping[str, Any]) -> datetime:
    """The checked window's end: the ``as_of`` param, else ``data_interval_end``, else the
    logical date, else now (UTC)."""
    explicit = requested_as_of(context)
    if explicit is not None:
        return explicit
    for key in ("data_interval_end", "logical_date"):
        value = _naive_utc(context.get(key))
        if value is not None:
            return value
    return wall_clock_now()


def is_backfill(context: Mapping[str, Any]) -> bool:
    """A run made by `airflow backfill create` (it re-checks a past night)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type) == "backfill"


def data_docs_run_name(run_id: str | None, as_of: datetime) -> str:
    """The GX run name of a DQ task: the Airflow run id and as_of, in characters that stay the same
    in a file path and a URL (run ids hold ':' and '+', which Data Docs links would percent-encode)."""
    safe = re.sub(r"[^\w.-]+", "_", run_id or "airflow").strip("_")
    return f"{safe}__as_of_{as_of:%Y%m%dT%H%M%S}"


def wall_clock_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def quiet_gx_logging() -> None:
    """GX logs ~200 INFO lines per checkpoint ("Skipping registering function ... closure"):
    keep its warnings and errors, so that a task log shows our lines and the reason at a glance."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def is_config_error(exc: BaseException | str) -> bool:
    """True when retrying cannot help: a bad URL/driver, a missing table, a refused login."""
    import sqlalchemy as sa

    from order_tracking.errors import UserError

    if isinstance(exc, (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.NoSuchTableError)):
        return True
    if isinstance(exc, sa.exc.ProgrammingError):  # undefined table/column: the SQL cannot work
        return True
    text = str(exc).lower()
    if isinstance(exc, UserError) and not text.startswith("cannot connect"):
        return True  # our own one-line configuration errors (missing GX project, bad setting)
    return any(word in text for word in _CONFIG_ERROR_WORDS)


# --- the DQ checks through the provider's operator -----------------------------------------------


def _not_configured(*_args: Any) -> Any:
    raise RuntimeError("OrderTrackingCheckpointOperator configures GX in execute()")


class _CheckpointWithParameters:
    """Stands in for a GX Checkpoint so that the provider's ``checkpoint.run(batch_parameters=...)``
    also passes our ``expectation_parameters`` and a run name (Data Docs list runs by it); keeps
    the GX context and the result for the operator to classify."""

    def __init__(self, check: str, expectation_parameters: dict[str, Any], run_name: str) -> None:
        self.check = check
        self.expectation_parameters = expectation_parameters
        self.run_name = run_name
        self.gx_context: Any = None
        self.checkpoint: Any = None
        self.result: Any = None
        self.recorded: list = []  # what the exceptions action wrote (RecordResult)
        self.store_error: str | None = None  # the shared GX store was unusable: local stores used

    def load_context(self, settings: Settings) -> Any:
        """The provider's ``configure_file_data_context`` callable: ``gx/`` loaded and verified,
        on the local stores when the shared one is unusable (findings before their pages)."""
        from order_tracking import gx_project

        context, self.store_error = gx_project.load_or_local(settings)
        return context

    def configure(self, gx_context: Any) -> _CheckpointWithParameters:
        """The provider's ``configure_checkpoint`` callable."""
        from order_tracking import gx_project

        self.gx_context = gx_context
        self.checkpoint = gx_context.checkpoints.get(gx_project.CHECKS[self.check].checkpoint)
        return self

    def run(self, batch_parameters: dict | None = None, **kwargs: Any) -> Any:
        from great_expectations.core.run_identifier import RunIdentifier

        from expectations_custom.actions import exceptions_recorded

        with exceptions_recorded() as self.recorded:
            self.result = self.checkpoint.run(
                batch_parameters=batch_parameters or None,
                expectation_parameters=self.expectation_parameters,
                run_id=RunIdentifier(run_name=self.run_name),
                **kwargs,
            )
        return self.result

    def data_docs_page(self) -> str | None:
        if self.result is None or self.gx_context is None:
            return None
        identifier = next(iter(self.result.run_results))
        try:
            urls = self.gx_context.get_docs_sites_urls(resource_identifier=identifier)
        except Exception:  # a missing link must never hide the finding
            log.warning("no Data Docs page for %s", self.check, exc_info=True)
            return None
        return urls[0]["site_url"] if urls else None


def empty_summary(check: str, as_of: datetime | None) -> dict[str, Any]:
    """The XCom ``summary`` dict of TEAM.md's contract, before anything ran."""
    return {
        "check": check,
        "success": False,
        "status": "error",
        "failing": 0,
        "new": 0,
        "already_open": 0,
        "exception_type": None,
        "window": [None, None],
        "as_of": as_of.isoformat() if as_of else None,
        "sample": [],
        "data_docs_page": None,
        "error": None,
    }


def summarize(check: str, as_of: datetime, wrapper: _CheckpointWithParameters) -> dict[str, Any]:
    """The contract's summary of one checkpoint run (alert_content.summary_from_result)."""
    result = wrapper.result
    if result is None:
        return {**empty_summary(check, as_of), "error": "the checkpoint did not run"}
    recorded = [r.__dict__ for r in wrapper.recorded]
    validation = next(iter(result.run_results.values()))
    return alert_content.summary_from_result(
        check,
        validation.results[0],
        recorded,
        as_of=as_of.isoformat(),
        data_docs_page=wrapper.data_docs_page(),
    )


def push_summary(context: Any, summary: dict[str, Any]) -> None:
    """XCom ``summary`` for the alert email: pushed before the task returns or raises (a failed
    task has no return value)."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    if ti is None:
        return
    try:
        ti.xcom_push(key=SUMMARY_KEY, value=summary)
    except Exception:  # a lost summary must not hide the task's own outcome
        log.warning("could not push the XCom summary", exc_info=True)


class OrderTrackingCheckpointOperator(GXValidateCheckpointOperator):
    """``GXValidateCheckpointOperator`` over the committed ``gx/`` file context, for one check.

    The provider passes only batch parameters; this subclass adds the expectation parameters the
    suites read (``as_of``: the run's ``as_of`` param, else its ``data_interval_end``; Test 0:
    the ``as_of`` param, else the task's wall-clock time, plus the MySQL counts measured first),
    names the GX run after the Airflow run, pushes the XCom ``summary`` and classifies the
    outcome: findings and configuration errors fail without retry, other errors retry.
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
        quiet_gx_logging()
        summary = empty_summary(self.check, None)
        try:
            as_of, wrapper = self._prepare(context)
            summary = empty_summary(self.check, as_of)
            with contextlib.suppress(GXValidationFailed):  # classified below from the result
                super().execute(context)
            summary = summarize(self.check, as_of, wrapper)
            store_error = wrapper.store_error
        except AirflowFailException as exc:
            summary["error"] = str(exc)
            push_summary(context, summary)
            raise
        except Exception as exc:
            from order_tracking import db

            summary["error"] = f"{type(exc).__name__}: {db.short_reason(exc)}"
            push_summary(context, summary)
            if is_config_error(exc):
                raise AirflowFailException(f"{self.check}: configuration error: {summary['error']}") from exc
            raise
        push_summary(context, summary)
        if store_error is not None:
            log.error("%s: this run's results and Data Docs stayed local: %s", self.check, store_error)
        self._raise_for(summary)
        if store_error is not None:  # written, but the shared site missed the run: retry (transient)
            raise RuntimeError(f"{self.check}: {store_error}")
        log.info("%s passed: %s", self.check, summary)
        return summary

    def _prepare(self, context: Any) -> tuple[datetime, _CheckpointWithParameters]:
        from order_tracking import monitoring

        settings = settings_for_airflow()
        explicit = requested_as_of(context)
        if self.check == "extraction_count":
            # Raw tables keep little history: a scheduled Test 0 anchors on now, not on the run's
            # interval; an explicit as_of or a backfill (re-checks of past nights) apply to it too.
            as_of = explicit or (run_as_of(context) if is_backfill(context) else wall_clock_now())
            parameters = {
                "as_of": as_of.isoformat(),
                "source_counts": monitoring.measure_source_counts(settings, as_of),
            }
        else:
            as_of = explicit or run_as_of(context)
            parameters = {"as_of": as_of.isoformat()}
        log.info(
            "running checkpoint for %s as of %s (%s)",
            self.check,
            as_of.isoformat(),
            "as_of param" if explicit else "scheduled window",
        )
        run_name = data_docs_run_name(context.get("run_id"), as_of)
        wrapper = _CheckpointWithParameters(self.check, parameters, run_name)
        self.configure_file_data_context = functools.partial(wrapper.load_context, settings)
        self.configure_checkpoint = wrapper.configure
        return as_of, wrapper

    def _raise_for(self, summary: dict[str, Any]) -> None:
        window = f"{summary['window'][0]} .. {summary['window'][1]}"
        if summary["status"] == "error":
            message = f"{self.check}: the check could not run: {summary['error']}"
            if is_config_error(summary["error"] or ""):
                raise AirflowFailException(message)
            raise RuntimeError(message)  # e.g. the warehouse went away mid-query: retryable
        if summary["status"] == "pass":
            return
        if self.check == "extraction_count":
            tables = ", ".join(
                f"{r['table']} (MySQL {r['source']}, raw {r['raw']})" for r in summary.get("shortfall") or []
            )
            raise AirflowFailException(
                f"extraction count alarm (Test 0): raw tables hold fewer rows than MySQL for "
                f"{tables or '?'} in window {window}; check the extraction logs and Redshift COPY errors"
            )
        sample = ", ".join(str(s["order_id"]) for s in summary["sample"])
        raise AirflowFailException(
            f"{summary['exception_type']}: {summary['failing']} order(s) failing "
            f"({summary['new']} new, {summary['already_open']} already open) in window {window}; "
            f"sample: {sample}"
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


def refresh_health_page(settings: Settings) -> None:
    """The health page once all four checks wrote: each DQ task rebuilt it as it finished, the
    last one possibly before a parallel task's write. Never fails the gate."""
    try:
        from expectations_custom import data_docs
        from order_tracking import gx_project

        context, store_error = gx_project.load_or_local(settings)
        in_bucket = settings.gx_store is not None and store_error is None
        data_docs.refresh_health_page(context, None if in_bucket else settings.data_docs_index.parent)
    except Exception:
        log.warning("Data Docs health page not refreshed", exc_info=True)


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
    try:
        engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, role="warehouse")
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
        finally:
            engine.dispose()
    except Exception as exc:
        fail_fast_on_config_errors(UNRESOLVED_TASK, exc)
        raise
    refresh_health_page(settings)
    docs = settings.data_docs_location
    for etype, count in summary.items():
        log.info("unresolved %s: %d", etype, count)
    problems = [m for m in (total_message, f"failed checks: {', '.join(failed)}" if failed else "") if m]
    if problems:
        raise AirflowFailException(f"{'; '.join(problems)}. Data Docs: {docs}")
    return {"unresolved": summary, "failed_tasks": failed, "data_docs": str(docs)}


# --- vacuum ---------------------------------------------------------------------------------------

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


def fail_fast_on_config_errors(what: str, exc: Exception) -> None:
    """Re-raise a configuration error as ``AirflowFailException`` (no retry); else return."""
    if is_config_error(exc):
        from order_tracking import db

        raise AirflowFailException(f"{what}: configuration error: {db.short_reason(exc)}") from exc


def run_vacuum_task(task_name: str, context: Any | None = None) -> list[dict[str, Any]]:
    """One of the spec's vacuum tasks through the maintenance engine; fails if a step failed."""
    from order_tracking import db, maintenance

    try:
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
    return rows
