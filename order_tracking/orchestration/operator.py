"""The DQ checks as Airflow tasks: the GX provider's ``GXValidateCheckpointOperator`` running our
committed checkpoints with the run's window, and the summary each task pushes to XCom."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from great_expectations_provider.common.errors import GXValidationFailed
from great_expectations_provider.operators.validate_checkpoint import GXValidateCheckpointOperator

from order_tracking.alerts import content as alert_content
from order_tracking.orchestration.connections import (
    settings_for_airflow,
)
from order_tracking.orchestration.failures import (
    is_config_error,
)
from order_tracking.orchestration.run_context import (
    data_docs_run_name,
    is_backfill,
    quiet_gx_logging,
    requested_as_of,
    run_as_of,
    wall_clock_now,
)
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

SUMMARY_KEY = "summary"  # the XCom each DQ task pushes (TEAM.md contract)

# DAG task id -> check name of order_tracking.checks.run / gx_project.CHECKS
DQ_TASKS = {
    "dq_extraction_count_check": "extraction_count",
    "dq_uti_uts_alignment": "uti_uts_alignment",
    "dq_missing_spath": "missing_spath",
    "dq_reactivated_missing_ecs": "reactivated_missing_ecs",
}


def _not_configured(*_args: Any) -> Any:
    raise RuntimeError("OrderTrackingCheckpointOperator configures GX in execute()")


class _CheckpointWithParameters:
    """Stands in for a GX Checkpoint so that the provider's ``checkpoint.run(batch_parameters=...)``
    also passes our ``expectation_parameters`` and a run name (Data Docs list runs by it); keeps
    the GX context and the result for the operator to classify."""

    def __init__(
        self, check: str, expectation_parameters: dict[str, Any], run_name: str, settings: Settings
    ) -> None:
        self.check = check
        self.settings = settings  # the task's one configuration, bound while GX runs
        self.expectation_parameters = expectation_parameters
        self.run_name = run_name
        self.gx_context: Any = None
        self.checkpoint: Any = None
        self.result: Any = None
        self.recorded: list = []  # what the exceptions action wrote (RecordResult)
        self.faults: Any = None  # store_faults.StoreFaults: a store that failed during the run
        self.store_error: str | None = None  # the shared GX store was unusable: local stores used

    def load_context(self) -> Any:
        """The provider's ``configure_file_data_context`` callable: ``gx/`` loaded and verified,
        on the local stores when the shared one is unusable (findings before their pages)."""
        from order_tracking.checks import gx_project

        context, self.store_error = gx_project.load_or_local(self.settings)
        if self.store_error is not None:  # the results and pages stay local for this run
            self.settings = dataclasses.replace(self.settings, gx_store=None)
        return context

    def configure(self, gx_context: Any) -> _CheckpointWithParameters:
        """The provider's ``configure_checkpoint`` callable."""
        from order_tracking.checks import gx_project

        self.gx_context = gx_context
        self.checkpoint = gx_context.checkpoints.get(gx_project.CHECKS[self.check].checkpoint)
        return self

    def run(self, batch_parameters: dict | None = None, **kwargs: Any) -> Any:
        from great_expectations.core.run_identifier import RunIdentifier

        from expectations_custom.actions import exceptions_recorded
        from expectations_custom.run_settings import settings_bound
        from expectations_custom.staging import findings_staged
        from expectations_custom.store_faults import store_faults_noted

        # A store that fails is noted, not raised: the findings are written all the same. One
        # rule scan feeds validation and the write (expectations_custom/staging.py).
        with (
            settings_bound(self.settings),
            exceptions_recorded() as self.recorded,
            store_faults_noted() as self.faults,
            findings_staged(self.settings),
        ):
            self.result = self.checkpoint.run(
                batch_parameters=batch_parameters or None,
                expectation_parameters=self.expectation_parameters,
                run_id=RunIdentifier(run_name=self.run_name),
                **kwargs,
            )
        return self.result

    def store_fault(self) -> str | None:
        """One line when a store failed: the result not stored, or the pages not built."""
        if self.faults is None or not self.faults.any:
            return None
        if self.faults.results:
            return f"{self.faults.results}; the result was not stored (findings written)"
        return self.faults.data_docs

    def data_docs_page(self) -> str | None:
        if self.result is None or self.gx_context is None or self.store_fault():
            return None  # never a link to a page that was not written
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
        "data_docs_error": None,  # this run's page was not built: the line saying why
        "error": None,
    }


def summarize(check: str, as_of: datetime, wrapper: _CheckpointWithParameters) -> dict[str, Any]:
    """The contract's summary of one checkpoint run (alert_content.summary_from_result)."""
    result = wrapper.result
    if result is None:
        return {**empty_summary(check, as_of), "error": "the checkpoint did not run"}
    recorded = [r.__dict__ for r in wrapper.recorded]
    validation = next(iter(result.run_results.values()))
    summary = alert_content.summary_from_result(
        check,
        validation.results[0],
        recorded,
        as_of=as_of.isoformat(),
        data_docs_page=wrapper.data_docs_page(),
    )
    summary["data_docs_error"] = wrapper.store_fault()
    return summary


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
        fault = summary.get("data_docs_error")
        if fault:  # written, but no page: an error, as the CLI's exit 3, and no link
            log.error("%s: %s", self.check, fault)
        self._raise_for(summary)
        if store_error is not None or fault:  # the findings are written: a retry redoes the rest
            raise RuntimeError(f"{self.check}: {store_error or fault}")
        log.info("%s passed: %s", self.check, summary)
        return summary

    def _prepare(self, context: Any) -> tuple[datetime, _CheckpointWithParameters]:
        from order_tracking.checks import run as monitoring

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
        wrapper = _CheckpointWithParameters(self.check, parameters, run_name, settings)
        self.configure_file_data_context = wrapper.load_context
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
