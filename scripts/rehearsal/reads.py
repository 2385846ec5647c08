"""What the checks read: the metadata DB (assertions only; deployment uses the CLI), mail, logs."""

from __future__ import annotations

import json
import mailbox
import time

import sqlalchemy as sa

from rehearsal.config import MONITORING, PG
from rehearsal.state import RehearsalState


class Reads(RehearsalState):
    """Read-only views of what the deployed Airflow did."""

    def q(self, sql: str, **params: object) -> list[sa.Row]:
        """Rows of ``sql`` on the metadata DB."""
        assert self.meta is not None
        with self.meta.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def run_state(self, dag_id: str, run_id: str) -> tuple[str | None, int]:
        """State and clear number of a DAG run; (None, -1) while it does not exist."""
        rows = self.q(
            "SELECT state, clear_number FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return (rows[0][0], rows[0][1]) if rows else (None, -1)

    def wait_run(self, dag_id: str, run_id: str, timeout: float, clear_number: int = 0) -> str:
        """Wait until the run (cleared ``clear_number`` times) succeeded or failed; its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, number = self.run_state(dag_id, run_id)
            if state in ("success", "failed") and number >= clear_number:
                return state
            time.sleep(1)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")

    def task_rows(self, dag_id: str, run_id: str) -> dict[str, sa.Row]:
        """The run's task instances by task id."""
        rows = self.q(
            "SELECT task_id, state, start_date, end_date FROM task_instance"
            " WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {r.task_id: r for r in rows}

    def summaries(self, run_id: str) -> dict[str, dict]:
        """The ``summary`` XCom of each monitoring task of the run, decoded."""
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
        """Every run of the DAG, oldest first."""
        return self.q(
            "SELECT run_id, run_type, state, logical_date FROM dag_run WHERE dag_id = :d ORDER BY id",
            d=dag_id,
        )

    def wait_backfills_complete(self, timeout: float = 60) -> None:
        """Until the scheduler marked every backfill complete (it checks every 30 s): Airflow
        refuses a second backfill of a DAG while one is running."""
        deadline = time.monotonic() + timeout
        while self.q("SELECT 1 FROM backfill WHERE dag_id = :d AND completed_at IS NULL", d=MONITORING):
            if time.monotonic() > deadline:
                raise TimeoutError(f"a backfill of {MONITORING} was not complete within {timeout:.0f} s")
            time.sleep(1)

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
        """The exceptions table as the checks left it."""
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

    def log_folders(self) -> list:
        """Where the task logs are: the one local folder here (each Celery worker has its own)."""
        return [self.home / "airflow" / "logs"]

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every log file of the task in the run (every try, every worker), joined."""
        return "\n".join(
            p.read_text(errors="replace")
            for logs in self.log_folders()
            for p in sorted(logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log"))
        )

    def health_page(self) -> str:
        """The Data Docs health page as the final task left it ("" if there is none)."""
        health = self.gx_root / "uncommitted" / "data_docs" / "local_site" / "health.html"
        return health.read_text(encoding="utf-8") if health.exists() else ""
