"""The alert email outside Airflow: built from the checks' summaries and sent, once per run.

``send_alert`` builds and sends one alert (the checkpoints' email action calls it when not
deferred); ``send_run_alert`` is ``monitor``'s one email, sent after every check has written."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from order_tracking import db, schema
from order_tracking.alerts import content as alert_content
from order_tracking.alerts import mailer
from order_tracking.alerts.links import DocsLinks
from order_tracking.checks import exceptions_store
from order_tracking.errors import UserError
from order_tracking.settings import Settings

if TYPE_CHECKING:
    from order_tracking.checks.run import CheckOutcome

log = logging.getLogger(__name__)


def send_run_alert(
    settings: Settings,
    summaries: list[dict],
    outcomes: list[CheckOutcome],
    as_of,
    data_docs_error: str | None = None,
) -> str | None:
    """The run's one alert email, sent after every check has written; the failure line, if any.

    ``summaries`` are what the checkpoints' email actions recorded; a check whose checkpoint raised
    before its actions ran is added from its outcome, so the email names every error. A failed
    Data Docs build is its one "Data Docs:" line, in place of the link to the home page.
    """
    try:
        if not settings.alert.smtp_host:
            return None
        seen = {s.get("check") for s in summaries}
        if data_docs_error:
            seen.add("data_docs")  # said by the Data Docs line
        summaries = summaries + [
            alert_content.error_summary(o.check, o.message, as_of.isoformat())
            for o in outcomes
            if o.status == "error" and o.check not in seen
        ]
        result = send_alert(summaries, settings, data_docs_error=data_docs_error)
    except (mailer.MailError, UserError) as exc:
        return str(exc)
    except Exception as exc:  # a bug in the email must not turn written findings into a traceback
        log.debug("alert email failed", exc_info=True)
        return f"{type(exc).__name__}: {exc}"[:300]
    if result:
        log.info("alert email %s", result)
    return None


def open_stats(settings: Settings) -> dict[str, alert_content.OpenStats]:
    """Open exceptions per type with the oldest detection, read from the warehouse."""
    engine = db.shared_engine(
        settings.warehouse_url, settings.warehouse_schemas, "warehouse", settings.timeouts
    )
    rows = exceptions_store.summary_by_type(engine, schema.build_tables(settings))
    return {r.exception_type: alert_content.OpenStats(r.count, r.oldest_detected_at) for r in rows}


def send_alert(
    summaries: list[dict],
    settings: Settings,
    open_by_type: dict[str, alert_content.OpenStats] | None = None,
    data_docs_error: str | None = None,
) -> str:
    """Build the one alert for ``summaries`` and send it; ``""`` when nothing failed.

    Raises ``mailer.MailError`` (one line) when delivery fails. The open counts are read here,
    after every check has written, unless given.
    """
    if all(s.get("status") == "pass" for s in summaries):
        return ""
    alert_settings = settings.alert
    if open_by_type is None:
        try:
            open_by_type = open_stats(settings)
        except Exception as exc:  # the alert matters more than its open counts
            log.warning("open exceptions not read for the alert: %s", db.short_reason(exc))
            open_by_type = {}
    as_of = next((s.get("as_of") for s in summaries if s.get("as_of")), None)
    alert = alert_content.build_alert(
        summaries,
        as_of=as_of,
        now=datetime.now(UTC).replace(tzinfo=None),
        open_by_type=open_by_type,
        data_docs_index=settings.data_docs_location,
        links=DocsLinks.from_settings(settings),
        source_schema=settings.source_schema,
        data_docs_error=data_docs_error,
    )
    mailer.send(alert, alert_settings)
    return f"sent to {', '.join(alert_settings.recipients)}"
