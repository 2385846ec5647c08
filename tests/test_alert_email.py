"""The morning alert: one email per ``monitor`` run, plain text and HTML, that says what to fix.

Delivered to a real aiosmtpd server on localhost (``smtp_sink``) and read back from the bytes it
received; the hang test uses a local socket that accepts connections and never answers.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import time
from datetime import datetime, timedelta
from email.message import Message

import pytest

from order_tracking import synthetic
from order_tracking.alerts import content as alert_content
from order_tracking.alerts.content import OpenStats, build_alert, docs_link
from order_tracking.checks.run import run_checks
from order_tracking.settings import EXCEPTION_TYPES
from tests.conftest import exception_rows, run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
ORDERS = 2000


def seed():
    return seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=ORDERS, seed=7))


def parts(raw: str) -> tuple[Message, str, str]:
    """The message, its text/plain part and its text/html part (each must exist once)."""
    msg = email.message_from_string(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    found = {
        p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()
    }
    assert set(found) == {"text/plain", "text/html"}
    return msg, found["text/plain"], found["text/html"]


@pytest.fixture
def smtp_env(smtp_sink, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))
    monkeypatch.setenv("ORDER_TRACKING_ALERT_EMAIL", "oncall@example.com")
    return smtp_sink


def test_one_email_per_monitor_run_with_ids_next_steps_and_link(gx_copy, sqlite_urls, smtp_env, monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_DATA_DOCS_BASE_URL", "https://dq.example.com/docs/")
    settings, manifest = seed()
    expected = manifest["expected"]
    report = run_checks(settings, AS_OF)
    assert report.email_error is None
    assert len(smtp_env.messages) == 1  # four checkpoints, one email
    assert smtp_env.messages[0]["to"] == ["oncall@example.com"]
    msg, text, html = parts(smtp_env.messages[0]["data"])

    n = {t: len(expected[t]) for t in EXCEPTION_TYPES}
    subject = (
        f"[order-tracking] 2026-11-25 03:00: {sum(n.values())} new, {sum(n.values())} open "
        f"(UTI {n['UTI_UTS_TIME_MISMATCH']}, SPATH {n['ORDER_MISSING_SPATH']}, "
        f"ECS {n['REACTIVATED_ORDER_MISSING_ECS']})"
    )
    dropped = {t: k for t, k in manifest["extraction_dropped"].items() if k}
    assert msg["Subject"] == subject + ("; extraction alarm" if dropped else "")
    for body in (text, html):
        for etype in EXCEPTION_TYPES:
            assert etype in body
            for order_id in expected[etype][:10]:
                assert str(order_id) in body
        ecs_ids = " ".join(f"--order-id {i}" for i in expected["REACTIVATED_ORDER_MISSING_ECS"][:10])
        assert f"python -m order_tracking repair-reactivated {ecs_ids} --by YOUR_NAME" in body
        spath_ids = " ".join(f"--order-id {i}" for i in expected["ORDER_MISSING_SPATH"][:10])
        assert f"resolve --type ORDER_MISSING_SPATH {spath_ids} --by YOUR_NAME" in body
        assert "a targeted backfill is required" in body  # the spec's Action, Test 2
        assert "https://dq.example.com/docs/validations/order_tracking_missing_spath/" in body
        assert "https://dq.example.com/docs/index.html" in body
        for table, missing in dropped.items():
            assert re.search(rf"{table}: source \d+, raw \d+, missing {missing}\b", body)
    # Notes come with the ids (Test 1's evidence), and the text part stays phone-sized.
    assert re.search(rf"{expected['UTI_UTS_TIME_MISMATCH'][0]}\s+update_time=.* diff=", text)
    assert "<" not in text and len(text.splitlines()) < 120


def test_smtp_that_accepts_and_never_answers_is_bounded_and_writes_stay(gx_copy, sqlite_urls):
    settings, manifest = seed()
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        proc = run_cli(
            "monitor",
            "--as-of",
            AS_OF.isoformat(),
            "--checks",
            "missing_spath,reactivated_missing_ecs",
            env={
                "ORDER_TRACKING_SMTP_HOST": "127.0.0.1",
                "ORDER_TRACKING_SMTP_PORT": str(port),
                "ORDER_TRACKING_SMTP_TIMEOUT_SECS": "1",
            },
            timeout=120,
        )
        elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr  # findings decide the exit code
    assert proc.stderr.strip() == (
        f"error: alert email not sent: SMTP 127.0.0.1:{port} did not answer within 1 s "
        "(ORDER_TRACKING_SMTP_TIMEOUT_SECS)"
    )
    assert elapsed < 60, elapsed  # bounded: without the timeout this waits forever
    written = len(exception_rows(settings))
    assert written == len(manifest["expected"]["ORDER_MISSING_SPATH"]) + len(
        manifest["expected"]["REACTIVATED_ORDER_MISSING_ECS"]
    )


def test_refused_smtp_is_one_line_at_default_verbosity(gx_copy, sqlite_urls):
    seed()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        proc = run_cli(
            "monitor",
            "--as-of",
            AS_OF.isoformat(),
            "--checks",
            "missing_spath",
            env={"ORDER_TRACKING_SMTP_HOST": "127.0.0.1", "ORDER_TRACKING_SMTP_PORT": str(port)},
        )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: alert email not sent: SMTP 127.0.0.1:{port}: ")


def test_no_smtp_host_means_no_email_and_no_error(gx_copy, sqlite_urls, smtp_sink, monkeypatch):
    settings, _ = seed()
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))  # a server is there, unused
    report = run_checks(settings, AS_OF, ["missing_spath"])
    assert report.outcomes[0].status == "fail" and report.email_error is None
    assert smtp_sink.messages == []


def test_clean_night_sends_nothing(gx_copy, sqlite_urls, smtp_env):
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=ORDERS, seed=3).clean())
    report = run_checks(settings, AS_OF)
    assert report.exit_code() == 0 and smtp_env.messages == []


# --- the content builder alone (pure functions) ------------------------------------------------


def _summary(check, etype, new, failing, ids, **extra):
    return {
        "check": check,
        "success": not failing,
        "status": "fail" if failing else "pass",
        "failing": failing,
        "new": new,
        "already_open": failing - new,
        "exception_type": etype,
        "window": ["2026-11-25 03:00:00", "2026-11-26 03:00:00"],
        "as_of": "2026-11-26T03:00:00",
        "sample": [{"order_id": i, "notes": f"note {i}"} for i in ids],
        "data_docs_page": None,
        "error": None,
        **extra,
    }


def test_subject_has_the_issue_shape_and_test0_names_cycles_and_lost_rows():
    now = datetime(2026, 11, 26, 3, 5)
    test0 = _summary("extraction_count", None, 0, 1, [])
    test0.update(
        shortfall=[{"table": "ecs_order_info", "source": 15, "raw": 13, "missing": 2}],
        cycles=[
            {
                "table": "ecs_order_info",
                "cycle_start": "2026-11-26 01:00:00",
                "source_count": 4,
                "raw_count": 4,
            },
            {
                "table": "ecs_order_info",
                "cycle_start": "2026-11-26 01:15:00",
                "source_count": 5,
                "raw_count": 3,
            },
        ],
        missing_rows=[{"table": "ecs_order_info", "key": 777, "time": "2026-11-26 01:20:00"}],
        missing_total=2,
    )
    summaries = [
        test0,
        _summary("uti_uts_alignment", "UTI_UTS_TIME_MISMATCH", 5, 5, range(1, 6)),
        _summary("missing_spath", "ORDER_MISSING_SPATH", 4, 6, range(11, 17)),
        _summary("reactivated_missing_ecs", "REACTIVATED_ORDER_MISSING_ECS", 3, 3, range(21, 24)),
    ]
    open_by_type = {
        "UTI_UTS_TIME_MISMATCH": OpenStats(5, now - timedelta(hours=1)),
        "ORDER_MISSING_SPATH": OpenStats(10, now - timedelta(days=3, hours=2)),
        "REACTIVATED_ORDER_MISSING_ECS": OpenStats(3, now - timedelta(hours=1)),
    }
    alert = build_alert(summaries, as_of="2026-11-26T03:00:00", now=now, open_by_type=open_by_type)
    assert (
        alert.subject
        == "[order-tracking] 2026-11-26 03:00: 12 new, 18 open (UTI 5, SPATH 4, ECS 3); extraction alarm"
    )
    assert "ecs_order_info: source 15, raw 13, missing 2" in alert.text
    assert "ecs_order_info 2026-11-26 01:15: source 5, raw 3" in alert.text
    assert "01:00: source 4" not in alert.text  # only the cycles that lost rows
    assert "ecs_order_info 777 at 2026-11-26 01:20:00" in alert.text and "(1 of 2)" in alert.text
    assert "ORDER_MISSING_SPATH (Test 2): 4 new, 6 found tonight, 10 open, oldest 3d 2h" in alert.text
    assert "monitor --checks extraction_count --as-of 2026-11-26T03:00:00" in alert.text
    assert "ecs_order_info" in alert.html and "source 15, raw 13, missing 2" in alert.html


def test_docs_link_uses_the_base_url_or_the_file_path(tmp_path):
    site = tmp_path / "local_site"
    page = site / "validations" / "order_tracking_missing_spath" / "as_of_x" / "p.html"
    assert docs_link(f"file://{page}", site, None) == str(page)
    assert (
        docs_link(str(page), site, "https://h/dq")
        == "https://h/dq/validations/order_tracking_missing_spath/as_of_x/p.html"
    )
    assert docs_link(None, site, "https://h") is None


def test_html_part_escapes_notes():
    s = _summary("missing_spath", "ORDER_MISSING_SPATH", 1, 1, [5])
    s["sample"][0]["notes"] = "<script>alert(1)</script>"
    alert = alert_content.build_alert([s], as_of="2026-11-26T03:00:00", now=datetime(2026, 11, 26))
    assert "<script>" not in alert.html and "&lt;script&gt;" in alert.html


def test_data_docs_pages_say_what_to_do(gx_copy, sqlite_urls):
    _, manifest = seed()
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode in (1, 2), proc.stderr
    site = gx_copy / "uncommitted" / "data_docs" / "local_site" / "validations"

    def page(check: str) -> str:
        (found,) = list((site / f"order_tracking_{check}").rglob("*.html"))
        return found.read_text()

    expected = manifest["expected"]
    ecs = page("reactivated_missing_ecs")
    assert "Next step: Move the order&#x27;s row" in ecs or "Next step: Move the order's row" in ecs
    ids = " ".join(f"--order-id {i}" for i in expected["REACTIVATED_ORDER_MISSING_ECS"][:10])
    assert f"<code >python -m order_tracking repair-reactivated {ids} --by YOUR_NAME</code>" in ecs
    spath = page("missing_spath")
    ids = " ".join(f"--order-id {i}" for i in expected["ORDER_MISSING_SPATH"][:10])
    assert f"python -m order_tracking resolve --type ORDER_MISSING_SPATH {ids} --by YOUR_NAME" in spath
    assert "a targeted backfill is required" in spath
    assert "Investigate the extraction logs" in page("uti_uts_alignment")
    if any(manifest["extraction_dropped"].values()):
        assert f"monitor --checks extraction_count --as-of {AS_OF.isoformat()}" in page("extraction_count")


def test_alert_open_counts_and_split_summary_in_both_warehouse_dialects(warehouse, gx_copy, smtp_env):
    settings, manifest = seed_dataset(
        synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=11, skip_source=True)
    )
    report = run_checks(settings, AS_OF, ["missing_spath", "reactivated_missing_ecs"])
    assert report.email_error is None and len(smtp_env.messages) == 1
    msg, text, _ = parts(smtp_env.messages[0]["data"])
    n_spath = len(manifest["expected"]["ORDER_MISSING_SPATH"])
    n_ecs = len(manifest["expected"]["REACTIVATED_ORDER_MISSING_ECS"])
    total = n_spath + n_ecs
    assert (
        msg["Subject"]
        == f"[order-tracking] 2026-11-25 03:00: {total} new, {total} open (SPATH {n_spath}, ECS {n_ecs})"
    )
    assert (
        f"ORDER_MISSING_SPATH (Test 2): {n_spath} new, {n_spath} found tonight, {n_spath} open, oldest 0h"
        in text
    )
    proc = run_cli(
        "resolve",
        "--type",
        "ORDER_MISSING_SPATH",
        "--order-id",
        str(manifest["expected"]["ORDER_MISSING_SPATH"][0]),
        "--by",
        "t",
        "--notes",
        "n",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("exceptions", "--include-resolved", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "exception_type,open,resolved,oldest_detected_at,newest_last_seen_at"
    assert any(line.startswith(f"ORDER_MISSING_SPATH,{n_spath - 1},1,") for line in lines), lines
