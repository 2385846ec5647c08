"""The checks only the Celery rehearsal makes: workers, the bucket, a killed worker, F1/F3/F4/F6."""

from __future__ import annotations

import itertools
import os
import signal
import time

from rehearsal.celery_deploy import S3_PREFIX, WORKERS, CeleryDeployment
from rehearsal.checks import Checks
from rehearsal.config import DQ_TASKS, MONITORING, VACUUM, VACUUM_TASKS, parse_ts
from rehearsal.rest import Rest

GX_INFO = "Skipping registering function"
GATE = "check_unresolved_exceptions"
GATE_LOG_MAX_LINES = 60  # F6: the gate's log was 233 lines, 214 of them GX's INFO chatter


class CeleryChecks(CeleryDeployment, Checks, Rest):
    """Each method waits for what it checks and records PASS/FAIL lines."""

    # Two workers with two slots each, picked up as the workers poll: a quick task may end before
    # the last one starts, so "in parallel" here means at least two at once.
    DQ_AT_ONCE = 2

    def hosts(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """Task id -> (hostname, try number) of the run's task instances."""
        rows = self.q(
            "SELECT task_id, hostname, try_number FROM task_instance WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {r.task_id: (r.hostname or None, r.try_number) for r in rows}

    def bucket_text(self, key: str) -> str:
        try:
            return self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception:
            return ""

    def health_page(self) -> str:
        text = self.bucket_text(f"{S3_PREFIX}/data_docs/health.html")
        (self.home / "health.html").write_text(text, encoding="utf-8")  # kept with REHEARSAL_KEEP
        return text

    def check_workers_used(self, run_id: str) -> set[str]:
        """The four DQ tasks of the run ran on both workers; the workers used."""
        hosts = self.hosts(MONITORING, run_id)
        used = {hosts[t][0] for t in DQ_TASKS if t in hosts}
        self.check(used == set(WORKERS), "the four DQ tasks of one run ran on both workers", str(hosts))
        return used

    def check_bucket_index(self, run_id: str, as_of: str) -> None:
        """One Data Docs index, in the bucket, listing the run's four results; none on a worker."""
        from order_tracking.orchestration.run_context import data_docs_run_name

        keys = [
            o["Key"]
            for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for o in page.get("Contents", [])
        ]
        indexes = [k for k in keys if k.endswith("/index.html") and "/validations/" not in k]
        name = data_docs_run_name(run_id, parse_ts(as_of))
        index = self.bucket_text(f"{S3_PREFIX}/data_docs/index.html")
        pages = [k for k in keys if name in k and k.endswith(".html")]
        local = [p for w in WORKERS for p in (self.home / w / "gx").rglob("index.html")]
        self.check(
            indexes == [f"{S3_PREFIX}/data_docs/index.html"] and index.count(name) >= 4 and len(pages) == 4,
            "one Data Docs index, in the bucket, lists the run's four results",
            f"indexes {indexes}, {index.count(name)} mentions of {name}, {len(pages)} pages",
        )
        self.check(not local, "no Data Docs on the workers' own disks", str(local[:3]))

    def check_backfill_one_at_a_time(self, nights: int) -> list[str]:
        """F1: `backfill create --max-active-runs 1` over ``nights`` nights; the runs never overlapped."""
        deadline = time.monotonic() + 60
        runs: list = []
        while len(runs) < nights and time.monotonic() < deadline:
            runs = [r for r in self.runs(MONITORING) if r.run_type == "backfill"]
            time.sleep(1)
        self.check(len(runs) == nights, f"airflow backfill create made {nights} runs", str(len(runs)))
        for r in runs:
            self.wait_run(MONITORING, r.run_id, timeout=300)
        spans = sorted(
            self.q(
                "SELECT start_date, end_date, run_id FROM dag_run"
                " WHERE dag_id = :d AND run_type = 'backfill'",
                d=MONITORING,
            )
        )
        apart = all(b.start_date >= a.end_date for a, b in itertools.pairwise(spans))
        self.check(apart, "the backfill's runs went one at a time", str([(s[0], s[1]) for s in spans]))
        return [r.run_id for r in runs]

    def check_killed_worker(self, run_id: str, rows_before: list, manifest: dict) -> str:
        """A worker killed by PID in the middle of a DQ task: retried on the other, nothing duplicated.
        The SMTP sink is down during this rerun: the failed gate's log must say so (F4)."""
        self.procs.pop("smtp").terminate()
        status, _ = self.clear_run(MONITORING, run_id)
        self.check(status == 200, "REST clearTaskInstances reran the run by its id", f"HTTP {status}")
        deadline = time.monotonic() + 120
        victim = task = None
        while victim is None and time.monotonic() < deadline:
            rows = self.q(
                "SELECT task_id, hostname, state, try_number FROM task_instance"
                " WHERE dag_id = :d AND run_id = :r AND state = 'running' AND hostname <> ''",
                d=MONITORING,
                r=run_id,
            )
            dq = [r for r in rows if r.task_id in DQ_TASKS]
            if dq:
                time.sleep(2)  # well inside the checkpoint, not at its start
                task, victim = dq[0].task_id, dq[0].hostname
            time.sleep(0.5)
        if victim is None:
            self.check(False, "a DQ task ran after the clear", "none within 120 s")
            return ""
        proc = self.procs[victim]
        os.killpg(proc.pid, signal.SIGKILL)  # the whole machine gone: worker, its pool and tasks
        proc.wait()
        self.say(f"killed {victim} (pid {proc.pid}) while it ran {task}")
        self.wait_run(MONITORING, run_id, timeout=240, clear_number=1)
        hosts = self.hosts(MONITORING, run_id)
        survivor = next(w for w in WORKERS if w != victim)
        retried = self.q(
            "SELECT count(*) FROM task_instance_history WHERE dag_id = :d AND run_id = :r AND task_id = :t"
            " AND hostname = :h",
            d=MONITORING,
            r=run_id,
            t=task,
            h=victim,
        )[0][0]
        self.check(
            hosts[task][0] == survivor and retried >= 1,
            f"{task}, killed with {victim}, was retried on {survivor}",
            f"now {hosts[task]}, {retried} earlier try on {victim}",
        )
        self.check_no_duplicates(rows_before, manifest, "after the killed worker's retry")
        gate = self.task_log(MONITORING, run_id, GATE)
        warned = [ln for ln in gate.splitlines() if "alert email will not be sent: smtp_default" in ln]
        state = self.run_state(MONITORING, run_id)[0]
        self.check(
            state == "failed" and len(warned) == 1 and "warning" in warned[0].lower(),
            "SMTP down: the failed gate task's log warns that the alert email will not be sent",
            f"run {state}; {warned[0][:200] if warned else 'no warning'}",
        )
        return survivor

    def check_no_duplicates(self, rows_before: list, manifest: dict, when: str) -> None:
        """Zero duplicate and zero lost exceptions against the seeded manifest."""
        rows = self.warehouse_rows()
        open_rows = sorted((r.exception_type, r.order_id) for r in rows if r.resolved_at is None)
        expected = sorted((t, i) for t, ids in manifest["expected"].items() for i in ids)
        dupes = len(open_rows) - len(set(open_rows))
        lost = sorted(set(expected) - set(open_rows))
        self.check(
            len(rows) == len(rows_before) and not dupes and not lost and open_rows == expected,
            f"zero duplicate and zero lost exceptions {when}",
            f"{len(rows_before)} rows before, {len(rows)} after, {dupes} duplicate(s), {len(lost)} lost",
        )

    def trigger_without_as_of(self, run_id: str) -> None:
        """F3: the UI's trigger form, as_of left empty (the form sends null), through the REST API."""
        status, answer = self.trigger_from_ui(MONITORING, run_id, {"as_of": None})
        ok = status == 200
        self.check(ok, "the UI's trigger (REST) starts a run with an empty as_of", f"HTTP {status}")
        if not ok:
            self.say(str(answer)[:300])

    def check_one_email_if_failed(self, run_id: str) -> None:
        """Exactly one email if the run failed, none if it succeeded."""
        failed = self.run_state(MONITORING, run_id)[0] == "failed"
        mails = self.emails_for(run_id, int(failed), timeout=30 if failed else 0)
        self.check(len(mails) == int(failed), f"run {run_id}: failed={failed}, {len(mails)} email(s)")

    def check_run_without_as_of(self, run_id: str) -> None:
        """The run without as_of checked the 24 h to its trigger time (``run_after``: it has no data
        interval), the same for Tests 1-3; F5's recipe selects it."""
        if self.run_state(MONITORING, run_id)[0] is None:
            return  # not triggered: already reported
        self.wait_run(MONITORING, run_id, timeout=240)
        row = self.q(
            "SELECT data_interval_end, logical_date, run_after, start_date, end_date FROM dag_run"
            " WHERE dag_id = :d AND run_id = :r",
            d=MONITORING,
            r=run_id,
        )[0]
        sums = self.summaries(run_id)
        as_of = {parse_ts(s["as_of"]) for t, s in sums.items() if t != DQ_TASKS[0] and s.get("as_of")}
        # No logical date: the data interval's end if any, else the run's trigger time (run_after),
        # in whole seconds, one value for every test (never each task's own start).
        anchor = row.data_interval_end or row.run_after
        expected = parse_ts(str(anchor)).replace(microsecond=0) if anchor else None
        self.check(
            row.logical_date is None and len(as_of) >= 1 and as_of == {expected},
            "a run without as_of (no logical date) checks the 24 h to its trigger time, one as_of",
            f"as_of {sorted(map(str, as_of))}, run_after {row.run_after}",
        )
        self.check_one_email_if_failed(run_id)
        # F5: the rerun recipe for a run with no logical date (REST, by run id), as a dry run.
        status, answer = self.clear_run(MONITORING, run_id, dry_run=True)
        cleared = answer.get("task_instances", []) if isinstance(answer, dict) else []
        self.check(
            status == 200 and len(cleared) == len(DQ_TASKS) + 1,
            "REST clearTaskInstances selects a run that has no logical date",
            f"HTTP {status}, {len(cleared)} task instances",
        )

    def check_log_noise(self, run_ids: list[str]) -> None:
        """F6: GX's INFO lines in no task log and no server's output; the gate's log stays short."""
        counts = {}
        for run_id in run_ids:
            for task in [*DQ_TASKS, GATE]:
                counts[f"{run_id}/{task}"] = self.task_log(MONITORING, run_id, task).count(GX_INFO)
        servers = ["scheduler", "dag-processor", "api-server", *WORKERS]
        for name in servers:
            path = self.home / f"{name}.log"
            counts[name] = path.read_text(errors="replace").count(GX_INFO) if path.exists() else 0
        noisy = {k: v for k, v in counts.items() if v}
        where = f"{len(counts)} task logs and server outputs"
        self.check(not noisy, f"no '{GX_INFO}' line in {where}", str(noisy))
        gate_lines = len(self.task_log(MONITORING, run_ids[-1], GATE).splitlines())
        dq_lines = len(self.task_log(MONITORING, run_ids[-1], DQ_TASKS[2]).splitlines())
        self.check(
            0 < gate_lines <= GATE_LOG_MAX_LINES,
            f"the gate's log is our lines only ({gate_lines} lines, at most {GATE_LOG_MAX_LINES})",
            f"{DQ_TASKS[2]}: {dq_lines} lines",
        )

    def check_vacuum_workers(self, run_id: str) -> None:
        """The vacuum tasks ran on the workers, one at a time across them (the pool)."""
        hosts = self.hosts(VACUUM, run_id)
        used = sorted({hosts[t][0] for t in VACUUM_TASKS if hosts.get(t) and hosts[t][0]})
        self.say(f"vacuum tasks ran on {used}")
