"""The Celery rehearsal in order: deploy, backfill two nights, kill a worker, the UI's trigger."""

from __future__ import annotations

from datetime import timedelta

from rehearsal.celery_checks import CeleryChecks
from rehearsal.celery_deploy import WORKERS
from rehearsal.config import MONITORING, VACUUM, parse_ts

UI_RUN = "rehearsal_ui_trigger"


class CeleryRehearsal(CeleryChecks):
    """One Celery rehearsal: ``rehearse`` runs it, ``cleanup`` undoes it."""

    used_workers = 0  # how many workers ran task instances (the closing line's count)

    def rehearse(self) -> None:
        """Every phase in order; then count the workers used, before cleanup drops the metadata DB."""
        try:
            self.phases()
        finally:
            if self.meta is not None:
                self.used_workers = self.workers_used()

    def phases(self) -> None:
        """Every phase in order; the checks wait for the runs the scheduler is already running."""
        manifest = self.deploy()
        # The seeded night and the next one (no seeded anomaly after the seeded night: the open
        # exceptions stay those of the manifest).
        night, after = self.night.isoformat(), (self.night + timedelta(days=1)).isoformat()
        # Unpausing starts today's scheduled runs; the backfill's two nights go one at a time (F1);
        # the UI's trigger without as_of (F3) waits for the scheduled run (max_active_runs=1).
        self.unpause(VACUUM)
        self.unpause(MONITORING)
        backfill_cli = self.airflow_cli(
            ("backfill", "create", "--dag-id", MONITORING, "--from-date", night, "--to-date", after,
             "--max-active-runs", "1"),
        )  # fmt: skip
        self.trigger_without_as_of(UI_RUN)
        self.finish(backfill_cli)
        self.say(f"unpaused both DAGs; backfill of {night} and {after}, --max-active-runs 1")
        self.check_vacuum_serialized()  # today's vacuum run, its tasks spread over both workers
        self.check_vacuum_workers(self.runs(VACUUM)[0].run_id)
        backfill = self.check_backfill_one_at_a_time(2)
        runs = [r for r in self.runs(MONITORING) if r.run_id in backfill]
        by_night = {parse_ts(str(r.logical_date)): r.run_id for r in runs}
        night_run = by_night.get(self.night, backfill[0])
        self.check_past_night(night_run, manifest)
        self.check_workers_used(night_run)
        self.check_bucket_index(night_run, night)
        rows_before = self.warehouse_rows()
        self.check_no_duplicates(rows_before, manifest, "after the night's run")
        for run_id in [r for r in backfill if r != night_run]:
            self.check_one_email_if_failed(run_id)
        self.check_scheduled_runs()
        self.check_run_without_as_of(UI_RUN)
        self.check_killed_worker(night_run, rows_before, manifest)
        self.check_log_noise([night_run, UI_RUN])

    def workers_used(self) -> int:
        """How many workers ran task instances of this rehearsal."""
        rows = self.q("SELECT DISTINCT hostname FROM task_instance WHERE hostname <> ''")
        return len({r[0] for r in rows} & set(WORKERS))
