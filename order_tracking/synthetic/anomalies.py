"""The anomalies Tests 1-3 must flag, and the traps around their window that they must not.

Each ``add_*`` adds orders whose mart ``update_time`` is one of ``times``; called once with
``anomaly_times`` (label ``"expected"``) and once with ``window_edge_traps`` (label ``"edge"``).
Their random draws happen in call order, which fixes the data for a seed: keep the order.
"""

from __future__ import annotations

import numpy as np

from order_tracking.settings import (
    ORDER_MISSING_SPATH,
    REACTIVATED_ORDER_MISSING_ECS,
    UTI_UTS_TIME_MISMATCH,
)
from order_tracking.synthetic.config import (
    DAY,
    HIST_ONLY,
    HOUR,
    MISMATCH_LATE,
    MISMATCH_LOST_LAST,
    MISSING,
    REACTIVATED,
    Windows,
)
from order_tracking.synthetic.orders import OrderBook, Orders, event_span

# The code each anomaly type is tagged with (in the order the manifest lists the types).
TYPE_CODES = (
    (UTI_UTS_TIME_MISMATCH, "M"),
    (ORDER_MISSING_SPATH, "S"),
    (REACTIVATED_ORDER_MISSING_ECS, "R"),
)


def anomaly_times(rng: np.random.Generator, count: int, w: Windows) -> np.ndarray:
    """``count`` update times inside ``(after, as_of]``; the first is exactly ``as_of``.

    The one at ``as_of`` is the trap ``at_as_of_inside``: the window's end is inclusive.
    """
    if count <= 0:
        return np.empty(0, np.int64)
    return np.concatenate([[w.as_of], w.as_of - rng.integers(1, w.lookback, count - 1)]).astype(np.int64)


def window_edge_traps(w: Windows) -> np.ndarray:
    """Traps: 1s before the window's start (``just_outside_window``) and exactly at it
    (``at_window_start``: the start is exclusive). Each anomaly is placed at both."""
    return np.array([w.after - 1, w.after], np.int64)


def add_uti_uts_time_mismatch(
    book: OrderBook, rng: np.random.Generator, times: np.ndarray, label: str
) -> None:
    """UTI_UTS_TIME_MISMATCH at ``times``, alternating the two ways a mismatch shows up."""
    _add_update_time_later(book, rng, times[0::2], label)
    _add_last_spath_lost(book, rng, times[1::2], label)


def _add_update_time_later(book: OrderBook, rng: np.random.Generator, times: np.ndarray, label: str) -> None:
    """Mismatch: the mart ``update_time`` moved 1-30 min later than the order's last event."""
    delta = rng.integers(60, 1800, len(times))
    last = times - delta
    book.add(MISMATCH_LATE, last - event_span(rng, len(times)), last, mart_upd=times, tag=(label, "M"))


def _add_last_spath_lost(book: OrderBook, rng: np.random.Generator, times: np.ndarray, label: str) -> None:
    """Mismatch: the last mart spath row is lost (``lost_from_warehouse``); the order keeps its
    other mart spath rows and its mart_ecs row."""
    book.add(MISMATCH_LOST_LAST, times - event_span(rng, len(times)), times, tag=(label, "M"))


def add_order_missing_spath(book: OrderBook, rng: np.random.Generator, times: np.ndarray, label: str) -> None:
    """ORDER_MISSING_SPATH: no spath row in the mart nor in any history table (the source has them)."""
    book.add(MISSING, times - event_span(rng, len(times)), times, tag=(label, "S"))


def add_reactivated_order_missing_ecs(
    book: OrderBook, rng: np.random.Generator, times: np.ndarray, label: str, as_of: int
) -> None:
    """REACTIVATED_ORDER_MISSING_ECS: created 190-199 days ago, so its ecs row is only in
    ``hist_ecs_order_info_*`` and its old events in ``hist_uni_tracking_spath_*``; new events in
    the window (consistent for Test 1)."""
    book.add(REACTIVATED, as_of - rng.integers(190 * DAY, 199 * DAY, len(times)), times, tag=(label, "R"))


def add_spath_only_in_history_trap(book: OrderBook, rng: np.random.Generator, w: Windows) -> None:
    """Trap ``spath_only_in_history``: updated in the window, but every spath row is already
    archived to history, so it is not missing its spath."""
    hist_add = w.as_of - rng.integers(130 * DAY, 170 * DAY, 2)
    upd = w.as_of - rng.integers(1, w.lookback, 2)
    last = hist_add + event_span(rng, 2, HOUR, 5 * DAY)
    book.add(HIST_ONLY, hist_add, last, mart_upd=upd, src_upd=upd, tag="hist_only")


def lost_from_warehouse(o: Orders) -> np.ndarray:
    """Events the warehouse never got: every event of ORDER_MISSING_SPATH orders and the last
    one of the lost-last mismatches. Everything else is in the mart or history."""
    lost = o.ev_kind == MISSING
    lost |= (o.ev_kind == MISMATCH_LOST_LAST) & o.is_last
    return lost
