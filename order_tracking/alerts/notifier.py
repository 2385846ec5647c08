"""The one email per failed DAG run: an ``SmtpNotifier`` whose message says what to fix.

Used as the DAG-level ``on_failure_callback`` (never per task: one failed run, one email). The
message (plain text and HTML) is the CLI's, built by ``order_tracking.alerts.content`` from the
summaries the DQ tasks pushed to XCom during the run (so the counts are the run's own), and is
not passed through Jinja (order notes are data, not templates).

Recipient: Airflow Variable ``order_tracking_alert_email``, else env ``ORDER_TRACKING_ALERT_EMAIL``,
else the spec's address. Sender: env ``ORDER_TRACKING_EMAIL_FROM`` or the ``smtp_default``
connection's ``from_email`` extra, else ``order-tracking-dq@localhost``.

Import cost: Airflow's SMTP provider only; the DAG files construct the notifier at parse time.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from order_tracking.alerts import content as alert_content
from order_tracking.alerts import mailer
from order_tracking.alerts.links import DocsLinks, disagreement
from order_tracking.settings import DEFAULT_ALERT_EMAIL

log = logging.getLogger(__name__)

ALERT_VARIABLE = "order_tracking_alert_email"
DEFAULT_SENDER = "order-tracking-dq@localhost"


def alert_recipients(configured: Sequence[str] | None = None) -> list[str]:
    """Variable, then the settings' recipients (env), then the spec's default; comma-separated
    lists allowed."""
    value = None
    try:
        from airflow.sdk import Variable

        value = Variable.get(ALERT_VARIABLE, default=None)
    except Exception:  # no supervisor / metadata DB to ask: the env and default still apply
        log.debug("Variable %s not readable", ALERT_VARIABLE, exc_info=True)
    value = value or ",".join(configured or ()) or DEFAULT_ALERT_EMAIL
    return [a.strip() for a in str(value).split(",") if a.strip()]


def run_xcoms(context: Mapping[str, Any], key: str, task_ids: list[str]) -> dict[str, Any]:
    """XCom ``key`` of each of ``task_ids`` in this run (absent ones left out).

    Through the task SDK (``ti.xcom_pull``) when a supervisor is there (DAG processor callbacks);
    else from the metadata database (``dag.test()`` runs callbacks in-process with no supervisor).
    """
    ti, run_id = context.get("ti"), _run_id(context)
    if ti is not None:
        try:
            pulled = {t: ti.xcom_pull(task_ids=t, key=key, run_id=run_id) for t in task_ids}
            return {t: v for t, v in pulled.items() if v is not None}
        except Exception:
            log.debug("no supervisor for XCom; reading the metadata database", exc_info=True)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run_id, key=key, task_ids=task_ids, dag_ids=_dag_id(context))
        return {row.task_id: XComModel.deserialize_value(row) for row in session.scalars(query)}


def _dag_id(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    return getattr(dag, "dag_id", None) or context["ti"].dag_id


def _run_id(context: Mapping[str, Any]) -> str:
    return context.get("run_id") or context["ti"].run_id


def gather(context: dict[str, Any], with_exceptions: bool = True) -> dict[str, Any]:
    """The run's facts for the alert: failed tasks and (monitoring) the DQ tasks' own summaries.

    Counts come from what the tasks pushed to XCom while the run ran (``summary`` per DQ task,
    ``open_exceptions`` from the final gate), never from the warehouse when the callback fires:
    by then the next run may have written.
    """
    from order_tracking.orchestration.connections import settings_for_airflow
    from order_tracking.orchestration.gate import DOCS_LINKS_KEY, UNRESOLVED_TASK, failed_tasks
    from order_tracking.orchestration.operator import DQ_TASKS

    dag_id, run_id = _dag_id(context), _run_id(context)
    info: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "reason": context.get("reason")}
    info["run_url"] = run_url(dag_id, run_id)
    try:
        info["failed_tasks"] = failed_tasks(dag_id, run_id)
    except Exception as exc:
        ti = context.get("ti")
        info["failed_tasks"] = [ti.task_id] if ti is not None else []
        log.warning("task states unavailable: %s", exc)
    try:  # built once here, the notifier's entry point (connections over the environment)
        settings = settings_for_airflow()
    except Exception as exc:  # a bad setting must not stop the alert
        log.warning("settings unreadable (Data Docs location unknown): %s", exc)
        settings = None
    if settings is not None:
        info["recipients"] = settings.alert.recipients
    if not with_exceptions:
        return info
    if settings is not None:
        info["source_schema"] = settings.source_schema
    try:
        pushed = run_xcoms(context, "summary", list(DQ_TASKS))
        gate = run_xcoms(context, "open_exceptions", [UNRESOLVED_TASK])
        recorded = run_xcoms(context, DOCS_LINKS_KEY, [UNRESOLVED_TASK]).get(UNRESOLVED_TASK)
    except Exception as exc:  # the email must still go out
        log.warning("XCom summaries unavailable: %s", exc)
        pushed, gate, recorded = {}, {}, None
    _docs_links(info, settings, recorded, [s.get("data_docs_page") for s in pushed.values()])
    summaries = []
    for task_id, check in DQ_TASKS.items():
        if task_id in pushed:
            summaries.append(pushed[task_id])
        elif task_id in info["failed_tasks"]:
            summaries.append(alert_content.error_summary(check, f"task {task_id} failed; see its log"))
    info["summaries"] = summaries
    # A DQ task whose pages could not be built says so (``data_docs_error``): the email
    # then says it once, instead of linking the home page as if it showed this run.
    docs_errors = [s["data_docs_error"] for s in summaries if s.get("data_docs_error")]
    info["data_docs_error"] = docs_errors[0] if docs_errors else None
    open_now = gate.get(UNRESOLVED_TASK)
    info["open_by_type"] = (
        None
        if open_now is None
        else {
            t: alert_content.OpenStats(int(v["count"]), v.get("oldest_detected_at"))
            for t, v in open_now.items()
        }
    )
    return info


def run_url(dag_id: str, run_id: str) -> str | None:
    """The run's page in the Airflow UI, from ``[api] base_url`` as Airflow's own log links."""
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080/"
    except Exception:  # no Airflow configuration here: no link rather than a wrong one
        return None
    return f"{base.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def _docs_links(info: dict[str, Any], settings: Any, recorded: Any, pages: list[Any]) -> None:
    """The run's Data Docs links (what the gate recorded, else this process's settings), and one
    loud line when this process's settings disagree with the run's."""
    own = DocsLinks.from_settings(settings) if settings is not None else None
    run = DocsLinks.from_dict(recorded) if isinstance(recorded, dict) else None
    links = run or own
    if links is None:
        return
    info["links"], info["data_docs"] = links, links.index
    problem = disagreement(run, [p for p in pages if p], own) if own is not None else None
    if problem:
        log.error("%s", problem)  # the dag-processor's log; the email says it too
        info["notices"] = [problem]


def render(info: dict[str, Any], now: datetime | None = None) -> alert_content.Alert:
    """The alert for :func:`gather`'s dict: the monitoring alert, or a short one for other DAGs."""
    failed = info.get("failed_tasks") or []
    now = now or datetime.now(UTC).replace(tzinfo=None)
    if "summaries" not in info:
        subject = f"[order-tracking] {info['dag_id']} FAILED: {', '.join(failed) or 'see Airflow'}"
        lines = [
            f"DAG {info['dag_id']}, run {info['run_id']} failed.",
            f"Failed tasks: {', '.join(failed) or '-'}",
        ]
        if info.get("run_url"):
            lines.append(f"Airflow run: {info['run_url']}")
        lines.append("See the task logs in Airflow.")
        text = "\n".join(lines) + "\n"
        return alert_content.Alert(subject, text, "".join(f"<p>{html.escape(x)}</p>" for x in lines))
    summaries = info["summaries"]
    as_of = next((s.get("as_of") for s in summaries if s.get("as_of")), None) or now.isoformat()
    return alert_content.build_alert(
        summaries,
        as_of=as_of,
        now=now,
        open_by_type=info.get("open_by_type"),
        data_docs_index=info.get("data_docs"),
        links=info.get("links"),
        failed_tasks=failed,
        run_label=str(info["run_id"]),
        data_docs_error=info.get("data_docs_error"),
        run_url=info.get("run_url"),
        notices=info.get("notices") or (),
        source_schema=info.get("source_schema") or "kuaisong",
    )


class FailedRunNotifier(SmtpNotifier):
    """``SmtpNotifier`` with the recipient, subject and body decided when the run has failed."""

    def __init__(self, *, with_exceptions: bool = True, **kwargs: Any) -> None:
        self.with_exceptions = with_exceptions
        kwargs.setdefault("to", DEFAULT_ALERT_EMAIL)  # replaced in notify()
        kwargs.setdefault("from_email", os.environ.get("ORDER_TRACKING_EMAIL_FROM") or None)
        super().__init__(**kwargs)

    def notify(self, context: Any) -> None:
        info = gather(dict(context), self.with_exceptions)
        alert = render(info)
        self.to = alert_recipients(info.get("recipients"))
        self.subject, self.html_content = alert.subject, alert.html
        # The provider caches its SmtpHook on the notifier, which lives as long as the parsed DAG:
        # read smtp_default afresh for every run so a changed connection takes effect.
        self.__dict__.pop("hook", None)
        log.info("sending the failed-run alert to %s: %s", ", ".join(self.to), self.subject)
        with self.hook as smtp_hook:  # connects with smtp_default's TLS/login/timeout settings
            self._build_email_content(smtp_hook, context)
            message = mailer.to_message(alert, self.from_email, self.to)
            # The hook's own send_email_smtp attaches only an HTML part; the alert has two.
            smtp_hook._smtp_client.send_message(message)

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
