"""The ``monitor`` run's one alert email, sent after every check has written."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from order_tracking.errors import UserError
from order_tracking.settings import Settings

if TYPE_CHECKING:
    from order_tracking.checks.run import CheckOutcome

log = logging.getLogger(__name__)


def send_run_alert(
    settings: Settings, summaries: list[dict], outcomes: list[CheckOutcome], as_of
) -> str | None:
    """The run's one alert email, sent after every check has written; the failure line, if any.

    ``summaries`` are what the checkpoints' email actions recorded; a check whose checkpoint raised
    before its actions ran is added from its outcome, so the email names every error.
    """
    from expectations_custom.actions import send_alert
    from order_tracking.alerts import content as alert_content
    from order_tracking.alerts import mailer

    try:
        if not settings.alert.smtp_host:
            return None
        seen = {s.get("check") for s in summaries}
        summaries = summaries + [
            alert_content.error_summary(o.check, o.message, as_of.isoformat())
            for o in outcomes
            if o.status == "error" and o.check not in seen
        ]
        result = send_alert(summaries, settings)
    except (mailer.MailError, UserError) as exc:
        return str(exc)
    except Exception as exc:  # a bug in the email must not turn written findings into a traceback
        log.debug("alert email failed", exc_info=True)
        return f"{type(exc).__name__}: {exc}"[:300]
    if result:
        log.info("alert email %s", result)
    return None
