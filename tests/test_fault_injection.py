"""Fault injection (issue 11): the real CLI, in a child process, against real servers.

A killed backend (``pg_terminate_backend``) during validation, in every GX retry, and during the
write pass; servers that accept a connection and never answer (our own listener on 127.0.0.1);
a missing raw table and mart schema; a checkpoint that lost an action; a misspelled expectation
type. Every fault ends as exit 3 with one line naming the check or setting and the cause, never
as a hang, a traceback or a silent pass; and a clean rerun afterwards writes every finding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from order_tracking.checks.run import run_checks
from order_tracking.settings import Settings
from tests.conftest import PG_URL, ROOT, exception_rows, run_cli
from tests.test_malformed_catalogue import IN, Data, load

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
FAST = {  # short limits so that a hang shows within seconds
    "ORDER_TRACKING_CONNECT_TIMEOUT_SECS": "2",
    "ORDER_TRACKING_READ_TIMEOUT_SECS": "2",
}
# Python start-up + imports (GX) on a loaded 2-core machine, on top of the configured limit.
STARTUP_ALLOWANCE = 40


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def timed_cli(
    *args: str, env: dict[str, str], timeout: int = 120
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    try:
        proc = run_cli(*args, env=env, timeout=timeout)  # a hang fails the test here, never blocks CI
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (killed): a silent server held the run")
    return proc, time.monotonic() - started


# --- servers that accept and never answer -----------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
@pytest.mark.parametrize("command", [["monitor", "--as-of", AS_OF.isoformat()], ["exceptions"]])
def test_silent_warehouse_ends_with_exit_3_within_the_connect_timeout(silent_server, command):
    url = f"postgresql://dq:secret@127.0.0.1:{silent_server.port}/warehouse"
    proc, elapsed = timed_cli("--warehouse-url", url, *command, env=FAST)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot connect to warehouse" in proc.stderr and "timeout" in proc.stderr.lower()
    assert silent_server.accepted, "the client never reached the silent server"
    assert elapsed < 2 + STARTUP_ALLOWANCE
    assert "secret" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.usefixtures("gx_copy")
def test_silent_source_ends_with_exit_3_within_the_read_timeout(silent_server, pg_warehouse):
    settings = Settings.from_env()
    load(settings, Data())  # warehouse tables exist and are empty
    url = f"mysql+pymysql://root:secret@127.0.0.1:{silent_server.port}"
    proc, elapsed = timed_cli(
        "--source-url", url, "monitor", "--as-of", AS_OF.isoformat(), "--checks", "extraction_count", env=FAST
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "error in extraction_count" in proc.stderr and "source" in proc.stderr
    assert elapsed < 2 + STARTUP_ALLOWANCE
    assert "secret" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.usefixtures("gx_copy")
def test_silent_source_at_the_default_read_timeout_ends_within_the_connect_timeout(
    silent_server, pg_warehouse
):
    """Issue 28: PyMySQL waited for the server's greeting under the read timeout (600 s by default),
    whatever ORDER_TRACKING_CONNECT_TIMEOUT_SECS said. Only the connect timeout is set here."""
    settings = Settings.from_env()
    assert settings.timeouts.read_secs == 600  # the default, as in production
    load(settings, Data())
    url = f"mysql+pymysql://root:secret@127.0.0.1:{silent_server.port}"
    connect = 3
    # The worst case is TCP connect + the greeting, each within the connect timeout.
    bound = 2 * connect + STARTUP_ALLOWANCE
    proc, elapsed = timed_cli(
        "--source-url",
        url,
        "monitor",
        "--as-of",
        AS_OF.isoformat(),
        "--checks",
        "extraction_count",
        env={"ORDER_TRACKING_CONNECT_TIMEOUT_SECS": str(connect)},
        timeout=bound + 30,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "error in extraction_count" in errors[0] and "source" in errors[0], (
        proc.stderr
    )
    assert silent_server.accepted, "the client never reached the silent server"
    assert elapsed < bound
    assert "secret" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


# --- a backend killed mid-run -----------------------------------------------------------------


def _kill_waiting_backends(admin: sa.Engine, schema_name: str, query_like: str) -> int:
    with admin.connect() as conn:
        return len(
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
                    "AND query LIKE :like AND query LIKE :schema"
                ),
                {"like": query_like, "schema": f"%{schema_name}%"},
            ).all()
        )


def _seed_missing_spath(settings: Settings, n: int = 3) -> list[int]:
    data = Data()
    for order_id in range(1, n + 1):
        data.add("mart_uti", order_id=order_id, update_time=IN).add(
            "mart_ecs", order_id=order_id, add_time=IN
        )
    load(settings, data)
    return list(range(1, n + 1))


def _popen_monitor() -> subprocess.Popen:
    cmd = [sys.executable, "-m", "order_tracking", "monitor", "--as-of", AS_OF.isoformat(), "--checks"]
    return subprocess.Popen(
        [*cmd, "missing_spath"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.usefixtures("gx_copy")
def test_backend_killed_in_every_validation_retry_is_an_error_then_rerun_writes_all(pg_warehouse, schemas):
    settings = Settings.from_env()
    expected = _seed_missing_spath(settings)
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    locker = sa.create_engine(PG_URL).connect()
    tx = locker.begin()
    # The validation query reads mart spath: it waits on this lock, and each wait is killed.
    locker.execute(sa.text(f'LOCK TABLE "{schemas.mart}".mart_uni_tracking_spath IN ACCESS EXCLUSIVE MODE'))
    proc = _popen_monitor()
    killed = 0
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            killed += _kill_waiting_backends(admin, schemas.mart, "%mart_uni_tracking_spath%")
            time.sleep(0.1)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        tx.rollback()
        locker.close()
    assert killed >= 3, f"GX retries a failed metric: expected every retry killed, got {killed}"
    assert proc.returncode == 3, out + err
    assert "error in missing_spath:" in err and "connection" in err
    assert "MISSING_SPATH" not in out.split("unresolved exceptions:")[-1]  # nothing read as a finding
    assert exception_rows(settings) == []
    rerun = run_checks(settings, AS_OF, ["missing_spath"])  # in-process: the fault is over
    assert rerun.exit_code() == 1 and rerun.outcomes[0].new == len(expected)
    assert sorted(r[1] for r in exception_rows(settings)) == expected  # nothing lost
    admin.dispose()


@pytest.mark.usefixtures("gx_copy")
def test_backend_killed_in_the_write_pass_leaves_nothing_partial(pg_warehouse, schemas):
    settings = Settings.from_env()
    expected = _seed_missing_spath(settings)
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    locker = sa.create_engine(PG_URL).connect()
    tx = locker.begin()
    locker.execute(sa.text(f'LOCK TABLE "{schemas.ods}".order_tracking_exceptions IN ACCESS EXCLUSIVE MODE'))
    proc = _popen_monitor()
    killed = 0
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and not killed and time.monotonic() < deadline:
            killed += _kill_waiting_backends(admin, schemas.ods, "%LOCK TABLE%")
            time.sleep(0.1)
    finally:
        tx.rollback()  # the rest of the run (unresolved summary) may read the table again
        locker.close()
    out, err = proc.communicate(timeout=120)
    assert killed == 1
    assert proc.returncode == 3, out + err
    assert "error in missing_spath:" in err and "Traceback" not in err
    assert exception_rows(settings) == []  # one transaction: nothing half written
    rerun = run_checks(settings, AS_OF, ["missing_spath"])  # in-process: the fault is over
    assert rerun.exit_code() == 1 and rerun.outcomes[0].new == len(expected)
    assert sorted(r[1] for r in exception_rows(settings)) == expected
    admin.dispose()


# --- missing tables and broken configuration --------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_missing_raw_table_is_an_error_not_an_alarm():
    settings = Settings.from_env()
    load(settings, Data(sql=['DROP TABLE "{mart}".uni_tracking_spath_raw']).extracted(1))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "extraction_count")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "error in extraction_count:" in proc.stderr and "uni_tracking_spath_raw" in proc.stderr
    assert "EXTRACTION COUNT ALARM" not in proc.stdout


@pytest.mark.usefixtures("gx_copy")
def test_missing_mart_schema_is_an_error_in_every_check(pg_warehouse, schemas):
    settings = Settings.from_env()
    load(settings, Data().extracted(1))
    with sa.create_engine(PG_URL).begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schemas.mart}" CASCADE'))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    for check in ("extraction_count", "uti_uts_alignment", "missing_spath", "reactivated_missing_ecs"):
        assert f"error in {check}:" in proc.stderr
    assert "EXTRACTION COUNT ALARM" not in proc.stdout


@pytest.mark.usefixtures("sqlite_urls")
def test_checkpoints_that_lost_an_action_fail_loading(gx_copy):
    load(Settings.from_env(), Data().add("mart_uti", order_id=1, update_time=IN))
    removed = {
        "order_tracking_missing_spath": "record_exceptions",
        "order_tracking_extraction_count": "update_data_docs",
    }
    for checkpoint, action in removed.items():
        path = gx_copy / "checkpoints" / f"{checkpoint}.json"
        config = json.loads(path.read_text())
        config["actions"] = [a for a in config["actions"] if a["name"] != action]
        path.write_text(json.dumps(config))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one line names both
    assert "'order_tracking_missing_spath' lacks order_tracking_record_exceptions" in proc.stderr
    assert "'order_tracking_extraction_count' lacks order_tracking_update_data_docs" in proc.stderr
    assert exception_rows(Settings.from_env()) == []  # no check ran: nothing passed silently


@pytest.mark.usefixtures("sqlite_urls")
def test_misspelled_expectation_type_is_named(gx_copy):
    load(Settings.from_env(), Data())
    path = gx_copy / "expectations" / "order_tracking_missing_spath.json"
    suite = json.loads(path.read_text())
    suite["expectations"][0]["type"] = "expect_no_order_mising_spath"
    path.write_text(json.dumps(suite))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "'expect_no_order_mising_spath'" in proc.stderr and "order_tracking_missing_spath" in proc.stderr
    assert "Traceback" not in proc.stderr
