"""The checks of each phase: the past night, the rerun, scheduled runs, vacuum, backfill, no pool."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

from rehearsal.config import DQ_TASKS, MONITORING, POOL_GUARD, VACUUM, VACUUM_TASKS, parse_ts
from rehearsal.processes import Processes
from rehearsal.reads import Reads


class Checks(Processes, Reads):
    """Each method waits for its run and records PASS/FAIL lines with ``check``."""

    # The DQ tasks run in parallel: on the LocalExecutor all four at once.
    DQ_AT_ONCE = 4

    def check_past_night(self, run_id: str, manifest: dict) -> None:
        """The re-check of a past night: its window, findings, overlap, log, health page, email."""
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
        spans = [(tis[t].start_date, tis[t].end_date) for t in DQ_TASKS if tis.get(t) and tis[t].end_date]
        at_once = max((sum(s <= start < e for s, e in spans) for start, _ in spans), default=0)
        self.check(
            len(spans) == 4 and at_once >= self.DQ_AT_ONCE,
            f"at least {self.DQ_AT_ONCE} of the four DQ tasks ran at once",
            f"at most {at_once} at once",
        )
        log = self.task_log(MONITORING, run_id, "dq_missing_spath")
        self.check(
            "running checkpoint for missing_spath" in log and "Skipping registering function" not in log,
            "a DQ task log holds our lines, not GX's INFO chatter",
            f"{len(log.splitlines())} lines",
        )
        total = sum(len(ids) for ids in manifest["expected"].values())
        text = self.health_page()
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
        """After `airflow tasks clear`: no duplicate exception, and one more email."""
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
        """Today's vacuum run (or one triggered now): it succeeded, one task at a time, guard silent."""
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
        """The backfill run checked the night's window."""
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
        """The vacuum run without its pool fails fast, naming the pool; its tasks are skipped."""
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
