#!/usr/bin/env python
"""`make airflow-rehearsal`: deploy the DAGs on a real Airflow, as the README says, and prove it.

In a fresh AIRFLOW_HOME: PostgreSQL as the metadata DB (a database of its own, dropped after),
LocalExecutor, and real `airflow scheduler`, `airflow dag-processor` and `airflow api-server`
processes on 127.0.0.1 (free port). Deployed with `airflow db migrate` and
`python -m order_tracking airflow-setup` against PostgreSQL (warehouse) / MariaDB (source)
stand-ins in schemas of their own, seeded with `python -m order_tracking seed`, and an aiosmtpd
sink. Then:

1. unpause both DAGs (today's scheduled runs start at once: catchup=False);
2. a monitoring run for a chosen past night (`--conf '{"as_of": ...}'`): all four tests used that
   night's window, the four DQ tasks overlapped in time, exactly one email naming the run's counts
   and sample order ids; `airflow tasks clear` and a rerun add no duplicate exception;
3. a vacuum run: no two vacuum tasks overlapped, the pool guard passed silently;
4. with `--backfill`: `airflow backfill create` for that night checks the night's window;
5. a vacuum run with the pool deleted: it fails within a minute, naming the pool.

Prints PASS/FAIL lines; exit 0 only if all passed. Every process it started is stopped by PID,
also on failure or Ctrl-C; its databases and schemas are dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
AIRFLOW = str(Path(PY).with_name("airflow"))
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
MARIA_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
MONITORING = "order_tracking_daily_monitoring"
VACUUM = "order_tracking_vacuum"
DQ_TASKS = [
    "dq_extraction_count_check",
    "dq_uti_uts_alignment",
    "dq_missing_spath",
    "dq_reactivated_missing_ecs",
]
VACUUM_TASKS = ["vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete", "vacuum_mart_ecs_sort"]
POOL_GUARD = "check_vacuum_pool"
_CLI_BATCH = """
import json, sys
from airflow import configuration  # first, as in airflow/__main__.py
from airflow.cli import cli_parser
from airflow.configuration import write_default_airflow_configuration_if_needed

write_default_airflow_configuration_if_needed()
parser = cli_parser.get_parser()
for argv in json.loads(sys.argv[1]):
    args = parser.parse_args(argv)
    args.func(args)
"""
BUDGET_SECS = 360
ORDERS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


class Rehearsal:
    def __init__(self, with_backfill: bool = False) -> None:
        self.started = time.monotonic()
        self.with_backfill = with_backfill
        suffix = uuid.uuid4().hex[:8]
        self.home = Path(tempfile.mkdtemp(prefix="airflow_rehearsal_"))
        self.meta_db = f"airflow_rehearsal_{suffix}"
        self.schemas = {"source": f"ks_{suffix}", "mart": f"sp_{suffix}", "ods": f"so_{suffix}"}
        self.procs: dict[str, subprocess.Popen] = {}
        self.results: list[tuple[bool, str]] = []
        self.api_port, self.smtp_port = free_port(), free_port()
        # The night to re-check: 03:00 UTC three days ago (the schedule's hour).
        today = datetime.now(UTC).replace(tzinfo=None, hour=3, minute=0, second=0, microsecond=0)
        self.night = today - timedelta(days=3)
        self.maildir = self.home / "mail"
        self.gx_root = self.home / "dq_checks"  # any folder name works (issue 12)
        self.meta: sa.Engine | None = None

    # --- output ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        self.results.append((bool(ok), name))
        print(f"{'PASS' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)
        return bool(ok)

    # --- environment ----------------------------------------------------------------------------
    def airflow_env(self) -> dict[str, str]:
        """What a deployer sets (README "Running in Airflow"), plus this rehearsal's isolation."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ORDER_TRACKING_"))}
        env.update(
            AIRFLOW_HOME=str(self.home / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"{PG}/{self.meta_db}",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            PYTHONPATH=str(ROOT),
            ORDER_TRACKING_GX_ROOT=str(self.gx_root),
            ORDER_TRACKING_SOURCE_SCHEMA=self.schemas["source"],
            ORDER_TRACKING_MART_SCHEMA=self.schemas["mart"],
            ORDER_TRACKING_ODS_SCHEMA=self.schemas["ods"],
        )
        return env

    def data_env(self) -> dict[str, str]:
        """The Airflow env plus the database URLs, for seeding and airflow-setup only: the running
        Airflow gets its databases from the connections airflow-setup writes."""
        return {
            **self.airflow_env(),
            "ORDER_TRACKING_WAREHOUSE_URL": f"{PG}/test",
            "ORDER_TRACKING_SOURCE_URL": MARIA_URL,
        }

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A short-lived command, tracked like the servers so that cleanup can stop it by PID."""
        proc = subprocess.Popen(
            list(args),
            env=env or self.airflow_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs[f"cli-{proc.pid}"] = proc
        return proc

    def finish(self, proc: subprocess.Popen, timeout: float = 240) -> str:
        out, err = proc.communicate(timeout=timeout)
        self.procs.pop(f"cli-{proc.pid}", None)
        if proc.returncode != 0:
            command = " ".join(map(str, proc.args))[-300:]
            raise RuntimeError(f"{command} failed ({proc.returncode}): {err[-1500:]}")
        return out

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
        return self.finish(self.spawn(*args, env=env), timeout)

    def airflow_cli(self, *commands: tuple[str, ...]) -> subprocess.Popen:
        """`airflow <command>` for each command, in order, in one process: the same CLI functions
        that the `airflow` script calls, but Airflow is imported once (5-15 s per call otherwise)."""
        return self.spawn(PY, "-c", _CLI_BATCH, json.dumps([list(c) for c in commands]))

    def run_cli(self, *commands: tuple[str, ...]) -> str:
        return self.finish(self.airflow_cli(*commands))

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            list(args),
            env=self.airflow_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: its workers are stopped with it
        )
        self.procs[name] = proc
        self.say(f"started {name} (pid {proc.pid})")

    def stop_all(self) -> None:
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} (pid {proc.pid}) ignored SIGTERM: killing its process group", flush=True)
            # the group's leader is our child (start_new_session): its pid is the group id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def cleanup(self) -> None:
        self.stop_all()
        if self.meta is not None:
            self.meta.dispose()
        admin = sa.create_engine(f"{PG}/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.meta_db}" WITH (FORCE)'))
            for schema in (self.schemas["mart"], self.schemas["ods"]):
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        maria = sa.create_engine(MARIA_URL)
        with maria.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.schemas['source']}`"))
        maria.dispose()
        if os.environ.get("REHEARSAL_KEEP"):
            print(f"kept {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    # --- metadata DB reads (assertions only; the deployment itself uses the CLI) -----------------
    def q(self, sql: str, **params) -> list[sa.Row]:
        assert self.meta is not None
        with self.meta.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def run_state(self, dag_id: str, run_id: str) -> tuple[str | None, int]:
        rows = self.q(
            "SELECT state, clear_number FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return (rows[0][0], rows[0][1]) if rows else (None, -1)

    def wait_run(self, dag_id: str, run_id: str, timeout: float, clear_number: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, number = self.run_state(dag_id, run_id)
            if state in ("success", "failed") and number >= clear_number:
                return state
            time.sleep(1)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")

    def task_rows(self, dag_id: str, run_id: str) -> dict[str, sa.Row]:
        rows = self.q(
            "SELECT task_id, state, start_date, end_date FROM task_instance"
            " WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {r.task_id: r for r in rows}

    def summaries(self, run_id: str) -> dict[str, dict]:
        rows = self.q(
            "SELECT task_id, value FROM xcom WHERE dag_id = :d AND run_id = :r AND key = 'summary'",
            d=MONITORING,
            r=run_id,
        )
        out = {}
        for task_id, value in rows:
            while isinstance(value, str):
                value = json.loads(value)
            out[task_id] = value
        return out

    def runs(self, dag_id: str) -> list[sa.Row]:
        return self.q(
            "SELECT run_id, run_type, state, logical_date FROM dag_run WHERE dag_id = :d ORDER BY id",
            d=dag_id,
        )

    def emails(self) -> list[str]:
        """Subject and HTML body of every message the sink holds."""
        if not self.maildir.exists():
            return []
        out = []
        for msg in mailbox.Maildir(str(self.maildir), create=False):
            parts = [msg.get("Subject", "")]
            for part in msg.walk():
                if part.get_content_type() in ("text/html", "text/plain"):
                    parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
            out.append("\n".join(parts))
        return out

    def emails_for(self, run_id: str, expected: int, timeout: float = 45) -> list[str]:
        """Emails naming ``run_id``, once ``expected`` arrived (DAG callbacks run a little after)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.emails() if run_id in m]
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def warehouse_rows(self) -> list[sa.Row]:
        engine = sa.create_engine(f"{PG}/test")
        try:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.text(
                            f'SELECT order_id, exception_type, resolved_at FROM "{self.schemas["ods"]}".'
                            "order_tracking_exceptions"
                        )
                    )
                )
        finally:
            engine.dispose()

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        logs = self.home / "airflow" / "logs"
        return "\n".join(
            p.read_text(errors="replace")
            for p in logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log")
        )

    # --- the rehearsal -------------------------------------------------------------------------
    def deploy(self) -> dict:
        self.say(f"AIRFLOW_HOME {self.home / 'airflow'}, metadata DB {self.meta_db}, night {self.night}")
        admin = sa.create_engine(f"{PG}/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.meta_db}"'))
        admin.dispose()
        shutil.copytree(ROOT / "gx", self.gx_root, ignore=shutil.ignore_patterns("uncommitted"))
        (self.home / "airflow").mkdir()

        self.start(
            "smtp", PY, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.smtp_port}",
            "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir),
        )  # fmt: skip
        manifest_path = self.home / "manifest.json"
        # The README's first deployment step, while the stand-ins are seeded.
        migrate = self.spawn(AIRFLOW, "db", "migrate")
        self.run(PY, "-m", "order_tracking", "init-db", env=self.data_env())
        self.run(
            PY, "-m", "order_tracking", "seed", "--replace", "--quiet", "--orders", str(ORDERS),
            "--as-of", self.night.isoformat(), "--manifest", str(manifest_path), env=self.data_env(),
        )  # fmt: skip
        self.say("seeded the warehouse and source stand-ins")
        self.finish(migrate, timeout=300)
        self.say("airflow db migrate done (PostgreSQL metadata DB)")
        out = self.run(
            PY, "-m", "order_tracking", "airflow-setup",
            "--smtp-url", f"smtp://127.0.0.1:{self.smtp_port}", "--smtp-security", "none",
            "--smtp-from", "order-tracking-dq@rehearsal.local", "--alert-email", "oncall@rehearsal.local",
            env=self.data_env(),
        )  # fmt: skip
        print("".join(f"    {line}\n" for line in out.splitlines()), end="")
        self.check(
            "pool redshift_vacuum (1 slot): created" in out, "airflow-setup created the connections and pool"
        )

        self.start("scheduler", AIRFLOW, "scheduler")
        self.start("dag-processor", AIRFLOW, "dag-processor")
        self.start(
            "api-server", AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(self.api_port), "-w", "1"
        )
        self.meta = sa.create_engine(f"{PG}/{self.meta_db}")
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=2
                ):
                    pass
                parsed = {r[0] for r in self.q("SELECT dag_id FROM serialized_dag")}
                if {MONITORING, VACUUM} <= parsed:
                    break
            except Exception:
                pass
            for name in ("scheduler", "dag-processor", "api-server"):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}): see {self.home / (name + '.log')}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError("the api-server or the DAGs did not come up within 120 s")
            time.sleep(1)
        errors = self.q("SELECT filename, stacktrace FROM import_error")
        self.check(not errors, "DAGs parsed by the dag-processor without import errors", str(errors)[:300])
        return json.loads(manifest_path.read_text())

    # Phase 1: unpause both DAGs (today's scheduled runs start at once) and trigger the re-check.
    def unpause_and_trigger(self) -> tuple[str, datetime]:
        logical = datetime.now(UTC).replace(microsecond=0)
        run_id = f"rehearsal_recheck_{self.night:%Y%m%dT%H%M}"
        conf = json.dumps({"as_of": self.night.isoformat()})
        self.run_cli(
            ("dags", "unpause", VACUUM),
            ("dags", "unpause", MONITORING),
            (
                "dags",
                "trigger",
                MONITORING,
                "--run-id",
                run_id,
                "--logical-date",
                logical.isoformat(),
                "--conf",
                conf,
            ),
        )
        self.say(f"unpaused both DAGs; triggered {run_id} with as_of {self.night.isoformat()}")
        return run_id, logical

    def check_past_night(self, run_id: str, manifest: dict) -> None:
        state = self.wait_run(MONITORING, run_id, timeout=240)
        self.say(f"{run_id}: {state}")
        self.check(state == "failed", "past-night run failed on the seeded anomalies", state)
        sums = self.summaries(run_id)
        self.check(set(sums) == set(DQ_TASKS), "every DQ task pushed its XCom summary", str(sorted(sums)))
        night = self.night
        expected = {
            DQ_TASKS[0]: (night - timedelta(hours=2, minutes=5), night - timedelta(minutes=5)),
            **{t: (night - timedelta(hours=24), night) for t in DQ_TASKS[1:]},
        }
        for task_id, (start, end) in expected.items():
            s = sums.get(task_id) or {}
            window = s.get("window") or [None, None]
            ok = (
                s.get("as_of") and parse_ts(s["as_of"]) == night
                and None not in window and (parse_ts(window[0]), parse_ts(window[1])) == (start, end)
            )  # fmt: skip
            detail = f"as_of {s.get('as_of')}, window {window}"
            self.check(bool(ok), f"{task_id} checked the night's window", detail)
        by_type = {s.get("exception_type"): s for s in sums.values()}
        for etype, ids in manifest["expected"].items():
            s = by_type.get(etype) or {}
            self.check(
                s.get("failing") == len(ids) and s.get("new") == len(ids),
                f"{etype}: the run found the {len(ids)} seeded orders",
                f"failing {s.get('failing')}, new {s.get('new')}",
            )
        tis = self.task_rows(MONITORING, run_id)
        starts = [tis[t].start_date for t in DQ_TASKS if tis.get(t) and tis[t].start_date]
        ends = [tis[t].end_date for t in DQ_TASKS if tis.get(t) and tis[t].end_date]
        self.check(
            len(starts) == 4 and max(starts) < min(ends),
            "the four DQ tasks overlapped in time",
            f"last start {max(starts) if starts else None}, first end {min(ends) if ends else None}",
        )
        log = self.task_log(MONITORING, run_id, "dq_missing_spath")
        self.check(
            "running checkpoint for missing_spath" in log and "Skipping registering function" not in log,
            "a DQ task log holds our lines, not GX's INFO chatter",
            f"{len(log.splitlines())} lines",
        )
        total = sum(len(ids) for ids in manifest["expected"].values())
        health = self.gx_root / "uncommitted" / "data_docs" / "local_site" / "health.html"
        text = health.read_text(encoding="utf-8") if health.exists() else ""
        self.check(
            f"Open now: {total} " in text,  # rebuilt by the final task, after every check wrote
            "the health page counts every exception the parallel checks wrote",
            next((ln.strip() for ln in text.splitlines() if "Open now" in ln), "no health page")[:120],
        )
        mails = self.emails_for(run_id, 1)
        self.check(len(mails) == 1, "exactly one email for the failed run", f"{len(mails)} email(s)")
        body = mails[0] if mails else ""
        for task_id in DQ_TASKS:
            s = sums.get(task_id) or {}
            if s.get("exception_type"):  # Tests 1-3: the run's count and its sample order ids
                ids = [str(x["order_id"]) for x in s.get("sample") or [] if x.get("order_id") is not None]
                ok = bool(ids) and f"{s.get('failing')} found tonight" in body and all(i in body for i in ids)
                detail = f"{s.get('failing')}, {ids}"
            else:  # Test 0: the run's shortfall per table
                rows = [
                    f"{r['table']}: source {r['source']}, raw {r['raw']}, missing {r['missing']}"
                    for r in s.get("shortfall") or []
                ]
                ok = bool(rows) and all(r in body for r in rows)
                detail = "; ".join(rows)
            self.check(ok, f"the email names {task_id}'s counts from this run", detail)

    def check_rerun(self, run_id: str, manifest: dict, rows_before: list) -> None:
        self.wait_run(MONITORING, run_id, timeout=240, clear_number=1)
        rows_after = self.warehouse_rows()
        open_after = sorted((r.exception_type, r.order_id) for r in rows_after if r.resolved_at is None)
        open_expected = sorted((t, i) for t, ids in manifest["expected"].items() for i in ids)
        self.check(
            len(rows_after) == len(rows_before) and open_after == open_expected,
            "no duplicate exceptions after `airflow tasks clear` and a rerun",
            f"{len(rows_before)} rows before, {len(rows_after)} after",
        )
        mails = self.emails_for(run_id, 2)
        self.check(
            len(mails) == 2, "one more email for the rerun's failure (one per failed run)", str(len(mails))
        )

    def check_scheduled_runs(self) -> None:
        """Unpausing started today's runs (catchup=False): they ran, and a failure sent one email."""
        for dag_id in (MONITORING, VACUUM):
            scheduled = [r for r in self.runs(dag_id) if r.run_type == "scheduled"]
            self.check(len(scheduled) == 1, f"unpausing {dag_id} started today's scheduled run at once")
            for r in scheduled:
                state = self.wait_run(dag_id, r.run_id, timeout=180)
                failed = state == "failed"
                mails = self.emails_for(r.run_id, 1 if failed else 0, timeout=30 if failed else 0)
                self.check(
                    len(mails) == int(failed), f"scheduled {dag_id} run: {state}, {len(mails)} email(s)"
                )

    def check_vacuum_serialized(self) -> None:
        scheduled = [r for r in self.runs(VACUUM) if r.run_type == "scheduled"]
        if scheduled:
            run_id = scheduled[0].run_id
        else:
            run_id = "rehearsal_vacuum"
            self.run_cli(("dags", "trigger", VACUUM, "--run-id", run_id))
        state = self.wait_run(VACUUM, run_id, timeout=180)
        tis = self.task_rows(VACUUM, run_id)
        states = [(t, r.state) for t, r in tis.items()]
        self.check(state == "success", "vacuum run succeeded", f"{state}: {states}")
        spans = sorted((tis[t].start_date, tis[t].end_date, t) for t in VACUUM_TASKS if tis[t].start_date)
        overlaps = [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
        self.check(len(spans) == 4 and not overlaps, "no two vacuum tasks overlapped", str(overlaps))
        guard_log = self.task_log(VACUUM, run_id, POOL_GUARD)
        self.check(
            tis[POOL_GUARD].state == "success" and "warning" not in guard_log.lower(),
            "the pool guard passed without a warning",
        )

    def check_backfill(self) -> None:
        deadline = time.monotonic() + 30
        runs: list = []
        while not runs and time.monotonic() < deadline:
            runs = [r for r in self.runs(MONITORING) if r.run_type == "backfill"]
            time.sleep(1)
        self.check(len(runs) == 1, "airflow backfill create made one run for the night", str(runs))
        if not runs:
            return
        run_id = runs[0].run_id
        self.wait_run(MONITORING, run_id, timeout=240)
        sums = self.summaries(run_id)
        ends = {t: (s.get("window") or [None, None])[1] for t, s in sums.items()}
        night = self.night
        ok = len(ends) == 4 and all(
            e and parse_ts(e) == (night - timedelta(minutes=5) if t == DQ_TASKS[0] else night)
            for t, e in ends.items()
        )
        detail = f"logical date {runs[0].logical_date}, window ends {ends}"
        self.check(ok, "the backfill run checked the night's window, Test 0 included", detail)

    def check_missing_pool(self, run_id: str) -> None:
        state = self.wait_run(VACUUM, run_id, timeout=120)
        rows = self.q(
            "SELECT start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r", d=VACUUM, r=run_id
        )
        took = (rows[0].end_date - rows[0].start_date).total_seconds() if rows and rows[0].end_date else None
        ok = state == "failed" and took is not None and took <= 60
        self.check(ok, "the vacuum run without its pool failed within a minute", f"{state} in {took} s")
        tis = self.task_rows(VACUUM, run_id)
        log = self.task_log(VACUUM, run_id, POOL_GUARD)
        self.check(
            tis[POOL_GUARD].state == "failed" and "'redshift_vacuum'" in log and "airflow pools set" in log,
            "the guard's failure names the pool and the command that creates it",
        )
        skipped = all(tis[t].state == "skipped" for t in VACUUM_TASKS)
        self.check(skipped, "the vacuum tasks waiting on the missing pool were skipped")
        mails = self.emails_for(run_id, 1)
        self.check(len(mails) == 1 and POOL_GUARD in mails[0], "one email for the run without its pool")

    def rehearse(self) -> None:
        manifest = self.deploy()
        recheck, logical = self.unpause_and_trigger()
        self.check_vacuum_serialized()  # today's vacuum run, started by the unpause
        no_pool = "rehearsal_no_pool"
        pool_step = self.airflow_cli(
            ("pools", "delete", "redshift_vacuum"), ("dags", "trigger", VACUUM, "--run-id", no_pool)
        )
        self.check_past_night(recheck, manifest)
        rows_before = self.warehouse_rows()
        day = self.night.isoformat()
        clear = ("tasks", "clear", MONITORING, "-s", logical.isoformat(), "-e", logical.isoformat(), "-y")
        commands = [clear]
        if self.with_backfill:
            commands.append(
                ("backfill", "create", "--dag-id", MONITORING, "--from-date", day, "--to-date", day)
            )
        self.run_cli(*commands)
        self.say(
            "cleared the re-check run (it reruns)" + (" and created a backfill" if self.with_backfill else "")
        )
        self.finish(pool_step)
        self.check_missing_pool(no_pool)
        self.check_rerun(recheck, manifest, rows_before)
        if self.with_backfill:
            self.check_backfill()
        self.check_scheduled_runs()


def main() -> int:
    # One more monitoring run (about a minute): off by default to keep CI under its budget.
    rehearsal = Rehearsal(with_backfill="--backfill" in sys.argv[1:])

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        rehearsal.rehearse()
        ok = all(r for r, _ in rehearsal.results)
    except BaseException as exc:
        rehearsal.check(False, "rehearsal ran to the end", f"{type(exc).__name__}: {exc}")
        for name in ("scheduler", "dag-processor", "api-server"):
            path = rehearsal.home / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name}.log (last lines)\n" + "\n".join(tail))
    finally:
        rehearsal.cleanup()
    took = time.monotonic() - rehearsal.started
    ok = ok and rehearsal.check(took < BUDGET_SECS, f"rehearsal took {took:.0f} s (budget {BUDGET_SECS} s)")
    failed = [name for good, name in rehearsal.results if not good]
    print(f"airflow rehearsal: {'PASS' if ok else 'FAIL'} ({len(rehearsal.results) - len(failed)} passed, "
          f"{len(failed)} failed) in {took:.0f} s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
