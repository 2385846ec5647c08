"""The measurements made in a fresh interpreter: start-up and a whole ``monitor`` run's peak RSS."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarking.config import AS_OF, CHECKS, ROOT, SCRIPT
from benchmarking.measures import RuleScans


def child(mode: str) -> None:
    """Run in a fresh interpreter; print one JSON line with what was measured."""
    t0 = time.perf_counter()
    from order_tracking.checks import gx_project
    from order_tracking.checks import run as monitoring
    from order_tracking.settings import Settings

    t1 = time.perf_counter()
    settings = Settings.from_env()
    context = gx_project.load(settings)
    t2 = time.perf_counter()
    out = {"import_s": t1 - t0, "load_s": t2 - t1}
    if mode == "full":
        gx_project.load = lambda _settings: context  # already loaded, timed above
        with RuleScans() as scans:
            report = monitoring.run_checks(settings, AS_OF, CHECKS)
        out["full_s"] = time.perf_counter() - t2
        out["rule_scans"] = scans.per_check
        out["outcomes"] = [(o.check, o.status, o.failing, o.new, o.already_open) for o in report.outcomes]
    out["maxrss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the address space made by exec; getrusage's
    ``ru_maxrss`` survives execve and would report the (bigger) parent's peak at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mode: str) -> tuple[dict, float]:
    """Rerun the entry point with ``--child mode`` and this run's flags; its JSON and wall time."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", mode, *sys.argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {mode!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall
