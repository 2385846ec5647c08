"""Checkpoint actions: write findings to the exceptions table, update Data Docs, email the on-call engineer.

Both are registered with GX by their ``type`` when this module is imported, which must happen
before a checkpoint that names them loads (see ``expectations_custom/__init__.py``).

GX's ``CheckpointResult`` does not carry action return values, so a caller that reports what
the exceptions action wrote runs the checkpoint inside ``exceptions_recorded()``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from great_expectations.checkpoint.actions import (
    ActionContext,
    EmailAction,
    UpdateDataDocsAction,
    ValidationAction,
)
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.compatibility.pydantic import root_validator

from expectations_custom.base import parse_as_of, settings_tables
from expectations_custom.data_docs import build as data_docs
from expectations_custom.run_settings import run_settings
from expectations_custom.scoped import bound
from expectations_custom.staging import current_staging
from expectations_custom.store_faults import noted_faults
from order_tracking import db
from order_tracking.alerts import content as alert_content
from order_tracking.alerts import mailer
from order_tracking.alerts.run_alert import send_alert
from order_tracking.checks import exceptions_store, follow_up, gx_results

logger = logging.getLogger(__name__)

_RECORDED: ContextVar[list[exceptions_store.RecordResult] | None] = ContextVar(
    "order_tracking_exceptions_recorded", default=None
)


def exceptions_recorded() -> AbstractContextManager[list[exceptions_store.RecordResult]]:
    """The list the exceptions action fills with what it wrote, for checkpoints run inside."""
    return bound(_RECORDED, [])


def _our_results(checkpoint_result: CheckpointResult):
    """(expectation, result) for each rule that has an exception type and ran (failed or passed)."""
    from expectations_custom.base import OrderTrackingExpectation

    for validation in checkpoint_result.run_results.values():
        for evr in validation.results:
            config = evr.expectation_config
            if config is None:
                continue
            if gx_results.result_error(evr) is not None:
                continue  # an error, not a finding: the caller reports it
            expectation = config.to_domain_obj()
            if isinstance(expectation, OrderTrackingExpectation) and expectation.exception_type:
                yield expectation, evr


def _fetched_findings(evr) -> list[exceptions_store.Finding] | None:
    """Every finding as ``(order_id, notes)`` if validation fetched them all; else ``None``."""
    result = evr.result or {}
    rows = (result.get("details") or {}).get("findings")
    if not rows or len(rows) != result.get("observed_value"):
        return None
    return [(int(order_id), notes) for order_id, notes in rows]


class RecordExceptionsAction(ValidationAction):
    """Upsert every failing order of Tests 1-3 into ``settlement_ods.order_tracking_exceptions``,
    then follow them up (``order_tracking.checks.follow_up``, issue 23).

    Nothing is written on a healthy night. The rule runs at most once more, never under the lock:

    - validation staged every failing order (within ``staging.findings_staged``: ``monitor``, the
      DQ tasks): they are written from that temporary table, in its session; the rule never runs
      again, whatever the number of findings;
    - validation fetched every failing order (at most ``rules.SAMPLE_SIZE``, with their notes:
      ``details.findings``): exactly those rows are written, the rule is not run again;
    - otherwise the rule runs once, set-based, into a staged temporary table, so the findings
      never travel through Python whatever their number.

    Then, passing or not, the type's open exceptions are re-checked by order id and (Tests 1-2)
    looked up in the MySQL source. What that found goes into the validation result's
    ``details["follow_up"]``, where the email, the run's report and Data Docs read it: the result
    is stored again through the context's results store (GX stored it before the actions ran).
    """

    type: Literal["order_tracking_record_exceptions"] = "order_tracking_record_exceptions"

    def run(self, checkpoint_result: CheckpointResult, action_context: ActionContext | None = None) -> dict:
        settings = run_settings()
        recorded: list[exceptions_store.RecordResult] = []
        ours = list(_our_results(checkpoint_result))
        if ours:
            tables = settings_tables(settings)  # cached: building ~10 tables costs more than the write
            engine = db.shared_engine(
                settings.warehouse_url, settings.warehouse_schemas, "warehouse", settings.timeouts
            )
            seen_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
            staging = current_staging()
            for expectation, evr in ours:
                if not evr.success:
                    recorded.append(_record(engine, tables, settings, expectation, evr, seen_at, staging))
            _collect(recorded)  # what was written is reported even if the follow-up fails
            shown = False
            for expectation, evr in ours:
                done = follow_up.run_follow_up(
                    engine,
                    settings,
                    tables,
                    expectation.exception_type,
                    lambda conn, scope, e=expectation, r=evr: e.scoped_rule(
                        conn, settings, scope, e.hist_read(r)
                    ),
                    run=str(checkpoint_result.run_id.run_name or checkpoint_result.run_id),
                    as_of=parse_as_of(expectation.as_of),
                )
                evr.result.setdefault("details", {})["follow_up"] = done.as_details()
                shown = shown or done.open > 0
            if shown:  # nothing open: the stored result and its page need nothing more
                self._store_again(checkpoint_result)
        return {"recorded": [r.__dict__ for r in recorded]}

    def _store_again(self, checkpoint_result: CheckpointResult) -> None:
        """The results with their follow-up, in the results store (and, when the pages were built
        already, i.e. outside ``monitor``'s one deferred build, on their Data Docs pages)."""
        context = self._resolve_context().context
        identifiers = list(checkpoint_result.run_results)
        try:
            for identifier, validation in checkpoint_result.run_results.items():
                context.validation_results_store.set(identifier, validation)
            if data_docs.deferred_batch() is None:
                data_docs.build_data_docs(context, identifiers)
        except Exception as exc:  # a side channel: the exceptions table has every finding already
            logger.warning("source verdicts not shown in Data Docs: %s", db.short_reason(exc))


def _collect(recorded: list[exceptions_store.RecordResult]) -> None:
    collector = _RECORDED.get()
    if collector is not None:
        collector.extend(recorded)


def _record(
    engine, tables, settings, expectation, evr, seen_at: datetime, staging
) -> exceptions_store.RecordResult:
    """Write one failed result's findings (see :class:`RecordExceptionsAction`)."""
    staged = staging.take(expectation.exception_type) if staging is not None else None
    if staged is not None:  # validation staged every finding: write from there, in its session
        return exceptions_store.record_staged(
            staging.connection(), tables, expectation.exception_type, staged, seen_at
        )
    rows = _fetched_findings(evr)
    if rows is not None:
        return exceptions_store.record_rows(engine, tables, expectation.exception_type, rows, seen_at)
    with engine.connect() as conn:
        rule = expectation.rule(conn, settings)
    return exceptions_store.record_findings(engine, tables, rule.exception_type, rule.findings(), seen_at)


class OrderTrackingDataDocsAction(UpdateDataDocsAction):
    """GX's UpdateDataDocsAction, plus two things.

    - The pages it writes are pointed at the CSS/JS shipped in ``vendor/`` (data_docs_offline),
      so they render styled without internet, in the CLI and in Airflow alike.
    - Within ``data_docs_deferred`` (the ``monitor`` command) it records its pages for the one
      build at the end of the run, and returns the URLs they will have
      (``expectations_custom.data_docs``).
    """

    type: Literal["order_tracking_update_data_docs"] = "order_tracking_update_data_docs"

    def _build_data_docs(
        self, site_names: list[str] | None = None, resource_identifiers: list | None = None
    ) -> dict:
        batch = data_docs.deferred_batch()
        if batch is not None:
            batch.resource_identifiers.extend(resource_identifiers or [])
            return {}
        faults = noted_faults()
        if faults is None:
            return data_docs.build_data_docs(self._resolve_context().context, resource_identifiers or [])
        try:  # noted, not raised: GX runs this action first, and the findings are written after it
            return data_docs.build_data_docs(self._resolve_context().context, resource_identifiers or [])
        except Exception as exc:
            faults.data_docs = data_docs_error(exc)
            logger.debug("Data Docs not built", exc_info=True)
            return {}

    def _get_docs_sites_urls(self, site_names: list[str] | None = None, resource_identifier=None):
        faults = noted_faults()
        if faults is not None and faults.any:
            return []  # no link to a page that was not built (nor a result that was not stored)
        # A deferred page does not exist yet: its URL is known all the same (the email links it).
        return data_docs.docs_sites_urls(
            self._resolve_context().context,
            resource_identifier,
            only_if_exists=data_docs.deferred_batch() is None,
            site_names=site_names,
        )


def data_docs_error(exc: Exception) -> str:
    """One line for a failed Data Docs build: the store's own line when the upload failed."""
    from order_tracking import db
    from order_tracking.errors import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return f"Data Docs upload failed: {exc}"
    return f"Data Docs not rebuilt: {type(exc).__name__}: {db.short_reason(exc)}"


@dataclass
class AlertBatch:
    """The check summaries of one ``monitor`` run, mailed as ONE alert after the last check wrote."""

    summaries: list[dict[str, Any]] = field(default_factory=list)


_ALERT_BATCH: ContextVar[AlertBatch | None] = ContextVar("order_tracking_alert_batch", default=None)


def alert_email_deferred() -> AbstractContextManager[AlertBatch]:
    """Inside, the email action records its content here instead of sending; the caller sends
    the batch with :func:`send_alert` once every checkpoint has written (one email per run, and
    an SMTP problem can no longer delay or stop a later check's write)."""
    return bound(_ALERT_BATCH, AlertBatch())


class OrderTrackingEmailAction(EmailAction):
    """GX's EmailAction with our message (``order_tracking.alerts.content``), configured from the
    environment (``AlertSettings``), off when ``ORDER_TRACKING_SMTP_HOST`` is unset.

    Within ``alert_email_deferred`` (the ``monitor`` command) it only records the checkpoint's
    summary; run alone it sends at once. In Airflow the host is unset: the DAG's notifier sends
    the run's one email, built by the same content module from the tasks' XCom summaries.
    """

    type: Literal["order_tracking_email"] = "order_tracking_email"
    smtp_address: str | None = "${ORDER_TRACKING_SMTP_HOST}"
    smtp_port: str | None = "${ORDER_TRACKING_SMTP_PORT}"
    receiver_emails: str | None = "${ORDER_TRACKING_ALERT_EMAIL}"
    sender_login: str | None = None
    sender_password: str | None = None
    sender_alias: str | None = None
    notify_on: Literal["all", "failure", "success"] = "failure"

    @root_validator
    def _root_validate_email_params(cls, values: dict) -> dict:
        # Replaces EmailAction's validator, which warns about a missing login on every load:
        # here the login comes from the environment at send time.
        return values

    def run(self, checkpoint_result: CheckpointResult, action_context: ActionContext | None = None) -> dict:
        settings = run_settings()
        if not settings.alert.smtp_host:
            return {"email_result": "skipped: ORDER_TRACKING_SMTP_HOST is not set"}
        try:
            summaries = checkpoint_summaries(checkpoint_result, action_context)
        except Exception as exc:  # the email is a side channel: it must never fail the check
            logger.error("alert email content not built for %s: %s", checkpoint_result.name, exc)
            return {"email_result": f"not built: {exc}"}
        batch = _ALERT_BATCH.get()
        if batch is not None:
            batch.summaries.extend(summaries)
            return {"email_result": "deferred to the end of the run"}
        if checkpoint_result.success and self.notify_on == "failure":
            return {"email_result": ""}
        try:
            return {"email_result": send_alert(summaries, settings)}
        except mailer.MailError as exc:
            logger.error("alert email not sent: %s", exc)
            return {"email_result": f"not sent: {exc}"}


def _as_of_of(checkpoint_result: CheckpointResult) -> str | None:
    """The run's as_of: the expectation parameter GX substituted into the suite."""
    for validation in checkpoint_result.run_results.values():
        for evr in validation.results:
            value = (evr.expectation_config.kwargs if evr.expectation_config else {}).get("as_of")
            if isinstance(value, str):
                return value
    return None


def checkpoint_summaries(
    checkpoint_result: CheckpointResult, action_context: ActionContext | None
) -> list[dict]:
    """One contract summary per validation of the checkpoint (alert_content.summary_from_result)."""
    recorded: list[dict] = []
    pages: dict[str, str] = {}
    if action_context is not None:
        for result in action_context.filter_results(RecordExceptionsAction):
            recorded.extend((result or {}).get("recorded") or [])
        for result in action_context.filter_results(UpdateDataDocsAction):
            for identifier, per_site in (result or {}).items():
                if isinstance(per_site, dict) and per_site:
                    pages[str(identifier)] = str(next(iter(per_site.values())))
    check = str(checkpoint_result.name).removeprefix("order_tracking_")
    as_of = _as_of_of(checkpoint_result)
    return [
        alert_content.summary_from_result(
            check, evr, recorded, as_of=as_of, data_docs_page=pages.get(str(identifier))
        )
        for identifier, validation in checkpoint_result.run_results.items()
        for evr in validation.results
    ]
