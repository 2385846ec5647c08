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
4. two runs at once on one local Data Docs site (issue 25 F2): `airflow backfill create
   --max-active-runs 2` over the two nights after the seeded one, created with step 1 (its runs
   go beside today's scheduled run: a backfill has its own limit); their DQ tasks overlapped, each
   of the 8 names its page in its XCom summary and the page is on disk, the index lists all 8,
   every result they stored has its page, and no DQ task logged a page not built;
5. with `--backfill`: `airflow backfill create` for that night (`--max-active-runs 1`, after
   step 4's backfill is complete: one backfill per DAG at a time) checks the night's window;
6. a vacuum run with the pool deleted: it fails within a minute, naming the pool.

Prints PASS/FAIL lines; exit 0 only if all passed. Every process it started is stopped by PID,
also on failure or Ctrl-C; its databases and schemas are dropped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The checks read names from order_tracking (the project root), as the deployment does.
sys.path.append(str(Path(__file__).resolve().parents[1]))
# The helpers live in scripts/rehearsal/, next to this file (sys.path[0] when run as a script).
from rehearsal.runner import run_rehearsal
from rehearsal.scenario import Rehearsal


def main() -> int:
    """Rehearse, report the PASS/FAIL lines' total, clean up; 0 only if every check passed."""
    # One more monitoring run (about a minute): off by default to keep CI under its budget.
    rehearsal = Rehearsal(with_backfill="--backfill" in sys.argv[1:])
    ok, counts = run_rehearsal(rehearsal, "rehearsal", ("scheduler", "dag-processor", "api-server"))
    took = time.monotonic() - rehearsal.started
    print(f"airflow rehearsal: {'PASS' if ok else 'FAIL'} ({counts}) in {took:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
