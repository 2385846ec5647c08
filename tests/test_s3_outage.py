"""Issue 25 section 2: no finding lost when S3 goes away in the middle of a run.

GX stores each validation result before the check's actions run, and built the Data Docs first:
an S3 failure there cost the check its findings (0 of 12 written). Here the S3 endpoint (a moto
server behind ``tests/s3_outage.py``'s relay) stops answering in the middle of a run, on the CLI
and in the Airflow DQ task run in-process; every finding is written, the run ends as an error
with one line naming the store, no page is linked that was not written, and the next run (S3
back) builds the pages of every result the bucket holds and lists them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from order_tracking import synthetic
from order_tracking.settings import EXCEPTION_TYPES, Settings
from tests import test_s3_store
from tests.conftest import exception_rows, run_cli, seed_dataset
from tests.s3_outage import S3Outage
from tests.test_alert_email import parts
from tests.test_dags import airflow_db  # noqa: F401  (sets AIRFLOW_HOME before airflow loads)
from tests.test_data_docs_concurrency import _assert_every_result_has_a_listed_page, _s3_state
from tests.test_s3_store import PREFIX

AS_OF = datetime(2026, 11, 25, 3, 0, 0)

s3_endpoint = test_s3_store.s3_endpoint
aws_env = test_s3_store.aws_env
bucket = test_s3_store.bucket


@pytest.fixture
def outage(bucket: str, aws_env: str, monkeypatch: pytest.MonkeyPatch):
    """The runs reach the bucket through a relay that can stop mid-run."""
    relay = S3Outage(aws_env)
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", relay.endpoint)
    yield relay
    relay.stop()


def _open_by_type(settings: Settings) -> dict[str, list[int]]:
    from order_tracking import schema

    cols = [c.name for c in schema.build_tables(settings).exceptions.columns]
    out: dict[str, list[int]] = {t: [] for t in EXCEPTION_TYPES}
    for row in exception_rows(settings):
        r = dict(zip(cols, row, strict=True))
        if r["resolved_at"] is None:
            out[r["exception_type"]].append(int(r["order_id"]))
    return {t: sorted(v) for t, v in out.items()}


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_s3_stopped_mid_run_loses_no_finding_on_the_cli(outage, bucket, aws_env, smtp_sink, monkeypatch):
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))
    # The first check's result is stored; then the endpoint refuses everything.
    outage.arm(f"PUT /{bucket}/{PREFIX}/validations/order_tracking_", after=True)
    run = run_cli("monitor", "--as-of", AS_OF.isoformat())

    assert outage.stopped.is_set()
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "Data Docs: " not in run.stdout
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("error")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error in gx_store: GX store s3://{bucket}/{PREFIX}/validations: ")
    assert "cannot reach the S3 endpoint" in errors[0]
    assert "results not stored for uti_uts_alignment, missing_spath, reactivated_missing_ecs" in errors[0]
    # Every finding written, none lost (0 of 12 were before).
    assert _open_by_type(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    # The email keeps every finding, links no page and says once that the pages were not built.
    (message,) = smtp_sink.messages
    _, text, html = parts(message["data"])
    for etype in EXCEPTION_TYPES:
        assert etype in text
    assert "Page: " not in text and "index.html" not in text and "index.html" not in html
    docs_lines = [line for line in text.splitlines() if line.startswith("Data Docs")]
    assert len(docs_lines) == 1 and "this run's pages could not be built" in docs_lines[0], docs_lines

    # S3 is back: the next run builds the pages of every result the bucket holds (the first
    # check's, stored before the outage, too) and lists them.
    outage.restore()
    run = run_cli("monitor", "--as-of", (AS_OF + timedelta(hours=1)).isoformat())
    assert run.returncode in (1, 2), run.stdout + run.stderr
    stored, pages, index = _s3_state(aws_env, bucket)
    assert len(stored) == 1 + 4
    _assert_every_result_has_a_listed_page(stored, pages, index)


def _logged(capfd, caplog) -> str:
    """The task's log lines: through logging, or on the terminal once Airflow's structlog is set."""
    return caplog.text + "".join(capfd.readouterr())


class _TaskInstance:
    """What the operators and the run's notifier call on ``ti``: XCom pushes, kept here."""

    dag_id = "order_tracking_daily_monitoring"

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str, run_id: str | None = None) -> object:
        return self.pushed.get(key) if task_ids == self.task_id else None


def _run_dq_task(check: str, as_of: datetime) -> tuple[_TaskInstance, BaseException | None]:
    from order_tracking.orchestration.operator import OrderTrackingCheckpointOperator

    ti = _TaskInstance(f"dq_{check}")
    task = OrderTrackingCheckpointOperator(task_id=f"dq_{check}", check=check)
    context = {"ti": ti, "run_id": "manual__outage", "params": {"as_of": as_of.isoformat()}}
    try:
        task.execute(context)
    except BaseException as exc:
        return ti, exc
    return ti, None


@pytest.mark.usefixtures("gx_copy", "sqlite_urls", "airflow_db")
def test_s3_stopped_mid_task_loses_no_finding_under_airflow(outage, bucket, capfd, caplog):
    from airflow.sdk.exceptions import AirflowFailException

    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    # The store check at load passes; the result's upload is the first request that fails.
    outage.arm(f"PUT /{bucket}/{PREFIX}/validations/order_tracking_", after=False)
    ti, raised = _run_dq_task("missing_spath", AS_OF)

    assert outage.stopped.is_set()
    assert isinstance(raised, AirflowFailException), raised  # the findings fail the task
    summary = ti.pushed["summary"]
    assert summary["failing"] == len(manifest["expected"]["ORDER_MISSING_SPATH"])
    assert summary["data_docs_page"] is None
    assert summary["data_docs_error"].startswith(f"GX store s3://{bucket}/{PREFIX}/validations: cannot reach")
    assert _open_by_type(settings)["ORDER_MISSING_SPATH"] == sorted(
        manifest["expected"]["ORDER_MISSING_SPATH"]
    )
    logged = _logged(capfd, caplog)
    assert f"missing_spath: GX store s3://{bucket}/{PREFIX}/validations" in logged  # the error line
    assert ".html" not in logged  # no page link logged

    # The run's email (the DAG's notifier, from the task's XCom): every finding, no page, and one
    # line saying the pages could not be built instead of the old home page's link.
    from order_tracking.alerts import notifier

    alert = notifier.render(notifier.gather({"ti": ti, "run_id": "manual__outage"}))
    for order_id in sorted(manifest["expected"]["ORDER_MISSING_SPATH"]):
        assert str(order_id) in alert.text
    assert "Page: " not in alert.text and "index.html" not in alert.text + alert.html
    docs_lines = [line for line in alert.text.splitlines() if line.startswith("Data Docs")]
    assert docs_lines == [f"Data Docs: this run's pages could not be built: {summary['data_docs_error']}"]


@pytest.mark.usefixtures("gx_copy", "sqlite_urls", "airflow_db")
def test_a_passing_check_whose_pages_were_not_uploaded_fails_its_task(outage, bucket, capfd, caplog):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=8).clean())
    # The result is stored; the Data Docs upload that follows finds the endpoint gone.
    outage.arm(f"PUT /{bucket}/{PREFIX}/validations/order_tracking_", after=True)
    ti, raised = _run_dq_task("uti_uts_alignment", AS_OF)

    assert isinstance(raised, RuntimeError) and "Data Docs upload failed: GX store s3://" in str(raised), (
        raised
    )
    summary = ti.pushed["summary"]
    assert summary["status"] == "pass" and summary["data_docs_page"] is None
    assert summary["data_docs_error"].startswith("Data Docs upload failed: GX store s3://")
    logged = _logged(capfd, caplog)
    assert "uti_uts_alignment: Data Docs upload failed: GX store s3://" in logged
    assert ".html" not in logged and "passed:" not in logged
