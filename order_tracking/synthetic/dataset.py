"""``generate``: every table's rows and the manifest for a ``SeedConfig``, deterministic for its seed.

The order of the steps below is the order of the random draws: changing it changes the data of
every seed (tests and recorded outputs depend on it).
"""

from __future__ import annotations

import numpy as np

from order_tracking import schema
from order_tracking.errors import UserError
from order_tracking.settings import Settings
from order_tracking.synthetic import anomalies, extraction
from order_tracking.synthetic.config import Dataset, SeedConfig, Windows
from order_tracking.synthetic.manifest import build_manifest
from order_tracking.synthetic.orders import (
    OrderBook,
    add_healthy_orders,
    expand,
    mart_and_history,
    source_tables,
)


def _check_counts(config: SeedConfig) -> None:
    """Refuse negative anomaly counts and a non-positive order count, in CLI flag terms."""
    for name in ("mismatch", "missing_spath", "reactivated", "dropped_raw"):
        if getattr(config, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(config, name)}")
    if config.orders <= 0:
        raise UserError(f"--orders must be a positive whole number, not {config.orders}")


def _add_window_anomalies(book: OrderBook, rng: np.random.Generator, config: SeedConfig, w: Windows) -> None:
    """Tests 1-3: each anomaly in the window, then the same kind at the window-edge traps."""
    edges = anomalies.window_edge_traps(w)
    anomalies.add_uti_uts_time_mismatch(
        book, rng, anomalies.anomaly_times(rng, config.mismatch, w), "expected"
    )
    anomalies.add_uti_uts_time_mismatch(book, rng, edges, "edge")
    anomalies.add_order_missing_spath(
        book, rng, anomalies.anomaly_times(rng, config.missing_spath, w), "expected"
    )
    anomalies.add_order_missing_spath(book, rng, edges, "edge")
    times = anomalies.anomaly_times(rng, config.reactivated, w)
    anomalies.add_reactivated_order_missing_ecs(book, rng, times, "expected", w.as_of)
    anomalies.add_reactivated_order_missing_ecs(book, rng, edges, "edge", w.as_of)


def generate(config: SeedConfig, settings: Settings) -> Dataset:
    """All rows of every table for ``config``; deterministic for ``config.seed``."""
    _check_counts(config)
    w = Windows.of(config, settings)
    rng = np.random.default_rng(config.seed)
    book = OrderBook()
    _add_window_anomalies(book, rng, config, w)
    anomalies.add_spath_only_in_history_trap(book, rng, w)
    extraction.add_recent_orders(book, rng, w, config.dropped_raw)
    extraction.add_raw_dropped_at_buffer_edge_trap(book, w)
    add_healthy_orders(book, rng, w.as_of, config.orders)
    o = expand(book, rng)

    tables = schema.build_tables(settings)
    wh, hist_names = mart_and_history(o, ~anomalies.lost_from_warehouse(o), w.as_of, tables)
    drops = extraction.pick_extraction_drops(o, rng, config.dropped_raw)
    wh.update(extraction.raw_tables(o, drops, w.as_of))
    source = {} if config.skip_source else source_tables(o)
    manifest = build_manifest(config, w, o, drops, tables, wh, source, hist_names)
    return Dataset(manifest=manifest, source=source, warehouse=wh)
