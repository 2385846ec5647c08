"""The rehearsal in order: deploy, unpause and trigger, then each phase's checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from rehearsal.checks import Checks
from rehearsal.config import MONITORING, VACUUM
from rehearsal.deploy import Deployment


def backfill(first: datetime, last: datetime, max_active_runs: int) -> tuple[str, ...]:
    """`airflow backfill create` of the monitoring DAG, nights ``first`` to ``last``."""
    return (
        "backfill", "create", "--dag-id", MONITORING, "--from-date", first.isoformat(),
        "--to-date", last.isoformat(), "--max-active-runs", str(max_active_runs),
    )  # fmt: skip


class Rehearsal(Deployment, Checks):
    """One rehearsal: ``rehearse`` runs it, ``cleanup`` undoes it."""

    def two_nights(self) -> list[datetime]:
        """F2's nights: the two after the seeded one (nothing seeded there: their runs find no
        exception and write none), before today's scheduled run's interval."""
        return [self.night + timedelta(days=1), self.night + timedelta(days=2)]

    # Phase 1: unpause both DAGs (today's scheduled runs start at once) and trigger the re-check.
    def unpause_and_trigger(self) -> tuple[str, datetime]:
        """Unpause both DAGs and trigger the past night's re-check; its run id and logical date."""
        logical = datetime.now(UTC).replace(microsecond=0)
        run_id = f"rehearsal_recheck_{self.night:%Y%m%dT%H%M}"
        conf = json.dumps({"as_of": self.night.isoformat()})
        first, last = self.two_nights()
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
            # F2: two nights at once (a backfill has its own limit, not the DAG's max_active_runs=1);
            # their runs go beside today's run and the re-check, one Data Docs site for all.
            backfill(first, last, 2),
        )
        self.say(f"unpaused both DAGs; triggered {run_id} with as_of {self.night.isoformat()}")
        self.say(f"backfill of {first.isoformat()} and {last.isoformat()}, --max-active-runs 2 (F2)")
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
        clear = ("tasks", "clear", MONITORING, "-s", logical.isoformat(), "-e", logical.isoformat(), "-y")
        self.run_cli(clear)
        self.say("cleared the re-check run (it reruns)")
        self.finish(pool_step)
        self.check_missing_pool(no_pool)
        self.check_rerun(recheck, manifest, rows_before)
        self.check_two_runs_one_site(self.two_nights())
        if self.with_backfill:
            # One backfill per DAG at a time: the scheduler marks F2's complete within 30 s.
            self.wait_backfills_complete()
            self.run_cli(backfill(self.night, self.night, 1))  # the README's command (F1)
            self.say("created a backfill of the night")
            self.check_backfill()
        self.check_scheduled_runs()
