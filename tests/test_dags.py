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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
os.environ.update(AIRFLOW_ENV)  # before the first airflow import (DESIGN.md section 5)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from order_tracking import db, schema, synthetic  # noqa: E402
from order_tracking.maintenance_metrics import read_metrics  # noqa: E402
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


def _decoded(message: dict) -> str:
    import email

    parsed = email.message_from_string(message["data"])
    parts = [parsed.get("Subject", "")]
    for part in parsed.walk():
        if part.get_content_type() == "text/html":
            parts.append(part.get_payload(decode=True).decode("utf-8"))
    return "\n".join(parts)


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
    from order_tracking import airflow_tasks

    monkeypatch.setattr(airflow_tasks, "wall_clock_now", lambda: as_of)
    dr = dag.test(logical_date=as_of.replace(tzinfo=UTC))
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
    return str(dr.state), states


# --- structure -----------------------------------------------------------------------------------


def test_dagbag_has_both_dags_without_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert {MONITORING, VACUUM} <= set(dagbag.dags)


def test_monitoring_dag_shape(dagbag) -> None:
    from airflow.sdk import TriggerRule

    from order_tracking.alerting import FailedRunNotifier

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


def test_missing_pool_is_a_clear_failure(airflow_db) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from order_tracking.airflow_tasks import require_pool

    assert require_pool() == 1
    with pytest.raises(AirflowFailException, match=r"pool 'no_such_pool' does not exist.*airflow pools set"):
        require_pool("no_such_pool")


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
    from order_tracking.airflow_tasks import connection_url, settings_for_airflow

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
    assert "ORDER_TRACKING_SMTP_HOST" not in os.environ  # the GX email action stays off
    assert secret not in caplog.text and "cluster.example.com" in caplog.text


# --- end to end ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "airflow_db")
def test_monitoring_run_fails_on_injected_anomalies_with_one_email_and_reruns_idempotently(
    pg_warehouse, maria_source, dagbag, mailbox, monkeypatch
) -> None:
    as_of = BASE_AS_OF
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=as_of, orders=ORDERS, seed=7))
    state, tasks = _run(dagbag.dags[MONITORING], as_of, monkeypatch)

    assert state == "failed"
    assert _open_ids(settings) == {t: sorted(manifest["expected"][t]) for t in EXCEPTION_TYPES}
    assert all(tasks[t] == "failed" for t in DQ_TASKS), tasks  # every check found its anomaly
    assert tasks["check_unresolved_exceptions"] == "failed"
    assert len(mailbox.messages) == 1
    body = _decoded(mailbox.messages[0])
    assert mailbox.messages[0]["to"] == ["jasleen.tung@uniuni.com"]
    for etype in EXCEPTION_TYPES:
        assert f"{etype}: {len(manifest['expected'][etype])}" in body
    assert "dq_extraction_count_check" in body and "check_unresolved_exceptions" in body
    assert str(Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted" / "data_docs") in body
    assert (
        Path(os.environ["ORDER_TRACKING_GX_ROOT"]) / "uncommitted/data_docs/local_site/index.html"
    ).exists()

    rows_before = exception_rows(settings)
    time.sleep(1.1)  # last_seen_at has one-second resolution
    state, _ = _run(dagbag.dags[MONITORING], as_of, monkeypatch)
    assert state == "failed"
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
    state, tasks = _run(dagbag.dags[MONITORING], as_of, monkeypatch)
    assert state == "failed"
    assert tasks["dq_extraction_count_check"] == "failed"
    assert all(tasks[t] == "success" for t in DQ_TASKS[1:]), tasks
    assert exception_rows(settings) == []  # Test 0 writes no exception rows
    assert len(mailbox.messages) == 1
    body = _decoded(mailbox.messages[0])
    assert "dq_extraction_count_check" in body and "total 0" in body


@pytest.mark.usefixtures("airflow_db")
def test_vacuum_dag_reclaims_dead_tuples_on_postgres(pg_warehouse, dagbag, monkeypatch) -> None:
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
