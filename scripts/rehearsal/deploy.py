"""The deployment as the README says (stand-ins, migrate, airflow-setup, servers) and its cleanup."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request

import sqlalchemy as sa

from rehearsal.config import AIRFLOW, MARIA_URL, MONITORING, ORDERS, PG, PY, ROOT, VACUUM
from rehearsal.processes import Processes
from rehearsal.reads import Reads


class Deployment(Processes, Reads):
    """Deploy in a fresh AIRFLOW_HOME, and drop all of it again."""

    # airflow-setup's SMTP security flag; the Celery rehearsal passes none (the port decides).
    smtp_flags: tuple[str, ...] = ("--smtp-security", "none")

    def start_smtp(self) -> None:
        """The SMTP sink (aiosmtpd), its messages in ``maildir``."""
        self.start(
            "smtp", PY, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.smtp_port}",
            "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir),
        )  # fmt: skip

    def deploy(self) -> dict:
        """Stand-ins seeded, metadata DB migrated, airflow-setup run, servers up; the manifest."""
        self.say(f"AIRFLOW_HOME {self.home / 'airflow'}, metadata DB {self.meta_db}, night {self.night}")
        admin = sa.create_engine(f"{PG}/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.meta_db}"'))
        admin.dispose()
        shutil.copytree(ROOT / "gx", self.gx_root, ignore=shutil.ignore_patterns("uncommitted"))
        (self.home / "airflow").mkdir()

        self.start_smtp()
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
            "--smtp-url", f"smtp://127.0.0.1:{self.smtp_port}", *self.smtp_flags,
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
        self.start_workers()
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

    def start_workers(self) -> None:
        """Processes that run tasks besides the scheduler: none here (LocalExecutor)."""

    def cleanup(self) -> None:
        """Stop every process, drop the databases and schemas, remove the home (REHEARSAL_KEEP keeps it)."""
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
