"""Run the nightly checks through their GX checkpoints: the code path of the CLI and the DAG.

``run_check`` runs one checkpoint (one of the spec's Tests 0-3) for an ``as_of`` and returns what
happened in plain data; ``run_checks`` runs several and ``exit_code`` turns a report into the CLI's
contract (0 clean, 1 unresolved exceptions remain, 2 extraction alarm, 3 error).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from order_tracking import db, schema
from order_tracking.checks import exceptions_store, extraction_sql, gx_results, rules
from order_tracking.errors import UserError
from order_tracking.settings import Settings

log = logging.getLogger(__name__)

CHECK_NAMES = ("extraction_count", "uti_uts_alignment", "missing_spath", "reactivated_missing_ecs")

EXIT_CLEAN, EXIT_UNRESOLVED, EXIT_EXTRACTION_ALARM, EXIT_ERROR = 0, 1, 2, 3


class ExtractionCountAlarm(Exception):
    """Test 0 fired: a raw table holds fewer rows than the MySQL source (infrastructure alert)."""


@dataclass
class CheckOutcome:
    check: str
    status: str  # "pass" | "fail" | "error"
    failing: int | None = None
    new: int | None = None
    already_open: int | None = None
    sample: list[dict] = field(default_factory=list)
    window: tuple[str, str] | None = None
    message: str = ""
    data_docs_url: str | None = None
    exception_type: str | None = None
    skipped_null_order_ids: int = 0  # failing rows that cannot be keyed: counted, not written
    details: dict = field(default_factory=dict)  # the validation result's details (Test 0: cycles)
    store_error: str | None = None  # checked and written, but GX's result was not stored (one line)

    @property
    def sample_ids(self) -> list[str]:
        return [str(r.get("order_id", r.get("table_name"))) for r in self.sample]


@dataclass
class MonitorReport:
    as_of: datetime
    outcomes: list[CheckOutcome]
    unresolved: dict[str, int] | None  # None: the count could not be read (an error says why)
    data_docs_index: str | None  # None: the build failed (an error outcome says why)
    email_error: str | None = None  # the alert email failed: reported, never a reason to undo writes

    def exit_code(self) -> int:
        if any(o.status == "error" for o in self.outcomes):
            return EXIT_ERROR
        if any(o.check == "extraction_count" and o.status == "fail" for o in self.outcomes):
            return EXIT_EXTRACTION_ALARM
        return EXIT_UNRESOLVED if sum((self.unresolved or {}).values()) else EXIT_CLEAN


def parse_checks(text: str | None) -> list[str]:
    if not text:
        return list(CHECK_NAMES)
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CHECK_NAMES]
    if unknown:
        raise UserError(f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECK_NAMES)}")
    return names


def measure_source_counts(settings: Settings, as_of: datetime) -> dict[str, int]:
    """Test 0's source side: row counts per table in the closed window, on MySQL."""
    engine = db.create_engine(
        settings.source_url, [settings.source_schema], role="source", timeouts=settings.timeouts
    )
    try:
        db.check_connection(engine, "source")
        window = rules.Window.extraction(
            as_of, settings.extraction_window_secs, settings.extraction_buffer_secs
        )
        with engine.connect() as conn:
            return extraction_sql.measure_source_counts(conn, schema.build_tables(settings), window)
    finally:
        engine.dispose()


def run_check(context, settings: Settings, check: str, as_of: datetime) -> CheckOutcome:
    """Run one checkpoint and describe its result; errors become an outcome, not an exception."""
    from great_expectations.core.run_identifier import RunIdentifier

    from expectations_custom.actions import exceptions_recorded
    from expectations_custom.data_docs.build import docs_sites_urls
    from expectations_custom.staging import findings_staged
    from expectations_custom.store_faults import store_faults_noted
    from order_tracking.checks import gx_project

    cp_name = gx_project.CHECKS[check].checkpoint
    params: dict = {"as_of": as_of.isoformat()}
    try:
        if check == "extraction_count":
            params["source_counts"] = measure_source_counts(settings, as_of)
        # One rule scan feeds validation and the write (expectations_custom/staging.py); a store
        # that fails is noted, not raised (expectations_custom/store_faults.py).
        with (
            exceptions_recorded() as recorded,
            store_faults_noted() as faults,
            findings_staged(settings),
        ):
            result = context.checkpoints.get(cp_name).run(
                expectation_parameters=params,
                # Data Docs list runs by name: make it say which window was checked.
                run_id=RunIdentifier(run_name=f"as_of_{as_of:%Y%m%dT%H%M%S}"),
            )
    except UserError as exc:
        return CheckOutcome(check, "error", message=str(exc))
    except Exception as exc:
        log.debug("checkpoint %s failed", cp_name, exc_info=True)  # shown with --verbose
        return CheckOutcome(check, "error", message=f"{type(exc).__name__}: {db.short_reason(exc)}")
    (identifier, validation), *_ = result.run_results.items()
    evr = validation.results[0]
    url = None
    try:
        # The page is built at the end of the run (data_docs_deferred): its URL is known now.
        # A result that was not stored gets no page: no URL either.
        urls = [] if faults.results else docs_sites_urls(context, identifier, only_if_exists=False)
        url = urls[0]["site_url"] if urls else None
    except Exception:
        log.warning("no Data Docs URL for %s", cp_name)
    outcome = _outcome(check, evr, url, recorded)
    outcome.store_error = faults.results
    return outcome


def _outcome(check: str, evr, url: str | None, recorded: list) -> CheckOutcome:
    """The outcome of one validation result (``recorded``: what the exceptions action wrote)."""
    error = gx_results.result_error(evr)
    if error is not None:
        return CheckOutcome(check, "error", message=error, data_docs_url=url)
    res = evr.result or {}
    if not evr.success and "observed_value" not in res:
        # A failed result that carries no count is not a finding: never read it as "0 failing".
        return CheckOutcome(check, "error", message="validation returned no result", data_docs_url=url)
    details = res.get("details") or {}
    outcome = CheckOutcome(
        check,
        "pass" if evr.success else "fail",
        failing=int(res.get("observed_value") or 0),
        sample=list(details.get("sample") or []),
        window=(details.get("window_start"), details.get("window_end")),
        data_docs_url=url,
        exception_type=details.get("exception_type"),
        skipped_null_order_ids=int(details.get("skipped_null_order_ids") or 0),
        details=details,
    )
    if recorded:
        outcome.new = sum(r.new for r in recorded)
        outcome.already_open = sum(r.already_open for r in recorded)
    elif outcome.status == "pass" and outcome.exception_type:
        outcome.new = outcome.already_open = 0
    return outcome


def run_checks(settings: Settings, as_of: datetime, checks: Iterable[str] = CHECK_NAMES) -> MonitorReport:
    """Load the GX project once, run each named check, then read the unresolved summary."""
    from order_tracking.checks import gx_project

    engine = db.create_engine(
        settings.warehouse_url, settings.warehouse_schemas, role="warehouse", timeouts=settings.timeouts
    )
    db.check_connection(engine, "warehouse")  # one clear line before GX gets to log tracebacks
    exceptions_store.require_table(engine, schema.build_tables(settings))  # else: run init-db
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from expectations_custom.actions import alert_email_deferred, data_docs_error
    from expectations_custom.data_docs.build import build_data_docs, data_docs_deferred
    from expectations_custom.run_settings import settings_bound

    context, store_error = gx_project.load_or_local(settings)
    if store_error is not None:  # checked with the local stores; reported (exit 3) at the end
        settings = dataclasses.replace(settings, gx_store=None)
    checks = list(checks)
    # One Data Docs build and one alert email for the whole run, not one per check; the GX side
    # (expectations, actions, site builders) reads this run's settings, never the environment.
    with settings_bound(settings), data_docs_deferred() as pages, alert_email_deferred() as alerts:
        outcomes = [run_check(context, settings, c, as_of) for c in checks]
        # Before the build, so that tonight's index no longer lists what is removed. A store that
        # already failed this run is reported once: pruning it would only fail again.
        prune_error = None if any(o.store_error for o in outcomes) else prune_old_results(settings)
        docs_error = None
        try:  # inside: the run's site builders, which gave the URLs, build the pages
            suite = ExpectationSuiteIdentifier(name=gx_project.CHECKS[checks[0]].suite)
            build_data_docs(context, pages.resource_identifiers or [suite])  # or just the index
        except Exception as exc:
            # Findings are written; the pages are not: an error (exit 3), never a link to them.
            log.debug("Data Docs not rebuilt", exc_info=True)  # shown with --verbose
            docs_error = data_docs_error(exc)
        unstored = {o.check for o in outcomes if o.store_error}
        for outcome in outcomes:
            if docs_error or outcome.check in unstored:
                outcome.data_docs_url = None  # the page it names was not written
        for summary in alerts.summaries:
            if docs_error or summary.get("check") in unstored:
                summary["data_docs_page"] = None  # nor does the email link it
    try:
        unresolved = exceptions_store.unresolved_summary(engine, schema.build_tables(settings))
    except Exception as exc:
        outcomes.append(CheckOutcome("unresolved_summary", "error", message=db.short_reason(exc)))
        unresolved = None  # unknown, never "0": the error outcome makes the exit code 3
    finally:
        engine.dispose()
    if store_error is not None:
        outcomes.append(CheckOutcome("gx_store", "error", message=store_error))
    if unstored:
        # One line naming the store: the site build that failed with it says nothing new.
        first = next(o.store_error for o in outcomes if o.store_error)
        outcomes.append(CheckOutcome("gx_store", "error", message=_unstored_line(first, outcomes)))
    elif docs_error is not None:
        outcomes.append(CheckOutcome("data_docs", "error", message=docs_error))
    if prune_error is not None:
        outcomes.append(CheckOutcome("retention", "error", message=prune_error))
    from order_tracking.alerts.run_alert import send_run_alert

    email_error = send_run_alert(settings, alerts.summaries, outcomes, as_of, docs_error)
    index = None if docs_error else settings.data_docs_location
    return MonitorReport(as_of, outcomes, unresolved, index, email_error)


def _unstored_line(store_error: str, outcomes: list[CheckOutcome]) -> str:
    """The store's line, and which checks' results it did not take (their findings are written)."""
    names = ", ".join(o.check for o in outcomes if o.store_error)
    return (
        f"{store_error}; results not stored for {names} "
        "(findings written; the next run's Data Docs list what the store holds)"
    )


# monitor's prune is bounded: a night's four results take milliseconds; a first prune of years
# of results in a slow bucket goes on over the next runs rather than holding this one.
MONITOR_PRUNE_BUDGET_SECS = 10.0


def prune_old_results(settings: Settings) -> str | None:
    """Remove results and pages older than ``settings.keep_days`` (time-bounded); the error line,
    if any. The findings are written by now: a failed prune is reported, never undoes them."""
    from order_tracking.clock import utc_now
    from order_tracking.stores import retention

    try:
        pruned = retention.prune(settings, utc_now(), budget_secs=MONITOR_PRUNE_BUDGET_SECS)
    except Exception as exc:
        log.debug("prune failed", exc_info=True)
        return f"old results not pruned: {db.short_reason(exc)}"
    if pruned.left:
        log.warning("%s", pruned.line())
    elif pruned.removed:
        log.info("%s", pruned.line())
    return None


def data_docs_error(exc: Exception) -> str:
    """One line for a failed Data Docs build: the store's own line when the upload failed."""
    from order_tracking.errors import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return f"Data Docs upload failed: {exc}"
    return f"Data Docs not rebuilt: {type(exc).__name__}: {db.short_reason(exc)}"
