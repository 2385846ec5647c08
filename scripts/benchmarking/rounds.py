"""Timing rounds: a warm-up, then every kind once a round, each round starting one kind later."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def rounds(repeat: int, kinds: dict[str, Callable[[], list[float]]]) -> dict[str, dict]:
    """Warm-up once, then ``repeat`` rounds of every kind; medians of totals and per check.

    Round ``i`` starts at the ``i``-th kind (raw, stock, validate ... then stock, validate, ...,
    raw): no kind always runs right after the same other one (stock scans twice what raw does),
    and each meets the machine's slow drifts at every place in the round. ``runs_s`` keeps the
    rounds in order, so ``runs_s[i]`` of two kinds were measured in the same round.
    """
    for fn in kinds.values():
        fn()
    order = list(kinds)
    samples: dict[str, list[list[float]]] = {k: [] for k in kinds}
    for i in range(repeat):
        start = i % len(order)
        for kind in order[start:] + order[:start]:
            samples[kind].append(kinds[kind]())
    out = {}
    for kind, runs in samples.items():
        out[kind] = {
            "median_s": statistics.median(sum(r) for r in runs),
            "per_check_s": [statistics.median(col) for col in zip(*runs, strict=True)],
            "runs_s": [round(sum(r), 4) for r in runs],
        }
    return out
