"""What one rehearsal holds (its home, databases, ports, night, results), its output and env."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from rehearsal.config import MARIA_URL, PG, ROOT, free_port


class RehearsalState:
    """The state every part of the rehearsal shares; the other parts are mixins over it."""

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

    def say(self, text: str) -> None:
        """A progress line, with the seconds since the rehearsal started."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        """Record and print one PASS/FAIL line; returns ``ok``."""
        self.results.append((bool(ok), name))
        print(f"{'PASS' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)
        return bool(ok)

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
