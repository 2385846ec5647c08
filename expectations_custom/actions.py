"""Checkpoint actions: write findings to the exceptions table, and email the on-call engineer.

Both are registered with GX by their ``type`` when this module is imported, which must happen
before a checkpoint that names them loads (see ``expectations_custom/__init__.py``).

GX's ``CheckpointResult`` does not carry action return values, so what the exceptions action
wrote is also kept in ``RECORDED`` (per checkpoint run id) for the caller that prints it.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from great_expectations.checkpoint.actions import (
    ActionContext,
    EmailAction,
    UpdateDataDocsAction,
    ValidationAction,
)
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.compatibility.pydantic import root_validator
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
from great_expectations.render.view.view import DefaultJinjaView
from jinja2 import BytecodeCache

from expectations_custom.base import settings_tables
from order_tracking import data_docs_offline, db, exceptions_store, gx_results, health_page
from order_tracking.settings import Settings

logger = logging.getLogger(__name__)

RECORDED: dict[str, list[exceptions_store.RecordResult]] = {}


class _SharedTemplateCache(BytecodeCache):
    """Compiled Data Docs templates, kept for the life of the process.

    ``UpdateDataDocsAction`` builds a new ``SiteBuilder`` per checkpoint run, and every GX view
    makes its own Jinja ``Environment``, so each run parsed and compiled the same ~160 templates
    again: about 0.3 s of every checkpoint, more than the rule's SQL on 1M orders (benchmark,
    issue 6). Jinja's bytecode cache is keyed by template name and source checksum, so a cached
    template is exactly what compiling the source again would give.
    """

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, bytes]] = {}

    def load_bytecode(self, bucket) -> None:
        hit = self._code.get(bucket.key)
        if hit is not None and hit[0] == bucket.checksum:
            bucket.bytecode_from_string(hit[1])

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.bytecode_to_string())


def _share_data_docs_template_cache() -> None:
    """Give every GX Jinja view the one process-wide template cache (idempotent)."""
    if getattr(DefaultJinjaView.__init__, "_order_tracking_cache", False):
        return
    cache = _SharedTemplateCache()
    original = DefaultJinjaView.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.env.bytecode_cache = cache

    __init__._order_tracking_cache = True
    DefaultJinjaView.__init__ = __init__


_share_data_docs_template_cache()


def _our_failed_findings(checkpoint_result: CheckpointResult):
    """(expectation, result) for each failed rule that has an exception type."""
    from expectations_custom.base import OrderTrackingExpectation

    for validation in checkpoint_result.run_results.values():
        for evr in validation.results:
            config = evr.expectation_config
            if config is None or evr.success:
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
    """Upsert every failing order of Tests 1-3 into ``settlement_ods.order_tracking_exceptions``.

    Nothing runs on a healthy night. The rule runs at most once more, never under the lock:

    - validation fetched every failing order (at most ``rules.SAMPLE_SIZE``, with their notes:
      ``details.findings``): exactly those rows are written, the rule is not run again;
    - otherwise the rule runs once, set-based, into a staged temporary table, so the findings
      never travel through Python whatever their number.
    """

    type: Literal["order_tracking_record_exceptions"] = "order_tracking_record_exceptions"

    def run(self, checkpoint_result: CheckpointResult, action_context: ActionContext | None = None) -> dict:
        settings = Settings.from_env()
        recorded: list[exceptions_store.RecordResult] = []
        failed = list(_our_failed_findings(checkpoint_result))
        if failed:
            tables = settings_tables(settings)  # cached: building ~10 tables costs more than the write
            engine = db.shared_engine(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
            seen_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
            for expectation, evr in failed:
                rows = _fetched_findings(evr)
                if rows is not None:
                    result = exceptions_store.record_rows(
                        engine, tables, expectation.exception_type, rows, seen_at
                    )
                else:
                    with engine.connect() as conn:
                        rule = expectation.rule(conn, settings)
                    result = exceptions_store.record_findings(
                        engine, tables, rule.exception_type, rule.findings(), seen_at
                    )
                recorded.append(result)
        RECORDED[str(checkpoint_result.run_id)] = recorded
        return {"recorded": [r.__dict__ for r in recorded]}


_INDEX_DEFERRED: ContextVar[bool] = ContextVar("order_tracking_data_docs_index_deferred", default=False)


@contextmanager
def data_docs_index_deferred() -> Iterator[None]:
    """Inside, checkpoints build their own pages but not the site index (see below)."""
    token = _INDEX_DEFERRED.set(True)
    try:
        yield
    finally:
        _INDEX_DEFERRED.reset(token)


def build_data_docs(context, resource_identifiers: list) -> dict:
    """Build the given pages (and the index unless deferred), then make them render offline."""
    started = time.time() - 1  # file mtimes have coarse resolution on some filesystems
    urls = context.build_data_docs(
        resource_identifiers=resource_identifiers, build_index=not _INDEX_DEFERRED.get()
    )
    for url in urls.values():
        if not url.startswith("file://"):  # a site in a bucket (s3_store makes each page offline)
            if not _INDEX_DEFERRED.get():
                _publish_health_page(context)
            continue
        site = Path(url.removeprefix("file://")).parent
        try:  # a styling problem must never fail a check
            data_docs_offline.localize_site(site, since=started)
        except Exception:
            logger.warning("Data Docs at %s still load CSS/JS from CDNs", site, exc_info=True)
        if not _INDEX_DEFERRED.get():  # the index links the health page: rebuild them together
            try:
                health_page.build(context, site)
            except Exception:
                logger.warning("Data Docs health page at %s not rebuilt", site, exc_info=True)
    return urls


def _publish_health_page(context) -> None:
    """The health page (linked from the index) for a site in a bucket: built aside, then stored."""
    from order_tracking import s3_store

    settings = Settings.from_env()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            page = health_page.build(context, Path(tmp), settings)
            s3_store.put_site_page(
                settings.gx_store, settings.s3_endpoint_url, page.name, page.read_text(encoding="utf-8")
            )
    except Exception:
        logger.warning("Data Docs health page in %s not rebuilt", settings.gx_store, exc_info=True)


class OrderTrackingDataDocsAction(UpdateDataDocsAction):
    """GX's UpdateDataDocsAction, plus two things.

    - The pages it writes are pointed at the CSS/JS shipped in ``vendor/`` (data_docs_offline),
      so they render styled without internet, in the CLI and in Airflow alike.
    - The site index (it reads every stored result, the slowest part of a docs build) is rebuilt
      once per ``monitor`` run instead of once per checkpoint when the caller defers it
      (``data_docs_index_deferred``); a checkpoint run alone, as in Airflow, rebuilds it itself.
    """

    type: Literal["order_tracking_update_data_docs"] = "order_tracking_update_data_docs"

    def _build_data_docs(
        self, site_names: list[str] | None = None, resource_identifiers: list | None = None
    ) -> dict:
        context = self._resolve_context().context
        wanted = [r for r in resource_identifiers or [] if not _suite_page_exists(context, r)]
        return build_data_docs(context, wanted)


def _suite_page_exists(context, identifier) -> bool:
    """A suite's page changes only when gx/ is rebuilt: render it once, not on every run."""
    if not isinstance(identifier, ExpectationSuiteIdentifier):
        return False
    urls = context.get_docs_sites_urls(resource_identifier=identifier, only_if_exists=True)
    return bool(urls) and all(u.get("site_url") for u in urls)


class OrderTrackingEmailAction(EmailAction):
    """GX's EmailAction with our message, configured from the environment, off when unset.

    ``ORDER_TRACKING_SMTP_HOST`` unset means no email (Airflow sends its own, one per failed run).
    The message names the check, the failing count, a sample of order ids and the Data Docs page.
    Settings: ``ORDER_TRACKING_SMTP_HOST``, ``_PORT`` (25), ``_USER``, ``_PASSWORD``,
    ``_STARTTLS`` (0/1), ``_SSL`` (0/1), ``ORDER_TRACKING_EMAIL_FROM``, ``ORDER_TRACKING_ALERT_EMAIL``.
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
        host = os.environ.get("ORDER_TRACKING_SMTP_HOST", "").strip()
        if not host:
            return {"email_result": "skipped: ORDER_TRACKING_SMTP_HOST is not set"}
        if checkpoint_result.success and self.notify_on == "failure":
            return {"email_result": ""}
        settings = Settings.from_env()
        sender = os.environ.get("ORDER_TRACKING_EMAIL_FROM", "order-tracking-dq@localhost")
        title, body = render_alert(checkpoint_result, data_docs_urls(action_context))
        configured = self.copy(
            update={
                "smtp_address": host,
                "smtp_port": os.environ.get("ORDER_TRACKING_SMTP_PORT", "25"),
                "sender_login": os.environ.get("ORDER_TRACKING_SMTP_USER") or None,
                "sender_password": os.environ.get("ORDER_TRACKING_SMTP_PASSWORD") or None,
                "sender_alias": sender,
                "use_tls": os.environ.get("ORDER_TRACKING_SMTP_STARTTLS", "0") == "1",
                "use_ssl": os.environ.get("ORDER_TRACKING_SMTP_SSL", "0") == "1",
            }
        )
        configured._data_context = self._data_context  # copy() keeps fields, not private attrs
        receivers = [a.strip() for a in settings.alert_email.split(",") if a.strip()]
        result = configured._send_email(title=title, html=body, receiver_emails_list=receivers)
        return {"email_result": result}


def data_docs_urls(action_context: ActionContext | None) -> list[str]:
    if action_context is None:
        return []
    urls: list[str] = []
    for result in action_context.filter_results(UpdateDataDocsAction):
        for per_site in (result or {}).values():
            if isinstance(per_site, dict):
                urls.extend(str(u) for u in per_site.values())
    return urls


def render_alert(checkpoint_result: CheckpointResult, urls: list[str]) -> tuple[str, str]:
    """Subject and HTML body: which check failed, how many, which orders, where to look."""
    lines: list[str] = []
    failed_checks: list[str] = []
    for validation in checkpoint_result.run_results.values():
        for evr in validation.results:
            if evr.success:
                continue
            result = evr.result or {}
            details = result.get("details") or {}
            check = details.get("check") or (evr.expectation_config.type if evr.expectation_config else "?")
            failed_checks.append(check)
            count = result.get("observed_value")
            sample = details.get("sample") or []
            ids = [str(r.get("order_id") or r.get("table_name")) for r in sample[:20]]
            if evr.exception_info and evr.exception_info.get("raised_exception"):
                lines.append(
                    f"<p><b>{html.escape(check)}</b>: error: "
                    f"{html.escape(str(evr.exception_info.get('exception_message'))[:300])}</p>"
                )
                continue
            kind = html.escape(str(details.get("exception_type") or "alarm"))
            lines.append(
                f"<p><b>{html.escape(check)}</b> ({kind}):"
                f" {count} failing; window {details.get('window_start')} .. {details.get('window_end')}"
                f"<br>sample: {html.escape(', '.join(ids))}</p>"
            )
    for url in urls:
        lines.append(f'<p>Data Docs: <a href="{html.escape(url)}">{html.escape(url)}</a></p>')
    title = f"[order-tracking DQ] FAILED: {', '.join(failed_checks) or checkpoint_result.name}"
    return title, "\n".join(lines)
