"""The base data: orders collected group by group, expanded once into orders and spath events, and
the tables that are plain projections of them (mart, history, source).

Every table is derived from the same arrays, so they agree except where an anomaly is injected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from order_tracking import schema
from order_tracking.errors import UserError
from order_tracking.synthetic.config import (
    DAY,
    FIRST_ORDER_ID,
    HEALTHY,
    HOUR,
    MART_ECS_DAYS,
    MART_UTS_DAYS,
    MAX_EVENT_SPAN,
    ORDER_SPAN_DAYS,
    Columns,
)

# What the manifest names an order by: a trap's name, or (label, type code) for an anomaly.
Tag = str | tuple[str, str]


def event_span(rng: np.random.Generator, n: int, low: int = HOUR, high: int = MAX_EVENT_SPAN) -> np.ndarray:
    """``n`` random spans (seconds) from an order's creation to its last event."""
    return rng.integers(low, high, n)


class OrderBook:
    """Accumulates groups of orders (kind, add_time, last event, update times) before expansion."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.tags: list[tuple[Tag, int]] = []  # (tag, index) for orders the manifest names
        self.size = 0

    def add(
        self,
        kind: int,
        add: ArrayLike,
        last: ArrayLike,
        mart_upd: ArrayLike | None = None,
        src_upd: ArrayLike | None = None,
        tag: Tag | None = None,
    ) -> None:
        """Orders of ``kind``; update times default to the last event (a consistent order)."""
        add = np.atleast_1d(np.asarray(add, dtype=np.int64))
        last = np.broadcast_to(np.asarray(last, dtype=np.int64), add.shape)
        mart = last if mart_upd is None else np.broadcast_to(np.asarray(mart_upd, np.int64), add.shape)
        src = last if src_upd is None else np.broadcast_to(np.asarray(src_upd, np.int64), add.shape)
        self.parts.append((np.full(add.shape, kind, np.int8), add, last, mart, src))
        if tag is not None:
            self.tags.extend((tag, self.size + i) for i in range(len(add)))
        self.size += len(add)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(col) for col in zip(*self.parts, strict=True))


def add_healthy_orders(book: OrderBook, rng: np.random.Generator, as_of: int, orders: int) -> None:
    """Fill up to ``orders`` with consistent orders created over the last ``ORDER_SPAN_DAYS``.

    Added last, so the anomalies and traps come first whatever the size.
    """
    n_healthy = orders - book.size
    if n_healthy < 0:
        raise UserError(f"--orders {orders} is too small: the anomalies and traps need {book.size}")
    add = as_of - rng.integers(0, ORDER_SPAN_DAYS * DAY, n_healthy)
    book.add(HEALTHY, add, np.minimum(add + event_span(rng, n_healthy), as_of))


@dataclass(frozen=True)
class Orders:
    """Every order (``kind`` .. ``partner_id``) and spath event (``ev_*``, ``pos``, ``is_last``)."""

    kind: np.ndarray  # kind .. src_upd: OrderBook.arrays() order (``expand`` passes them so)
    add: np.ndarray
    last: np.ndarray
    mart_upd: np.ndarray
    src_upd: np.ndarray
    order_id: np.ndarray
    partner_id: np.ndarray
    tags: list[tuple[Tag, int]]
    n_ev: np.ndarray  # events per order
    starts: np.ndarray  # index of each order's first event (at add_time)
    ev_order: np.ndarray  # the order (index) of each event
    pos: np.ndarray  # the event's position within its order
    ev_time: np.ndarray
    is_last: np.ndarray
    ev_id: np.ndarray  # the source spath id
    ev_kind: np.ndarray


def expand(book: OrderBook, rng: np.random.Generator) -> Orders:
    """Order ids, partners and the spath events of every order in ``book``."""
    columns = book.arrays()
    kind, add, last, _, _ = columns
    n_orders = len(kind)
    # Order ids grow with add_time, as a sequence would hand them out.
    order_id = np.empty(n_orders, np.int64)
    order_id[np.argsort(add, kind="stable")] = FIRST_ORDER_ID + np.arange(n_orders)
    partner_id = rng.integers(1, 501, n_orders).astype(np.int32)

    # Events: the first at add_time, the last exactly at the order's last time, the rest strictly
    # between (floor(u * span) < span for u < 1), so MAX(pathtime) is exactly ``last``.
    n_ev = rng.integers(3, 13, n_orders)
    starts = np.concatenate([[0], np.cumsum(n_ev)[:-1]])
    ev_order = np.repeat(np.arange(n_orders), n_ev)
    pos = np.arange(len(ev_order)) - np.repeat(starts, n_ev)
    u = rng.random(len(ev_order))
    u[pos == 0] = 0.0
    ev_span = (last - add)[ev_order]
    ev_time = add[ev_order] + np.floor(u * ev_span).astype(np.int64)
    is_last = pos == n_ev[ev_order] - 1
    ev_time[is_last] = last[ev_order[is_last]]
    # Source spath ids follow insertion order: by time, then order.
    ev_id = np.empty(len(ev_order), np.int64)
    ev_id[np.lexsort((order_id[ev_order], ev_time))] = np.arange(1, len(ev_order) + 1)
    return Orders(
        *columns,  # kind .. src_upd: the book's columns are the first fields, in the same order
        order_id=order_id,
        partner_id=partner_id,
        tags=book.tags,
        n_ev=n_ev,
        starts=starts,
        ev_order=ev_order,
        pos=pos,
        ev_time=ev_time,
        is_last=is_last,
        ev_id=ev_id,
        ev_kind=kind[ev_order],
    )


def _half_keys(times: np.ndarray) -> np.ndarray:
    """year*10 + half (1: Jan-Jun, 2: Jul-Dec) for Unix-second times."""
    d = times.astype("datetime64[s]")
    years = d.astype("datetime64[Y]").astype(np.int64) + 1970
    months = d.astype("datetime64[M]").astype(np.int64) % 12
    return years * 10 + np.where(months < 6, 1, 2)


def mart_and_history(
    o: Orders, keep: np.ndarray, as_of: int, tables: schema.Tables
) -> tuple[dict[str, Columns], list[str]]:
    """The mart tables and the half-yearly history tables, and the history tables' names.

    ``keep`` marks the events the warehouse holds: old ones go to ``hist_uni_tracking_spath_*``,
    the ecs rows of old orders to ``hist_ecs_order_info_*``, as the archiving jobs do.
    """
    uts_cut = as_of - MART_UTS_DAYS * DAY
    in_mart = keep & (o.ev_time >= uts_cut)
    in_hist = keep & (o.ev_time < uts_cut)
    ecs_mart = o.add >= as_of - MART_ECS_DAYS * DAY

    wh: dict[str, Columns] = {
        "mart_ecs": {
            "order_id": o.order_id[ecs_mart],
            "partner_id": o.partner_id[ecs_mart],
            "add_time": o.add[ecs_mart],
        },
        "mart_uti": {"order_id": o.order_id, "update_time": o.mart_upd},
        "mart_uts": {"order_id": o.order_id[o.ev_order[in_mart]], "pathtime": o.ev_time[in_mart]},
    }
    hist_names: list[str] = []
    hist_ev_keys = _half_keys(o.ev_time[in_hist])
    hist_ev_order, hist_ev_time = o.ev_order[in_hist], o.ev_time[in_hist]
    for key in np.unique(hist_ev_keys):
        sel = hist_ev_keys == key
        name = tables.hist_uts(int(key) // 10, int(key) % 10).name
        wh[name] = {"order_id": o.order_id[hist_ev_order[sel]], "pathtime": hist_ev_time[sel]}
        hist_names.append(name)
    old = ~ecs_mart
    ecs_keys = _half_keys(o.add[old])
    for key in np.unique(ecs_keys):
        sel = ecs_keys == key
        name = tables.hist_ecs(int(key) // 10, int(key) % 10).name
        wh[name] = {
            "order_id": o.order_id[old][sel],
            "partner_id": o.partner_id[old][sel],
            "add_time": o.add[old][sel],
        }
        hist_names.append(name)
    return wh, hist_names


def source_tables(o: Orders) -> dict[str, Columns]:
    """The source (kuaisong) tables: every order and event, correct."""
    return {
        "src_ecs": {"order_id": o.order_id, "partner_id": o.partner_id, "add_time": o.add},
        "src_uti": {"order_id": o.order_id, "update_time": o.src_upd},
        "src_uts": {"id": o.ev_id, "order_id": o.order_id[o.ev_order], "pathTime": o.ev_time},
    }
