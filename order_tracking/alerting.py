"""The one email per failed DAG run: an ``SmtpNotifier`` whose body says what went wrong.

Used as the DAG-level ``on_failure_callback`` (never per task: one failed run, one email). The
body names the failed tasks, the unresolved exceptions per type and the Data Docs location. It is
built when the callback fires, from the run's task states and the warehouse, and is not passed
through Jinja (order notes are data, not templates).

Recipient: Airflow Variable ``order_tracking_alert_email``, else env ``ORDER_TRACKING_ALERT_EMAIL``,
else the spec's address. Sender: env ``ORDER_TRACKING_EMAIL_FROM`` or the ``smtp_default``
connection's ``from_email`` extra, else ``order-tracking-dq@localhost``.

Import cost: Airflow's SMTP provider only; the DAG files construct the notifier at parse time.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from order_tracking.settings import DEFAULT_ALERT_EMAIL

log = logging.getLogger(__name__)

ALERT_VARIABLE = "order_tracking_alert_email"
DEFAULT_SENDER = "order-tracking-dq@localhost"


def alert_recipients() -> list[str]:
    """Variable, then env, then the spec's default; comma-separated lists allowed."""
    value = None
    try:
        from airflow.sdk import Variable

        value = Variable.get(ALERT_VARIABLE, default=None)
    except Exception:  # no supervisor / metadata DB to ask: the env and default still apply
        log.debug("Variable %s not readable", ALERT_VARIABLE, exc_info=True)
    value = value or os.environ.get("ORDER_TRACKING_ALERT_EMAIL", "").strip() or DEFAULT_ALERT_EMAIL
    return [a.strip() for a in str(value).split(",") if a.strip()]


def gather(context: dict[str, Any], with_exceptions: bool = True) -> dict[str, Any]:
    """Failed tasks, unresolved counts per type and Data Docs path for the run in ``context``
    (the last two only ``with_exceptions``: the vacuum DAG's email has no use for them)."""
    from order_tracking import airflow_tasks, db

    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or context["ti"].dag_id
    run_id = context.get("run_id") or context["ti"].run_id
    info: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "reason": context.get("reason")}
    try:
        info["failed_tasks"] = airflow_tasks.failed_tasks(dag_id, run_id)
    except Exception as exc:
        ti = context.get("ti")
        info["failed_tasks"] = [ti.task_id] if ti is not None else []
        log.warning("task states unavailable: %s", exc)
    if not with_exceptions:
        return info
    # INTERIM (branch airflow, issue 12): the run's own counts and sample ids from the DQ tasks'
    # XCom summaries. Branch morning owns this email's content; the lead reconciles at merge.
    try:
        info["checks"] = airflow_tasks.run_summaries(dag_id, run_id)
    except Exception as exc:
        info["checks"] = {}
        log.warning("XCom summaries unavailable: %s", exc)
    try:
        settings = airflow_tasks.settings_for_airflow()
        info["data_docs"] = str(settings.data_docs_index)
        info["unresolved"] = airflow_tasks.unresolved_counts(settings)
    except Exception as exc:  # the email must still go out when the warehouse is down
        info.setdefault("data_docs", None)
        info["unresolved"] = None
        info["unresolved_error"] = db.short_reason(exc)
    return info


def render(info: dict[str, Any]) -> tuple[str, str]:
    """Subject and HTML body from :func:`gather`'s dict."""
    failed = info.get("failed_tasks") or []
    subject = f"[order-tracking] {info['dag_id']} FAILED: {', '.join(failed) or 'see Airflow'}"
    esc = html.escape
    parts = [
        f"<p>DAG <b>{esc(info['dag_id'])}</b>, run <code>{esc(str(info['run_id']))}</code> failed.</p>",
        "<p>Failed tasks:</p><ul>"
        + "".join(f"<li>{esc(t)}</li>" for t in failed)
        + ("" if failed else "<li>(none recorded)</li>")
        + "</ul>",
    ]
    checks = info.get("checks") or {}
    if checks:  # INTERIM (branch airflow, issue 12): this run's findings, from the XCom summaries
        rows = []
        for task_id, c in sorted(checks.items()):
            sample = c.get("sample") or []
            ids = ", ".join(str(x["order_id"]) for x in sample if x.get("order_id") is not None)
            window = c.get("window") or [None, None]
            rows.append(
                f"<li>{esc(task_id)}: {esc(str(c.get('status')))}, {c.get('failing', 0)} failing "
                f"({c.get('new', 0)} new, {c.get('already_open', 0)} already open), window "
                f"{esc(str(window[0]))} .. {esc(str(window[1]))}"
                + (f"; sample order ids: {esc(ids)}" if ids else "")
                + (f"; error: {esc(str(c['error']))}" if c.get("error") else "")
                + "</li>"
            )
        parts.append("<p>This run's checks:</p><ul>" + "".join(rows) + "</ul>")
    unresolved = info.get("unresolved")
    if "unresolved" in info and unresolved is None:
        parts.append(f"<p>Unresolved exceptions: unavailable ({esc(str(info.get('unresolved_error')))})</p>")
    elif unresolved is not None:
        rows = "".join(f"<li>{esc(t)}: {n}</li>" for t, n in unresolved.items()) or "<li>none</li>"
        parts.append(
            f"<p>Unresolved exceptions by type (total {sum(unresolved.values())}):</p><ul>{rows}</ul>"
        )
    if "dq_extraction_count_check" in failed:
        parts.append(
            "<p>dq_extraction_count_check (Test 0): raw tables hold fewer rows than MySQL; "
            "check the extraction logs and Redshift COPY errors.</p>"
        )
    if info.get("data_docs"):
        parts.append(f"<p>Data Docs: {esc(info['data_docs'])}</p>")
    parts.append(
        "<p>See the task logs in Airflow.</p>"
        if "unresolved" not in info
        else "<p>Query: <code>SELECT exception_type, COUNT(*) FROM settlement_ods.order_tracking_exceptions "
        "WHERE resolved_at IS NULL GROUP BY exception_type</code> or "
        "<code>python -m order_tracking exceptions</code>.</p>"
    )
    return subject, "\n".join(parts)


class FailedRunNotifier(SmtpNotifier):
    """``SmtpNotifier`` with the recipient, subject and body decided when the run has failed."""

    def __init__(self, *, with_exceptions: bool = True, **kwargs: Any) -> None:
        self.with_exceptions = with_exceptions
        kwargs.setdefault("to", DEFAULT_ALERT_EMAIL)  # replaced in notify()
        kwargs.setdefault("from_email", os.environ.get("ORDER_TRACKING_EMAIL_FROM") or None)
        super().__init__(**kwargs)

    def notify(self, context: Any) -> None:
        info = gather(dict(context), self.with_exceptions)
        self.to = alert_recipients()
        self.subject, self.html_content = render(info)
        # The provider caches its SmtpHook on the notifier, which lives as long as the parsed DAG:
        # read smtp_default afresh for every run so a changed connection takes effect.
        self.__dict__.pop("hook", None)
        log.info("sending the failed-run alert to %s: %s", ", ".join(self.to), self.subject)
        super().notify(context)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Nothing here is a template: the body is built in notify() from data (order notes must
        # never be evaluated by Jinja). Skipping also avoids dag.test()'s SerializedDAG, which
        # has no get_template_env().
        return None

    def _build_email_content(self, smtp: Any, context: Any) -> None:
        # Resolve the sender here: the provider would raise without one, and would re-render the
        # field through Jinja (which fails on dag.test()'s SerializedDAG) when it takes the
        # connection's.
        if self.from_email is None:
            self.from_email = smtp.from_email or DEFAULT_SENDER
        super()._build_email_content(smtp, context)
