"""The two Airflow DAGs: structure (DagBag), parse cost, and end to end with ``dag.test()``.

Airflow reads its configuration when first imported, so this module points ``AIRFLOW_HOME`` at a
temporary directory (and the DAGs folder at ``dags/``) before importing anything from airflow;
``airflow db migrate`` runs once per session in a child process. The monitoring DAG runs against
PostgreSQL (warehouse) and MariaDB (source) with synthetic data; its alert email goes to an
aiosmtpd server on localhost.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="order_tracking_airflow_"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    # A failing task must fail now, not wait out a 5-minute retry delay inside dag.test().
    "ORDER_TRACKING_DAG_RETRIES": "0",
}
os.environ.update(AIRFLOW_ENV)  # before the first airflow import (docs/design.md section 5)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from order_tracking import db, schema, synthetic  # noqa: E402
from order_tracking.maintenance.metrics import read_metrics  # noqa: E402
from order_tracking.settings import EXCEPTION_TYPES, Settings  # noqa: E402
from tests.conftest import exception_rows, seed_dataset  # noqa: E402

MONITORING = "order_tracking_daily_monitoring"
VACUUM = "order_tracking_vacuum"
DQ_TASKS = [
    "dq_extraction_count_check",
    "dq_uti_uts_alignment",
    "dq_missing_spath",
    "dq_reactivated_missing_ecs",
]
VACUUM_TASKS = ["vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete", "vacuum_mart_ecs_sort"]
ORDERS = 2000
# One logical date per end-to-end test: the Airflow metadata DB is shared by the session.
BASE_AS_OF = datetime(2026, 11, 25, 3, 0, 0)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB with the one-slot vacuum pool, once per session."""
    env = {**os.environ, **AIRFLOW_ENV}
    for args in (
        ["db", "migrate"],
        ["pools", "set", "redshift_vacuum", "1", "one Redshift VACUUM at a time"],
    ):
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    yield AIRFLOW_HOME
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture
def mailbox(smtp_sink, monkeypatch: pytest.MonkeyPatch):
    """The local SMTP server, wired in as Airflow's smtp_default connection."""
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp_sink.port, "extra": {"disable_ssl": True}}
    conn["extra"]["disable_tls"] = True
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    return smtp_sink


def _decoded(message: dict) -> dict[str, str]:
    """Subject, text/plain and text/html of a received message (both parts must be there)."""
    import email
    import email.policy

    parsed = email.message_from_string(message["data"], policy=email.policy.default)
    out = {"subject": str(parsed["Subject"])}
    for part in parsed.walk():
        if not part.is_multipart():
            out[part.get_content_type()] = part.get_payload(decode=True).decode("utf-8")
    assert {"text/plain", "text/html"} <= set(out), list(out)
    return out


def _open_ids(settings: Settings) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {t: [] for t in EXCEPTION_TYPES}
    cols = [c.name for c in schema.build_tables(settings).exceptions.columns]
    for row in exception_rows(settings):
        r = dict(zip(cols, row, strict=True))
        if r["resolved_at"] is None:
            out[r["exception_type"]].append(int(r["order_id"]))
    return {t: sorted(v) for t, v in out.items()}


def _run(dag, as_of: datetime, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """dag.test() with data_interval_end == as_of; Test 0's "now" pinned to as_of too."""
    from order_tracking.orchestration import operator as airflow_tasks

    monkeypatch.setattr(airflow_tasks, "wall_clock_now", lambda: as_of)
    state, states, _ = _test_run(dag, as_of)
    return state, states


def _test_run(dag, logical_date: datetime, conf: dict | None = None) -> tuple[str, dict[str, str], str]:
    """dag.test(): the run's state, its task states and its run id."""
    from airflow.utils.session import create_session

    dr = dag.test(logical_date=logical_date.replace(tzinfo=UTC), run_conf=conf)
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
    return str(dr.state), states, dr.run_id


# --- structure -----------------------------------------------------------------------------------


def test_dagbag_has_both_dags_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert {MONITORING, VACUUM} <= set(dagbag.dags)


def test_monitoring_dag_shape(dagbag) -> None:
    from airflow.sdk import TriggerRule

    from order_tracking.alerts.notifier import FailedRunNotifier

    dag = dagbag.dags[MONITORING]
    assert dag.schedule == "0 3 * * *" and dag.catchup is False and dag.max_active_runs == 1
    assert sorted(dag.task_ids) == sorted([*DQ_TASKS, "check_unresolved_exceptions"])
    final = dag.get_task("check_unresolved_exceptions")
    assert final.trigger_rule == TriggerRule.ALL_DONE
    assert final.upstream_task_ids == set(DQ_TASKS)
    for tid in DQ_TASKS:
        task = dag.get_task(tid)
        assert task.upstream_task_ids == set()
        assert type(task).__name__ == "OrderTrackingCheckpointOperator"
        assert task.context_type == "file"
    assert isinstance(dag.on_failure_callback, FailedRunNotifier)
    assert all(not t.on_failure_callback for t in dag.tasks)  # one email per run, not per task
    for words in ("Test 0", "UTI_UTS_TIME_MISMATCH", "ORDER_MISSING_SPATH", "REACTIVATED_ORDER_MISSING_ECS"):
        assert words in dag.doc_md


def test_monitoring_dag_takes_an_as_of_param(dagbag) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from order_tracking.orchestration.run_context import run_as_of

    dag = dagbag.dags[MONITORING]
    param = dag.params.get_param("as_of")
    assert param.value is None and param.schema["type"] == ["null", "string"]
    assert "Test 0" in param.description
    # Optional (issue 25 F3): the UI sends null for an empty field, and a run without it validates.
    assert dag.params.validate() == {"as_of": None}
    param.resolve(None)
    param.resolve("2026-11-20T05:00:00")
    scheduled = {"params": {"as_of": None}, "data_interval_end": datetime(2026, 11, 25, 3, tzinfo=UTC)}
    assert run_as_of(scheduled) == datetime(2026, 11, 25, 3)
    assert run_as_of({**scheduled, "params": {"as_of": ""}}) == datetime(2026, 11, 25, 3)
    recheck = {**scheduled, "params": {"as_of": "2026-11-20T05:00:00+02:00"}}
    assert run_as_of(recheck) == datetime(2026, 11, 20, 3)  # an offset is converted to UTC
    with pytest.raises(AirflowFailException, match="param as_of 'last tuesday' is not a timestamp"):
        run_as_of({**scheduled, "params": {"as_of": "last tuesday"}})
    # Triggered without a logical date (REST, the UI): no data interval; every task of the run
    # takes the run's trigger time, not its own start.
    triggered = SimpleNamespace(conf={}, run_after=datetime(2026, 11, 26, 9, 30, tzinfo=UTC))
    no_interval = {"params": {"as_of": None}, "data_interval_end": None, "logical_date": None}
    assert run_as_of({**no_interval, "dag_run": triggered}) == datetime(2026, 11, 26, 9, 30)


def test_dag_retries_come_from_the_environment_range_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from order_tracking.errors import UserError
    from order_tracking.settings import DagRetries

    monkeypatch.delenv("ORDER_TRACKING_DAG_RETRIES")
    assert DagRetries.from_env(2, 300) == DagRetries(retries=2, retry_delay_secs=300)
    monkeypatch.setenv("ORDER_TRACKING_DAG_RETRIES", "1")
    monkeypatch.setenv("ORDER_TRACKING_DAG_RETRY_DELAY_SECS", "5")
    assert DagRetries.from_env(2, 300) == DagRetries(retries=1, retry_delay_secs=5)
    monkeypatch.setenv("ORDER_TRACKING_DAG_RETRY_DELAY_SECS", "0")
    with pytest.raises(UserError, match=r"_RETRY_DELAY_SECS='0' is not a number of seconds from 1"):
        DagRetries.from_env(2, 300)


def test_config_errors_are_told_from_transient_ones() -> None:
    from order_tracking.errors import UserError
    from order_tracking.orchestration.failures import is_config_error

    assert is_config_error(sa.exc.NoSuchModuleError("Can't load plugin: sqlalchemy.dialects:generic"))
    assert is_config_error(UserError("no GX project at /x (great_expectations.yml missing)"))
    assert is_config_error('relation "sp_x.mart_uni_tracking_info" does not exist')
    assert is_config_error("cannot connect to warehouse x: password authentication failed for user")
    assert not is_config_error(UserError("cannot connect to warehouse x: Connection refused"))
    assert not is_config_error(RuntimeError("server closed the connection unexpectedly"))


def test_gx_root_may_have_any_folder_name(tmp_path, monkeypatch) -> None:
    from order_tracking.checks import gx_project
    from order_tracking.settings import Settings

    root = tmp_path / "dq_checks"
    shutil.copytree(ROOT / "gx", root, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(root))
    context = gx_project.load(Settings.from_env())
    assert Path(context.root_directory) == root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dq_checks"]  # no stray gx/ beside it


def test_vacuum_dag_shape_and_pool(dagbag) -> None:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    dag = dagbag.dags[VACUUM]
    assert dag.schedule == "0 2 * * *" and dag.catchup is False
    assert sorted(dag.task_ids) == sorted([*VACUUM_TASKS, "check_vacuum_pool"])
    assert dag.get_task("vacuum_mart_ecs_sort").upstream_task_ids == {"vacuum_mart_ecs_delete"}
    for tid in ("vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete"):
        assert dag.get_task(tid).upstream_task_ids == set()
    assert {dag.get_task(t).pool for t in VACUUM_TASKS} == {"redshift_vacuum"}
    assert all(dag.get_task(t).pool_slots == 1 for t in VACUUM_TASKS)
    # The pool guard runs outside the pool, beside the vacuum tasks (never blocking them), once.
    guard = dag.get_task("check_vacuum_pool")
    assert guard.pool == "default_pool" and guard.retries == 0
    assert guard.upstream_task_ids == set() and guard.downstream_task_ids == set()
    with create_session() as session:
        pool = session.query(Pool).filter(Pool.pool == "redshift_vacuum").one()
        assert pool.slots == 1
    assert dag.on_failure_callback is not None


class _FakeSupervisor:
    """Stands in for the Task SDK's supervisor channel (the real one is exercised by
    `make airflow-rehearsal` under a real scheduler): answers task-state queries, records skips."""

    def __init__(self, states: dict[str, str | None]) -> None:
        self.states, self.skipped, self.queries = states, [], 0

    def send(self, msg):
        from airflow.sdk.execution_time.comms import SkipDownstreamTasks, TaskStatesResult

        if isinstance(msg, SkipDownstreamTasks):
            self.skipped.extend(msg.tasks)
            return None
        self.queries += 1
        return TaskStatesResult(task_states={"run_1": dict(self.states)})


def _guard(monkeypatch, states: dict[str, str | None], wait_secs: float):
    from types import SimpleNamespace

    from airflow.sdk.execution_time import task_runner

    from order_tracking.orchestration.vacuum_task import check_vacuum_pool

    fake = _FakeSupervisor(states)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", fake, raising=False)
    ti = SimpleNamespace(dag_id=VACUUM, run_id="run_1")
    return fake, lambda: check_vacuum_pool({"ti": ti}, VACUUM_TASKS, wait_secs=wait_secs, poll_secs=0.05)


def test_pool_guard_fails_fast_naming_the_pool_and_skips_the_waiting_tasks(monkeypatch, caplog) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    waiting = dict.fromkeys(VACUUM_TASKS[:3], "scheduled") | {VACUUM_TASKS[3]: None}
    fake, guard = _guard(monkeypatch, waiting, wait_secs=0.3)
    started = time.monotonic()
    with pytest.raises(
        AirflowFailException, match=r"pool 'redshift_vacuum' does not exist.*airflow pools set"
    ):
        guard()
    assert time.monotonic() - started < 5 and fake.queries >= 2  # it polled, then gave up
    assert sorted(fake.skipped) == sorted(VACUUM_TASKS)  # so that the run ends (failed) and alerts


def test_pool_guard_is_silent_once_a_vacuum_task_is_queued(monkeypatch, caplog) -> None:
    states = {VACUUM_TASKS[0]: "queued"} | dict.fromkeys(VACUUM_TASKS[1:3], "scheduled")
    fake, guard = _guard(monkeypatch, states, wait_secs=30)
    with caplog.at_level("INFO"):
        assert guard() == "pool redshift_vacuum in use"
    assert fake.skipped == [] and fake.queries == 1
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_parsing_the_dags_imports_no_great_expectations() -> None:
    code = (
        "import runpy, sys\n"
        "for f in ('order_tracking_daily_monitoring', 'order_tracking_vacuum'):\n"
        "    runpy.run_path(f'dags/{f}.py')\n"
        "heavy = [m for m in ('great_expectations', 'pandas', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **AIRFLOW_ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_connections_build_urls_with_special_characters(monkeypatch, caplog) -> None:
    from order_tracking.orchestration.connections import connection_url, settings_for_airflow

    secret = "p@ss/w:rd%?#"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDER_TRACKING_REDSHIFT",
        json.dumps(
            {
                "conn_type": "redshift",
                "host": "cluster.example.com",
                "port": 5439,
                "login": "dq",
                "password": secret,
                "schema": "dev",
            }
        ),
    )
    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "smtp.example.com")
    url = sa.engine.make_url(connection_url("order_tracking_redshift"))
    assert (url.drivername, url.host, url.port, url.username, url.password, url.database) == (
        "redshift+psycopg2",
        "cluster.example.com",
        5439,
        "dq",
        secret,
        "dev",
    )
    assert connection_url("order_tracking_mysql") is None  # absent: the env is used
    with caplog.at_level("INFO"):
        settings = settings_for_airflow()
    assert sa.engine.make_url(settings.warehouse_url).password == secret
    assert settings.source_url == os.environ["ORDER_TRACKING_SOURCE_URL"]
    assert settings.alert.smtp_host == ""  # the GX email action stays off (the notifier mails)
    # ... through the settings handed down, not by editing the task's environment
    assert os.environ["ORDER_TRACKING_SMTP_HOST"] == "smtp.example.com"
    assert (
        "ORDER_TRACKING_WAREHOUSE_URL" not in os.environ
        or secret not in os.environ["ORDER_TRACKING_WAREHOUSE_URL"]
    )
    assert secret not in caplog.text and "cluster.example.com" in caplog.text


# --- end to end ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "airflow_db")
def test_an_unusable_shared_gx_store_still_records_every_finding(sqlite_urls, dagbag, monkeypatch) -> None:
    """Several-workers mode with the bucket out of reach: the DQ tasks check on the worker's local
    stores and write their findings (issue 14: the exceptions are still written)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: the S3 endpoint refuses at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ORDER_TRACKING_GX_STORE_URL", "s3://order-tracking-dq/site")
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    as_of = BASE_AS_OF + timedelta(days=5)
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=11))
    state, tasks = _run(dagbag.dags[MONITORING], as_of, monkeypatch)

    assert state == "failed"
    assert all(tasks[t] == "failed" for t in DQ_TASKS), tasks
    assert _open_ids(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    site = Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted" / "data_docs" / "local_site"
    assert list(site.glob("validations/order_tracking_missing_spath/*/*/*.html"))  # pages kept locally


@pytest.mark.usefixtures("gx_copy", "airflow_db")
def test_monitoring_run_fails_on_injected_anomalies_with_one_email_and_reruns_idempotently(
    warehouse, maria_source, dagbag, mailbox, monkeypatch
) -> None:
    as_of = BASE_AS_OF
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=7))
    state, tasks = _run(dagbag.dags[MONITORING], as_of, monkeypatch)

    assert state == "failed"
    assert _open_ids(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    assert all(tasks[t] == "failed" for t in DQ_TASKS), tasks  # every check found its anomaly
    assert tasks["check_unresolved_exceptions"] == "failed"
    assert len(mailbox.messages) == 1
    mail = _decoded(mailbox.messages[0])
    n = {t: len(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    assert mail["subject"] == (
        f"[order-tracking] 2026-11-25 03:00: {sum(n.values())} new, {sum(n.values())} open "
        f"(UTI {n['UTI_UTS_TIME_MISMATCH']}, SPATH {n['ORDER_MISSING_SPATH']}, "
        f"ECS {n['REACTIVATED_ORDER_MISSING_ECS']}); extraction alarm"
    )
    for body in (mail["text/plain"], mail["text/html"]):
        for etype in EXCEPTION_TYPES:  # the run's own counts, from the tasks' XCom summaries
            assert (
                f"{etype} (Test " in body
                and f"{n[etype]} new, {n[etype]} found tonight, {n[etype]} open" in body
            )
            assert all(str(i) in body for i in sorted(manifest["expected"][etype])[:10])
        ecs = " ".join(
            f"--order-id {i}" for i in sorted(manifest["expected"]["REACTIVATED_ORDER_MISSING_ECS"])[:10]
        )
        assert f"repair-reactivated {ecs} --by YOUR_NAME" in body
        assert "dq_extraction_count_check" in body and "check_unresolved_exceptions" in body
        assert str(Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted" / "data_docs") in body
    pages = re.findall(r"Page: (\S+\.html)", mail["text/plain"])
    assert len(pages) == 4 and all(Path(p).exists() for p in pages), pages  # each check's own page
    assert (
        Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted/data_docs/local_site/index.html"
    ).exists()
    validations = Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted" / "validations"
    run_names = {p.name for p in validations.glob("*/*")}  # <suite>/<run name>/...
    assert any(
        n.startswith("manual__") and n.endswith(f"__as_of_{as_of:%Y%m%dT%H%M%S}") for n in run_names
    ), run_names

    # Results are kept ORDER_TRACKING_KEEP_DAYS (90): a copy 100 days old goes at the rerun's gate.
    kept = sorted(validations.glob("*/*/*/*.json"))[0]
    old_time = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=100)
    old = kept.parent.parent / old_time.strftime("%Y%m%dT%H%M%S.%fZ") / kept.name
    old.parent.mkdir()
    shutil.copyfile(kept, old)

    rows_before = exception_rows(settings)
    time.sleep(1.1)  # last_seen_at has one-second resolution
    state, _ = _run(dagbag.dags[MONITORING], as_of, monkeypatch)
    assert state == "failed"
    assert kept.exists() and not old.exists()
    assert len(exception_rows(settings)) == len(rows_before)  # no duplicate rows
    assert _open_ids(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    assert len(mailbox.messages) == 2  # one per failed run


@pytest.mark.usefixtures("gx_copy", "airflow_db")
def test_clean_data_gives_a_successful_run_and_no_email(
    pg_warehouse, maria_source, dagbag, mailbox, monkeypatch
) -> None:
    as_of = BASE_AS_OF + timedelta(days=1)
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=8).clean())
    state, tasks = _run(dagbag.dags[MONITORING], as_of, monkeypatch)
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"}
    assert exception_rows(settings) == []
    assert mailbox.messages == []


@pytest.mark.usefixtures("gx_copy", "airflow_db")
def test_dropped_raw_row_fails_the_extraction_check_and_the_email_names_it(
    pg_warehouse, maria_source, dagbag, mailbox, monkeypatch
) -> None:
    as_of = BASE_AS_OF + timedelta(days=2)
    config = dataclasses.replace(
        synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=9).clean(), dropped_raw=1
    )
    settings, manifest = seed_dataset(config)
    assert sum(manifest["extraction_dropped"].values()) > 0
    # Re-checking a past night: the run param as_of, not the run's dates, sets every window; Test 0
    # included (its wall clock is not pinned here: without the param it would check "now").
    logical_date = BASE_AS_OF + timedelta(days=30)
    monkeypatch.setenv("ORDER_TRACKING_DATA_DOCS_BASE_URL", "https://dq.example.com/site")
    state, tasks, run_id = _test_run(dagbag.dags[MONITORING], logical_date, {"as_of": as_of.isoformat()})
    assert state == "failed"
    assert tasks["dq_extraction_count_check"] == "failed"
    assert all(tasks[t] == "success" for t in DQ_TASKS[1:]), tasks
    assert exception_rows(settings) == []  # Test 0 writes no exception rows

    from order_tracking.alerts.notifier import run_xcoms

    # pushed by every task, failed or not
    summaries = run_xcoms({"dag": dagbag.dags[MONITORING], "run_id": run_id}, "summary", list(DQ_TASKS))
    assert set(summaries) == set(DQ_TASKS)
    for tid, summary in summaries.items():
        assert summary["as_of"] == as_of.isoformat(), tid
        start, end = (datetime.fromisoformat(v) for v in summary["window"])
        if tid == "dq_extraction_count_check":
            assert (start, end) == (as_of - timedelta(hours=2, minutes=5), as_of - timedelta(minutes=5))
            assert summary["status"] == "fail" and summary["shortfall"]
        else:
            assert (start, end) == (as_of - timedelta(hours=24), as_of)
            assert summary["status"] == "pass" and summary["failing"] == 0
        assert set(summary) >= {
            "check",
            "success",
            "new",
            "already_open",
            "sample",
            "data_docs_page",
            "error",
        }
    assert "data_docs" in summaries["dq_missing_spath"]["data_docs_page"]
    assert len(mailbox.messages) == 1
    mail = _decoded(mailbox.messages[0])
    assert mail["subject"].endswith(": 0 new, 0 open; extraction alarm"), mail["subject"]
    for table, k in manifest["extraction_dropped"].items():
        if k:
            assert re.search(rf"{table}: source \d+, raw \d+, missing {k}\b", mail["text/plain"])
    assert "dq_extraction_count_check" in mail["text/plain"]
    assert (
        "Page: https://dq.example.com/site/validations/order_tracking_extraction_count/" in mail["text/plain"]
    )
    assert "Data Docs: https://dq.example.com/site/index.html" in mail["text/plain"]
    # The gate recorded where the run's pages are; the notifier's settings agree, and link the run.
    (recorded,) = run_xcoms(
        {"dag": dagbag.dags[MONITORING], "run_id": run_id}, "data_docs_links", ["check_unresolved_exceptions"]
    ).values()
    assert recorded["base_url"] == "https://dq.example.com/site"
    assert "settings disagree" not in mail["text/plain"]
    run_link = r"Airflow run: http://\S+/dags/order_tracking_daily_monitoring/runs/\S+"
    assert re.search(run_link, mail["text/plain"])


@pytest.mark.usefixtures("airflow_db")
def test_vacuum_dag_reclaims_dead_tuples_on_postgres(own_pg, dagbag, monkeypatch) -> None:
    as_of = BASE_AS_OF + timedelta(days=3)
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=10, skip_source=True))
    tables = schema.build_tables(settings)
    marts = {tables.mart_uti.name: tables.mart_uti, tables.mart_uts.name: tables.mart_uts}
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    with engine.begin() as conn:
        for table in marts.values():
            conn.exec_driver_sql(
                f"ALTER TABLE {settings.mart_schema}.{table.name} SET (autovacuum_enabled = false)"
            )
            conn.execute(sa.delete(table).where(table.c.order_id % 3 == 0))
    engine.dispose()  # backends publish their statistics when they exit
    deadline = time.monotonic() + 15
    while any(not read_metrics(engine, settings.mart_schema, t).ghost_rows for t in marts):
        assert time.monotonic() < deadline, "n_dead_tup never became visible"
        time.sleep(0.2)

    state, tasks = _run(dagbag.dags[VACUUM], as_of, monkeypatch)

    assert state == "success", tasks
    assert tasks["check_vacuum_pool"] == "success"  # dag.test() ignores pools: nothing to wait for
    for name in marts:
        assert read_metrics(engine, settings.mart_schema, name).ghost_rows == 0, name
    log = tables.maintenance_log
    with engine.connect() as conn:
        rows = conn.execute(sa.select(log).where(log.c.operation == "VACUUM DELETE ONLY")).mappings().all()
    engine.dispose()
    by_table = {r["table_name"]: r for r in rows}
    assert set(marts) <= set(by_table)
    assert all(by_table[n]["ghost_rows_before"] > 0 and by_table[n]["ghost_rows_after"] == 0 for n in marts)
    assert len({r["run_id"] for r in rows}) == 1  # the four tasks log under the Airflow run id


# --- airflow-setup --------------------------------------------------------------------------------


def _setup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "order_tracking", "airflow-setup", *args],
        cwd=ROOT,
        env={**os.environ, **AIRFLOW_ENV, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_airflow_setup_writes_connections_pool_and_variable_idempotently(airflow_db, monkeypatch) -> None:
    from urllib.parse import quote

    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    from order_tracking.orchestration.connections import connection_url

    secret = "p@ss/w:rd%?#"
    warehouse = sa.engine.URL.create(
        "redshift+psycopg2", "dq", secret, "cluster.example.com", 5439, "dev", query={"sslmode": "require"}
    ).render_as_string(hide_password=False)
    env = {
        "ORDER_TRACKING_WAREHOUSE_URL": warehouse,
        "ORDER_TRACKING_SOURCE_URL": f"mysql://etl:{quote(secret, safe='')}@db.example.com:3306/kuaisong",
        "ORDER_TRACKING_SMTP_URL": f"smtp://mailer:{quote(secret, safe='')}@smtp.example.com:587",
    }
    args = ("--smtp-from", "dq@example.com", "--alert-email", "a@example.com,b@example.com")
    ids = ("order_tracking_redshift", "order_tracking_mysql", "smtp_default")
    try:
        first = _setup(env, *args)
        assert first.returncode == 0, first.stderr[-2000:]
        out = first.stdout
        assert secret not in out + first.stderr and quote(secret, safe="") not in out + first.stderr
        assert "connection order_tracking_redshift (generic, redshift+psycopg2://dq:***@cluster" in out
        assert all(f"connection {c} (" in out for c in ids) and out.count(": created") == 4  # + Variable
        assert "pool redshift_vacuum (1 slot): unchanged" in out  # the fixture made it the same way
        second = _setup(env, *args)
        assert second.returncode == 0 and second.stdout.count(": unchanged") == 5, second.stdout

        with create_session() as session:
            conns = {c.conn_id: c for c in session.query(Connection).filter(Connection.conn_id.in_(ids))}
            for c in conns.values():  # what a task would see, through connection_url()
                monkeypatch.setenv(f"AIRFLOW_CONN_{c.conn_id.upper()}", c.as_json())
            variable = session.query(Variable).filter(Variable.key == "order_tracking_alert_email").one()
            assert variable.val == "a@example.com,b@example.com"
        assert sa.engine.make_url(connection_url("order_tracking_redshift")) == sa.engine.make_url(warehouse)
        source = sa.engine.make_url(connection_url("order_tracking_mysql"))
        assert (source.drivername, source.password, source.database) == ("mysql+pymysql", secret, "kuaisong")
        smtp = conns["smtp_default"]
        assert (smtp.conn_type, smtp.host, smtp.port, smtp.login, smtp.password) == (
            "smtp",
            "smtp.example.com",
            587,
            "mailer",
            secret,
        )
        assert smtp.extra_dejson == {
            "disable_ssl": True,
            "disable_tls": False,
            "from_email": "dq@example.com",
        }

        changed = _setup({**env, "ORDER_TRACKING_SMTP_URL": "smtps://mailer@smtp.example.com:465"})
        assert "smtp_default (smtp, smtp://mailer@smtp.example.com:465" in changed.stdout
        assert '"disable_ssl": false, "disable_tls": true' in changed.stdout and ": updated" in changed.stdout
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id.in_(ids)).delete(synchronize_session=False)
            session.query(Variable).filter(Variable.key == "order_tracking_alert_email").delete()


def test_airflow_setup_smtp_extras_follow_the_port() -> None:
    import argparse

    from order_tracking.commands.airflow_setup import smtp_connection

    def extras(port: int, security: str | None = None, host: str = "mail.example.com") -> tuple[bool, bool]:
        args = argparse.Namespace(
            smtp_url=f"smtp://u:p@{host}:{port}",
            smtp_host=None,
            smtp_port=None,
            smtp_user=None,
            smtp_security=security,
            smtp_from=None,
        )
        extra = smtp_connection(args)["extra"]
        return extra["disable_ssl"], extra["disable_tls"]

    assert extras(587) == (True, False)  # STARTTLS
    assert extras(465) == (False, True)  # implicit SSL
    assert extras(25) == (True, True)  # plain
    assert extras(2525, "none") == (True, True)  # a local sink
    assert extras(2525) == (True, False)  # an unknown port elsewhere: STARTTLS
    # A sink on the machine itself gets neither, whatever its port (issue 25 F4: 18025 got STARTTLS).
    assert extras(18025, host="127.0.0.1") == (True, True)
    assert extras(1025, host="localhost") == (True, True)
    assert extras(587, host="127.0.0.1") == (True, False)  # a named port still wins


def test_airflow_setup_rejects_a_bad_url_in_one_line(airflow_db) -> None:
    done = _setup({"ORDER_TRACKING_WAREHOUSE_URL": "not a url"})
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: warehouse URL is not a valid SQLAlchemy URL: 'not a url'; percent-encode")


def test_the_gate_warns_when_the_alert_email_cannot_be_sent(
    smtp_sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25 F4: the notifier sends from the dag-processor; the gate's log says if it cannot."""
    import json

    from order_tracking.orchestration.alert_probe import probe_alert_smtp, warn_if_alert_cannot_be_sent

    def conn(port: int) -> str:
        extra = {"disable_ssl": True, "disable_tls": True, "timeout": 5}
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", conn(smtp_sink.port))
    assert probe_alert_smtp() is None  # the sink answers: nothing to say
    assert smtp_sink.messages == []  # a probe sends no message
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", conn(closed))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    probe_log = logging.getLogger("order_tracking.orchestration.alert_probe")
    probe_log.addHandler(handler)
    try:
        line = warn_if_alert_cannot_be_sent()
    finally:
        probe_log.removeHandler(handler)
    assert line and line.startswith(f"the alert email will not be sent: smtp_default (127.0.0.1:{closed}): ")
    assert "ConnectionRefusedError" in line
    # One WARNING record: the line a task log shows.
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, f"{line}. The findings are in this log and in Data Docs.")
    ]


@pytest.mark.parametrize("dag_file", ["order_tracking_daily_monitoring.py", "order_tracking_vacuum.py"])
def test_parsing_a_dag_file_quiets_gx_info_lines(dag_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25 F6: every process that parses a DAG file (each task's process, the dag-processor)
    keeps GX's warnings only, before any GX import: the gate's log was 92 % GX INFO lines."""
    import logging
    import runpy

    gx = logging.getLogger("great_expectations")
    monkeypatch.setattr(gx, "level", logging.NOTSET)
    runpy.run_path(str(ROOT / "dags" / dag_file))
    assert gx.level == logging.WARNING  # its own level: the root logger may be INFO in a task
