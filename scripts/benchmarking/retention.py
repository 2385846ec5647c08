"""The fixed per-run cost with a year of stored results and the default retention, against the
same run's own store without that year, measured in the same rounds (issue 25: at most 1.25x).

"Fresh" is the results store and site as the timed rounds left them (this benchmark's own runs:
over 120 results, so the index is at its 120-row limit either way): what differs is the year of
older nights, which is what retention bounds. The year's results get their pages too.

The two states take turns at the paths GX reads (renames between runs, outside the timing), so
each round times both under the same load: the machine is shared, and two phases minutes apart
differed by more than the effect measured. The year's first run (the warm-up) prunes it to
``ORDER_TRACKING_KEEP_DAYS`` nights; the timed runs pay for that store and their own prune.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarking.data_changes import fill_results_store, stored_results
from benchmarking.report import round_ratios
from benchmarking.rounds import rounds

YEAR = 1460  # 4 checks a night


class States:
    """Two states of the results store and the site's pages, one at a time at the real paths."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.current = "year"
        # Parked outside the GX tree: a sibling such as ``validations.fresh`` inside the site
        # matches the store's "validations" prefix, and GX listed its pages as results it could
        # not find (a lookup and a "Validation result not found" line each, timed in both states).
        # Next to the gx copy: the same file system, so parking is a rename.
        self.park = Path(tempfile.mkdtemp(prefix="ot-bench-parked-", dir=paths[0].parent.parent.parent))

    def parked(self, path: Path, which: str) -> Path:
        return self.park / which / str(self.paths.index(path))

    def snapshot_fresh(self) -> None:
        """Copy what the paths hold now as the fresh state."""
        for path in self.paths:
            if path.exists():
                shutil.copytree(path, self.parked(path, "fresh"))
            else:
                self.parked(path, "fresh").mkdir(parents=True)
            self.parked(path, "year").parent.mkdir(parents=True, exist_ok=True)

    def use(self, which: str) -> None:
        if which == self.current:
            return
        for path in self.paths:
            path.rename(self.parked(path, self.current))
            self.parked(path, which).rename(path)
        self.current = which

    def drop_fresh(self) -> None:
        """Leave the year's (pruned) state at the paths and no parked copy."""
        self.use("year")
        shutil.rmtree(self.park, ignore_errors=True)


def measure_kept(
    states: States, store: Path, pages: Path, repeat: int, run: Callable[[], list[float]], keep_days: int
) -> dict:
    """Rounds of ``run`` on the fresh state and on a year of results kept ``keep_days`` days."""
    before = fill_results_store(store, YEAR, pages=pages)
    cpu: dict[str, list[float]] = {"fresh": [], "year": []}

    def on(which: str) -> Callable[[], list[float]]:
        def timed() -> list[float]:
            states.use(which)
            started = time.process_time()
            wall = run()
            # CPU seconds too: on a loaded machine they move far less than the wall clock
            cpu[which].append(time.process_time() - started)
            return wall

        return timed

    try:
        fresh_results = _count_in(states, "fresh", store)
        timing = rounds(repeat, {"fresh": on("fresh"), "year": on("year")})
        states.use("year")
        after = stored_results(store)
    finally:
        states.drop_fresh()
    fresh, kept = timing["fresh"], timing["year"]
    return {
        "keep_days": keep_days,
        "results_before": before,
        "results_after": after,
        "fresh_results": fresh_results,
        "fresh_s": fresh["median_s"],
        "median_s": kept["median_s"],
        "runs_s": kept["runs_s"],
        "over_fresh": kept["median_s"] / fresh["median_s"],
        "over_fresh_rounds": round_ratios(kept, fresh),
        # the warm-up (the year's big prune) left out
        "cpu_over_fresh": statistics.median(cpu["year"][1:]) / statistics.median(cpu["fresh"][1:]),
    }


def _count_in(states: States, which: str, store: Path) -> int:
    states.use(which)
    return stored_results(store)
