"""The rehearsal in order: deploy, unpause and trigger, then each phase's checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rehearsal.checks import Checks
from rehearsal.config import MONITORING, VACUUM
from rehearsal.deploy import Deployment


class Rehearsal(Deployment, Checks):
    """One rehearsal: ``rehearse`` runs it, ``cleanup`` undoes it."""

    # Phase 1: unpause both DAGs (today's scheduled runs start at once) and trigger the re-check.
    def unpause_and_trigger(self) -> tuple[str, datetime]:
        """Unpause both DAGs and trigger the past night's re-check; its run id and logical date."""
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

    def rehearse(self) -> None:
        """Every phase in order; slow CLI steps run in the background while earlier runs are checked."""
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
                (
                    "backfill",
                    "create",
                    "--dag-id",
                    MONITORING,
                    "--from-date",
                    day,
                    "--to-date",
                    day,
                    "--max-active-runs",
                    "1",
                ),  # the README's command (F1)
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
