"""Before the gate fails a run: can the alert email go out? A warning in the gate's log if not.

The one email per failed run is sent by the DAG's ``FailedRunNotifier``, a run-level callback that
runs in the dag-processor: a send failure is logged there only, in a file no operator opens (issue
25 F4). The gate task fails whenever an alert is due, so it probes the connection the notifier
will use (``smtp_default``: connect, STARTTLS/SSL and login as configured, through the SMTP
provider's own ``SmtpHook``; no message is sent) and, if that fails, logs one WARNING naming the
connection, its address and the error. The operator then sees a failed gate task in the UI whose
log says the email will not arrive, and the findings in the same log.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

ALERT_SMTP_CONN_ID = "smtp_default"


def probe_alert_smtp(conn_id: str = ALERT_SMTP_CONN_ID) -> str | None:
    """None when ``conn_id``'s server accepts a session (TLS and login as configured); else one
    line saying why the alert email will not be sent. Never raises."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    hook = SmtpHook(smtp_conn_id=conn_id)
    try:
        with hook:
            pass
    except Exception as exc:
        conn = hook.smtp_connection
        where = f"{conn.host}:{conn.port}" if conn is not None else "connection not found"
        return f"the alert email will not be sent: {conn_id} ({where}): {type(exc).__name__}: {exc}"
    return None


def warn_if_alert_cannot_be_sent(conn_id: str = ALERT_SMTP_CONN_ID) -> str | None:
    """Log the probe's failure as a WARNING in this task's log; the line, or None if it passed."""
    problem = probe_alert_smtp(conn_id)
    if problem:
        log.warning("%s. The findings are in this log and in Data Docs.", problem)
    return problem
