#!/usr/bin/env python
"""`make airflow-rehearsal-celery`: the DAGs on the CeleryExecutor with two workers, proven.

The deployment of `make airflow-rehearsal` (PostgreSQL metadata DB, scheduler, dag-processor,
api-server, airflow-setup, seeded PostgreSQL/MariaDB stand-ins, an aiosmtpd sink), with the
CeleryExecutor: the machine's Redis (127.0.0.1:6379) as the broker, the result backend in the
metadata DB, and two `airflow celery worker` processes, each with its own Celery hostname,
AIRFLOW_HOME, log folder and GX folder, sharing only the databases, Redis and the S3 stores (a moto
server on 127.0.0.1). Then:

1. unpause both DAGs and `airflow backfill create --max-active-runs 1` over two nights (F1): the
   runs go one at a time; today's vacuum run never overlaps two vacuum tasks across the workers;
2. the seeded night's run: its four DQ tasks ran on both workers, one Data Docs index in the
   bucket lists its four results, the health page counts every open exception, one email, zero
   duplicate and zero lost exceptions against the seed's manifest;
3. a rerun by run id (REST clearTaskInstances, the README's recipe) during which the worker running
   a DQ task is killed by PID: the task is retried on the other worker, nothing is duplicated;
4. the UI's trigger (REST) with an empty as_of (F3) while the SMTP sink is down: the run checks its
   data interval, and the failed gate task's log warns that the email will not go out (F4);
5. GX's INFO lines in no task log and no process output; the gate's log stays short (F6).

Last line: `celery rehearsal: PASS (N passed, 0 failed; workers used: 2)`; exit 0 only then.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The checks read names from order_tracking (the project root), as the deployment does.
sys.path.append(str(Path(__file__).resolve().parents[1]))
# The helpers live in scripts/rehearsal/, next to this file (sys.path[0] when run as a script).
from rehearsal.celery_deploy import WORKERS
from rehearsal.celery_scenario import CeleryRehearsal
from rehearsal.runner import run_rehearsal

BUDGET_SECS = 330  # CI's 25 minutes: lint + tests + the LocalExecutor rehearsal leave about 5 1/2


def main() -> int:
    """Rehearse, clean up; the closing line with the number of workers that ran tasks."""
    rehearsal = CeleryRehearsal()
    servers = ("scheduler", "dag-processor", "api-server", *WORKERS)
    ok, counts = run_rehearsal(rehearsal, "celery rehearsal", servers, budget=BUDGET_SECS)
    ok = ok and rehearsal.used_workers == len(WORKERS)
    print(f"celery rehearsal: {'PASS' if ok else 'FAIL'} ({counts}; workers used: {rehearsal.used_workers})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
