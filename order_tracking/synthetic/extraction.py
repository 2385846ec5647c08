"""Test 0: the raw copies of the source, with extraction rows lost on purpose.

Orders created inside the Test 0 window ``[as_of-2h5m, as_of-5m)`` lose their raw ecs or first
raw spath row; one created exactly at the window's end loses both, as a trap (outside the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from order_tracking.synthetic.config import EDGE, HOUR, RAW_HOURS, RECENT, Columns, Windows
from order_tracking.synthetic.orders import OrderBook, Orders, event_span


def add_recent_orders(book: OrderBook, rng: np.random.Generator, w: Windows, dropped_raw: int) -> None:
    """Orders created inside the Test 0 window: enough for ``dropped_raw`` ecs and as many spath
    drops, plus some that keep every raw row."""
    n_recent = 6 + 2 * dropped_raw
    recent_add = rng.integers(w.t0_start, w.t0_end, n_recent)
    last = np.minimum(recent_add + event_span(rng, n_recent, 60, 4 * HOUR), w.as_of)
    book.add(RECENT, recent_add, last, tag="recent")


def add_raw_dropped_at_buffer_edge_trap(book: OrderBook, w: Windows) -> None:
    """Trap ``raw_dropped_at_buffer_edge``: created exactly at the Test 0 window's end (outside it);
    its raw ecs and first raw spath rows are dropped, and Test 0 must not count them."""
    book.add(EDGE, [w.t0_end], [min(w.t0_end + 120, w.as_of)], tag="edge_drop")


@dataclass(frozen=True)
class ExtractionDrops:
    """Which orders (indexes) lose which raw rows."""

    ecs: np.ndarray  # lose their raw ecs row
    uts: np.ndarray  # lose their first raw spath row (at add_time)
    edge: int  # the buffer-edge trap: loses both


def pick_extraction_drops(o: Orders, rng: np.random.Generator, dropped_raw: int) -> ExtractionDrops:
    """``dropped_raw`` recent orders lose their raw ecs row, ``dropped_raw`` others a raw spath row."""
    idx_of = {tag: [i for t, i in o.tags if t == tag] for tag in ("recent", "edge_drop")}
    recent_idx = np.array(idx_of["recent"], np.int64)
    drop_pick = rng.permutation(len(recent_idx))
    return ExtractionDrops(
        ecs=recent_idx[drop_pick[:dropped_raw]],
        uts=recent_idx[drop_pick[dropped_raw : 2 * dropped_raw]],
        edge=idx_of["edge_drop"][0],
    )


def raw_tables(o: Orders, drops: ExtractionDrops, as_of: int) -> dict[str, Columns]:
    """The raw copies: the last ``RAW_HOURS`` of the (correct) source, minus ``drops``."""
    raw_from = as_of - RAW_HOURS * HOUR
    raw_ecs = (o.add >= raw_from) & (o.add <= as_of)
    raw_ecs[drops.ecs] = False
    raw_ecs[drops.edge] = False
    raw_uti = (o.src_upd >= raw_from) & (o.src_upd <= as_of)
    dup = _seen_by_two_cycles(o, raw_uti, raw_from)
    raw_uts = (o.ev_time >= raw_from) & (o.ev_time <= as_of)
    raw_uts[o.starts[drops.uts]] = False
    raw_uts[o.starts[drops.edge]] = False
    return {
        "raw_ecs": {
            "order_id": o.order_id[raw_ecs],
            "partner_id": o.partner_id[raw_ecs],
            "add_time": o.add[raw_ecs],
        },
        "raw_uti": {
            "order_id": np.concatenate([o.order_id[raw_uti], o.order_id[o.ev_order[dup]]]),
            "update_time": np.concatenate([o.src_upd[raw_uti], o.ev_time[dup]]),
        },
        "raw_uts": {
            "id": o.ev_id[raw_uts],
            "order_id": o.order_id[o.ev_order[raw_uts]],
            "pathtime": o.ev_time[raw_uts],
        },
    }


def _seen_by_two_cycles(o: Orders, raw_uti: np.ndarray, raw_from: int) -> np.ndarray:
    """Events whose time is also in raw uti: an order seen by two 15-minute cycles has its
    previous event time in raw as well (normal, not a drop)."""
    return (
        (o.pos == o.n_ev[o.ev_order] - 2)
        & raw_uti[o.ev_order]
        & (o.ev_time >= raw_from)
        & (o.ev_time < o.src_upd[o.ev_order])
    )


def expected_dropped(o: Orders, drops: ExtractionDrops, w: Windows) -> dict[str, int]:
    """What Test 0 must count as lost per source table: the drops inside its window."""

    def in_t0(times: np.ndarray) -> np.ndarray:
        return (times >= w.t0_start) & (times < w.t0_end)

    return {
        "ecs_order_info": int(in_t0(o.add[drops.ecs]).sum()),
        "uni_tracking_info": 0,
        "uni_tracking_spath": int(in_t0(o.ev_time[o.starts[drops.uts]]).sum()),
    }
