"""The checks of each phase: the past night, the rerun, scheduled runs, vacuum, backfill, no pool,
and two runs at once building one Data Docs site (issue 25 F2)."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from rehearsal.config import DQ_TASKS, MONITORING, POOL_GUARD, VACUUM, VACUUM_TASKS, parse_ts
from rehearsal.processes import Processes
from rehearsal.reads import Reads

# What the DQ tasks log when a page was not built or not linked (site_builder.py, operator.py).
DOCS_WARNINGS = (
    "Data Docs page not built",
    "no Data Docs page for",
    "Data Docs index at",
    "Data Docs not rebuilt",
)


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most task spans (start, end) running at one moment (a start inside the others)."""
    return max((sum(s <= start < e for s, e in spans) for start, _ in spans), default=0)


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
        at_once = most_at_once(spans)
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

    def backfill_runs(self, nights: list[datetime], timeout: float = 30) -> list:
        """The backfill runs of ``nights`` (by logical date), once there is one per night."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [
                r
                for r in self.runs(MONITORING)
                if r.run_type == "backfill" and r.logical_date and parse_ts(str(r.logical_date)) in nights
            ]
            if len(runs) >= len(nights) or time.monotonic() > deadline:
                return runs
            time.sleep(1)

    def check_backfill(self) -> None:
        """The backfill run checked the night's window."""
        runs = self.backfill_runs([self.night])
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

    def check_two_runs_one_site(self, nights: list[datetime]) -> None:
        """F2: two monitoring runs at once (a backfill, ``--max-active-runs 2``) on one local Data
        Docs site: they overlapped, every DQ task's page is on disk, the index lists all of them,
        every stored result of the two runs has its page, and no DQ task warned of a page not built."""
        from order_tracking.orchestration.run_context import data_docs_run_name

        runs = self.backfill_runs(nights, timeout=60)
        self.check(
            len(runs) == len(nights),
            f"airflow backfill create --max-active-runs 2 made {len(nights)} runs",
            str([r.run_id for r in runs]),
        )
        if len(runs) != len(nights):
            return
        for r in runs:
            self.say(f"{r.run_id}: {self.wait_run(MONITORING, r.run_id, timeout=240)}")
        run_ids = [r.run_id for r in runs]
        spans = self.q(
            "SELECT run_id, start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = ANY(:r)",
            d=MONITORING,
            r=run_ids,
        )
        (a, b) = spans
        tasks = [
            (run_id, row.start_date, row.end_date)
            for run_id in run_ids
            for t, row in self.task_rows(MONITORING, run_id).items()
            if t in DQ_TASKS and row.start_date and row.end_date
        ]
        # A DQ task of one run overlapped one of the other: their Data Docs builds could race.
        both = any(
            r1 != r2 and s1 < e2 and s2 < e1
            for (r1, s1, e1), (r2, s2, e2) in itertools.combinations(tasks, 2)
        )
        at_once = most_at_once([(s, e) for _, s, e in tasks])
        self.check(
            a.start_date < b.end_date and b.start_date < a.end_date and both,
            "the two runs went at once, DQ tasks of both running together",
            f"runs {a.start_date:%H:%M:%S}-{a.end_date:%H:%M:%S} and {b.start_date:%H:%M:%S}-"
            f"{b.end_date:%H:%M:%S}; at most {at_once} of their {len(tasks)} DQ tasks at once",
        )
        site = self.gx_root / "uncommitted" / "data_docs" / "local_site"
        names = {}
        for r in runs:
            sums = self.summaries(r.run_id)
            pages = {t: (sums.get(t) or {}).get("data_docs_page") for t in DQ_TASKS}
            there = [t for t, p in pages.items() if p and Path(unquote(urlparse(p).path)).is_file()]
            errors = [s.get("data_docs_error") for s in sums.values() if s.get("data_docs_error")]
            self.check(
                len(there) == len(DQ_TASKS) and not errors,
                f"{r.run_id}: every DQ task's XCom names its Data Docs page, and the page is on disk",
                f"{sum(map(bool, pages.values()))} named, {len(there)} on disk; "
                f"without: {sorted(set(DQ_TASKS) - set(there))}" + (f"; {errors}" if errors else ""),
            )
            as_of = next((s["as_of"] for s in sums.values() if s.get("as_of")), str(r.logical_date))
            names[r.run_id] = data_docs_run_name(r.run_id, parse_ts(as_of))
        # The results GX stored for the two runs (suite/run name/run time/batch): each has its page,
        # listed in the index (a page removed by the other run's build would leave its result without).
        results = self.gx_root / "uncommitted" / "validations"
        stored = [
            p.relative_to(results).with_suffix("").as_posix()
            for name in names.values()
            for p in sorted(results.glob(f"*/{name}/*/*.json"))
        ]
        unpaged = [k for k in stored if not (site / "validations" / f"{k}.html").is_file()]
        self.check(
            len(stored) == 2 * len(DQ_TASKS) and not unpaged,
            f"each of the {2 * len(DQ_TASKS)} results the two runs stored has its page on disk",
            f"{len(stored)} results, without a page: {unpaged}",
        )
        index_path = site / "index.html"
        index = index_path.read_text(encoding="utf-8") if index_path.exists() else ""
        unlisted = [k for k in stored if f"validations/{k}.html" not in index]
        self.check(
            len(stored) == 2 * len(DQ_TASKS) and not unlisted,
            f"the Data Docs index lists the {2 * len(DQ_TASKS)} pages of both runs",
            f"{len(stored) - len(unlisted)} of {len(stored)} listed; not listed: {unlisted}",
        )
        warned = [
            ln.strip()[:200]
            for run_id in run_ids
            for t in DQ_TASKS
            for ln in self.task_log(MONITORING, run_id, t).splitlines()
            if any(m in ln for m in DOCS_WARNINGS)
        ]
        self.check(
            not warned, "no DQ task of the two runs warned of a Data Docs page not built", str(warned[:3])
        )
