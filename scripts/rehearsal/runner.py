"""Run a rehearsal to its end: PASS/FAIL totals, the servers' last lines on a crash, cleanup."""

from __future__ import annotations

import signal
import time

from rehearsal.config import BUDGET_SECS
from rehearsal.deploy import Deployment


def run_rehearsal(
    rehearsal: Deployment, label: str, servers: tuple[str, ...], budget: float = BUDGET_SECS
) -> tuple[bool, str]:
    """Rehearse, clean up, check the time against ``budget``; (all passed, the closing counts).

    ``servers``: whose logs' last lines to print if the rehearsal stops half-way.
    """

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        rehearsal.rehearse()  # type: ignore[attr-defined]  # every rehearsal class has one
        ok = all(r for r, _ in rehearsal.results)
    except BaseException as exc:
        rehearsal.check(False, "rehearsal ran to the end", f"{type(exc).__name__}: {exc}")
        for name in servers:
            path = rehearsal.home / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name}.log (last lines)\n" + "\n".join(tail))
    finally:
        rehearsal.cleanup()
    took = time.monotonic() - rehearsal.started
    ok = rehearsal.check(took < budget, f"{label} took {took:.0f} s (budget {budget:.0f} s)") and ok
    failed = [name for good, name in rehearsal.results if not good]
    return ok, f"{len(rehearsal.results) - len(failed)} passed, {len(failed)} failed"
