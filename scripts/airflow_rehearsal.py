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
4. with `--backfill`: `airflow backfill create` for that night checks the night's window;
5. a vacuum run with the pool deleted: it fails within a minute, naming the pool.

Prints PASS/FAIL lines; exit 0 only if all passed. Every process it started is stopped by PID,
also on failure or Ctrl-C; its databases and schemas are dropped.
"""

from __future__ import annotations

import signal
import sys
import time

# The helpers live in scripts/rehearsal/, next to this file (sys.path[0] when run as a script).
from rehearsal.config import BUDGET_SECS
from rehearsal.scenario import Rehearsal


def main() -> int:
    """Rehearse, report the PASS/FAIL lines' total, clean up; 0 only if every check passed."""
    # One more monitoring run (about a minute): off by default to keep CI under its budget.
    rehearsal = Rehearsal(with_backfill="--backfill" in sys.argv[1:])

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        rehearsal.rehearse()
        ok = all(r for r, _ in rehearsal.results)
    except BaseException as exc:
        rehearsal.check(False, "rehearsal ran to the end", f"{type(exc).__name__}: {exc}")
        for name in ("scheduler", "dag-processor", "api-server"):
            path = rehearsal.home / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name}.log (last lines)\n" + "\n".join(tail))
    finally:
        rehearsal.cleanup()
    took = time.monotonic() - rehearsal.started
    ok = ok and rehearsal.check(took < BUDGET_SECS, f"rehearsal took {took:.0f} s (budget {BUDGET_SECS} s)")
    failed = [name for good, name in rehearsal.results if not good]
    print(f"airflow rehearsal: {'PASS' if ok else 'FAIL'} ({len(rehearsal.results) - len(failed)} passed, "
          f"{len(failed)} failed) in {took:.0f} s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
