"""Links that open (issue 25, section 3 and F7-F8): Data Docs pages in the email and the final
gate under ORDER_TRACKING_DATA_DOCS_BASE_URL, or one line on how to open them; the notifier's
settings checked against what the run recorded; the Airflow run linked; Test 2's next step
naming the configured source database.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from order_tracking.alerts import content as alert_content
from order_tracking.alerts import notifier, run_alert
from order_tracking.alerts.links import DocsLinks, disagreement
from order_tracking.settings import Settings
from tests import test_dags  # noqa: F401 - points Airflow at a temporary home before it is imported
from tests.test_alert_email import parts

BUCKET_SITE = "s3://dq-bucket/dq/order-tracking/data_docs/"
PAGE_KEY = "validations/order_tracking_missing_spath/as_of_20261125T030000/20261125T030102.123456Z/b.html"


def _summary(page: str | None) -> dict:
    return {
        "check": "missing_spath",
        "status": "fail",
        "success": False,
        "failing": 2,
        "new": 2,
        "already_open": 0,
        "exception_type": "ORDER_MISSING_SPATH",
        "as_of": "2026-11-25T03:00:00",
        "window": ["2026-11-24T03:00:00", "2026-11-25T03:00:00"],
        "sample": [{"order_id": 11, "notes": "n"}, {"order_id": 12, "notes": "n"}],
        "data_docs_page": page,
    }


def _settings(monkeypatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def _alert(links: DocsLinks, pages: int = 1, **kwargs) -> alert_content.Alert:
    page = links.index.rsplit("index.html", 1)[0] + PAGE_KEY if links.index else None
    return alert_content.build_alert(
        [_summary(page)] * pages,
        as_of="2026-11-25T03:00:00",
        now=datetime(2026, 11, 25, 4),
        data_docs_index=links.index,
        links=links,
        **kwargs,
    )


def test_bucket_pages_map_under_the_base_url(monkeypatch):
    settings = _settings(
        monkeypatch,
        ORDER_TRACKING_GX_STORE_URL="s3://dq-bucket/dq/order-tracking",
        ORDER_TRACKING_DATA_DOCS_BASE_URL="https://docs.example.com/dq/",
    )
    alert = _alert(DocsLinks.from_settings(settings))
    assert f"Page: https://docs.example.com/dq/{PAGE_KEY}" in alert.text
    assert "Data Docs: https://docs.example.com/dq/index.html" in alert.text
    assert "s3://" not in alert.text and "s3://" not in alert.html
    assert "aws s3" not in alert.text  # the links open: nothing to explain


def test_bucket_pages_without_a_base_url_say_once_how_to_open_them(monkeypatch):
    settings = _settings(monkeypatch, ORDER_TRACKING_GX_STORE_URL="s3://dq-bucket/dq/order-tracking")
    alert = _alert(DocsLinks.from_settings(settings), pages=3)
    assert f"Page: {PAGE_KEY}" in alert.text  # its path in the site, not an s3:// link
    assert "Page: s3://" not in alert.text and 'href="s3://' not in alert.html
    assert "Data Docs: index.html" in alert.text
    assert alert.text.count(f"aws s3 sync {BUCKET_SITE} dq-docs/") == 1
    assert alert.text.count(f"aws s3 presign {BUCKET_SITE}index.html") == 1
    assert alert.html.count("aws s3 sync") == 1


def test_local_pages_without_a_base_url_are_file_paths_said_once(monkeypatch, tmp_path):
    settings = _settings(monkeypatch, ORDER_TRACKING_GX_ROOT=str(tmp_path / "gx"))
    links = DocsLinks.from_settings(settings)
    alert = _alert(links, pages=2)
    site = settings.data_docs_index.parent
    assert f"Page: {site / PAGE_KEY}" in alert.text and f"Data Docs: {site / 'index.html'}" in alert.text
    assert alert.text.count("Links are file paths on the machine that ran the checks") == 1
    with_base = DocsLinks(**{**dataclasses.asdict(links), "base_url": "https://h/site"})
    assert "Links are file paths" not in _alert(with_base).text


def test_credentials_in_the_base_url_never_reach_a_link(monkeypatch):
    settings = _settings(
        monkeypatch,
        ORDER_TRACKING_GX_STORE_URL="s3://dq-bucket/dq/order-tracking",
        ORDER_TRACKING_DATA_DOCS_BASE_URL="https://reader:S3cretPw@docs.example.com/dq",
    )
    assert settings.alert.data_docs_base_url == "https://docs.example.com/dq"
    alert = _alert(DocsLinks.from_settings(settings))
    assert "S3cretPw" not in alert.text + alert.html and "reader" not in alert.text


def test_a_base_url_that_is_not_http_is_one_line(monkeypatch):
    from order_tracking.errors import UserError

    monkeypatch.setenv("ORDER_TRACKING_DATA_DOCS_BASE_URL", "s3://bucket/site")
    with pytest.raises(
        UserError, match="ORDER_TRACKING_DATA_DOCS_BASE_URL='s3://bucket/site' is not an http"
    ):
        Settings.from_env()


def test_next_step_names_the_configured_source_schema(monkeypatch, smtp_sink):
    settings = dataclasses.replace(
        _settings(
            monkeypatch,
            ORDER_TRACKING_SOURCE_SCHEMA="nc_src",
            ORDER_TRACKING_SMTP_HOST="127.0.0.1",
            ORDER_TRACKING_SMTP_PORT=str(smtp_sink.port),
        ),
    )
    assert settings.source_schema == "nc_src"
    run_alert.send_alert([_summary(None)], settings, open_by_type={})
    _, text, html = parts(smtp_sink.messages[0]["data"])
    assert "Verify in the MySQL source (nc_src.uni_tracking_spath)" in text
    assert "kuaisong" not in text and "kuaisong" not in html


def test_the_notifier_links_from_what_the_run_recorded_and_says_when_its_settings_disagree(
    monkeypatch, caplog
):
    worker = _settings(
        monkeypatch,
        ORDER_TRACKING_GX_STORE_URL="s3://dq-bucket/dq/order-tracking",
        ORDER_TRACKING_DATA_DOCS_BASE_URL="https://docs.example.com/dq",
    )
    recorded = DocsLinks.from_settings(worker).to_dict()  # what the final gate pushed to XCom
    monkeypatch.delenv("ORDER_TRACKING_GX_STORE_URL")
    monkeypatch.delenv("ORDER_TRACKING_DATA_DOCS_BASE_URL")
    dag_processor = Settings.from_env()  # started without the workers' S3 settings
    info = {"dag_id": "order_tracking_daily_monitoring", "run_id": "manual__2026-11-25T03:00:00+00:00"}
    page = BUCKET_SITE + PAGE_KEY
    info["summaries"], info["failed_tasks"] = [_summary(page)], ["check_unresolved_exceptions"]
    info["run_url"] = notifier.run_url(info["dag_id"], info["run_id"])
    with caplog.at_level("ERROR", logger="order_tracking"):
        notifier._docs_links(info, dag_processor, recorded, [page])
    alert = notifier.render(info)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("settings disagree: the run's Data Docs are at s3://")
    assert errors[0] in alert.text and "ORDER_TRACKING_GX_STORE_URL" in errors[0]
    assert f"Page: https://docs.example.com/dq/{PAGE_KEY}" in alert.text  # the run's site, served
    assert "Data Docs: https://docs.example.com/dq/index.html" in alert.text
    assert (
        "Airflow run: http://localhost:8080/dags/order_tracking_daily_monitoring/runs/"
        "manual__2026-11-25T03%3A00%3A00%2B00%3A00" in alert.text
    )
    # The same settings on both sides: no complaint.
    assert disagreement(DocsLinks.from_dict(recorded), [page], DocsLinks.from_settings(worker)) is None


def test_without_the_gates_record_the_pages_tell_a_bucket_from_a_local_folder(monkeypatch, tmp_path):
    local = DocsLinks.from_settings(_settings(monkeypatch, ORDER_TRACKING_GX_ROOT=str(tmp_path / "gx")))
    problem = disagreement(None, [BUCKET_SITE + PAGE_KEY], local)
    assert problem and problem.startswith(
        f"settings disagree: the run's Data Docs pages are in {BUCKET_SITE}"
    )
    assert disagreement(None, [f"file://{tmp_path}/x/{PAGE_KEY}"], local) is None
    bucket = DocsLinks.from_settings(
        _settings(monkeypatch, ORDER_TRACKING_GX_STORE_URL="s3://dq-bucket/dq/order-tracking")
    )
    assert "pages are in a local folder" in disagreement(None, [f"file://{tmp_path}/{PAGE_KEY}"], bucket)


def test_the_airflow_run_link_follows_the_api_base_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")  # Airflow reads it now
    assert notifier.run_url("d", "r 1") == "https://airflow.example.com/dags/d/runs/r%201"
