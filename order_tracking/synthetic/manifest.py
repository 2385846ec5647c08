"""The manifest: what was injected (the orders each check must flag, the traps it must not), the
row counts, and its JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from order_tracking import schema
from order_tracking.errors import UserError
from order_tracking.synthetic.anomalies import TYPE_CODES
from order_tracking.synthetic.config import Columns, SeedConfig, Windows
from order_tracking.synthetic.extraction import ExtractionDrops, expected_dropped
from order_tracking.synthetic.orders import Orders


def _iso(secs: int) -> str:
    return str(np.datetime64(int(secs), "s"))


def _names(tables: schema.Tables) -> dict[str, str]:
    keys = (
        "src_ecs",
        "src_uti",
        "src_uts",
        "mart_ecs",
        "mart_uti",
        "mart_uts",
        "raw_ecs",
        "raw_uti",
        "raw_uts",
    )
    return {k: getattr(tables, k).name for k in keys}


def _by_type(o: Orders, label: str, mart_upd: int) -> dict[str, list[int]]:
    """Per anomaly type, the ``label`` orders whose mart update_time is ``mart_upd`` (tag order)."""
    return {
        typ: [int(o.order_id[i]) for t, i in o.tags if t == (label, code) and o.mart_upd[i] == mart_upd]
        for typ, code in TYPE_CODES
    }


def build_manifest(
    config: SeedConfig,
    w: Windows,
    o: Orders,
    drops: ExtractionDrops,
    tables: schema.Tables,
    wh: dict[str, Columns],
    source: dict[str, Columns],
    hist_names: list[str],
) -> dict[str, Any]:
    """The manifest of a generated dataset (``wh``, ``source``: its tables' rows)."""

    def ids(label: str, code: str) -> list[int]:
        return sorted(int(o.order_id[i]) for t, i in o.tags if t == (label, code))

    names = _names(tables)
    return {
        "as_of": w.as_of_dt.isoformat(),
        "seed": config.seed,
        "orders": len(o.kind),
        "window": {"after": _iso(w.after), "until": _iso(w.as_of)},
        "test0_window": {"from": _iso(w.t0_start), "before": _iso(w.t0_end)},
        "counts": {
            "warehouse": {names.get(k, k): len(next(iter(v.values()))) for k, v in wh.items()},
            "source": {names[k]: len(next(iter(v.values()))) for k, v in source.items()},
        },
        "expected": {typ: ids("expected", code) for typ, code in TYPE_CODES},
        "extraction_dropped": expected_dropped(o, drops, w),
        "traps": {
            "spath_only_in_history": sorted(int(o.order_id[i]) for t, i in o.tags if t == "hist_only"),
            "just_outside_window": _by_type(o, "edge", w.after - 1),
            "at_window_start": _by_type(o, "edge", w.after),
            "at_as_of_inside": _by_type(o, "expected", w.as_of),
            "raw_dropped_at_buffer_edge": {
                "order_id": int(o.order_id[drops.edge]),
                "time": _iso(w.t0_end),
                "tables": ["ecs_order_info_raw", "uni_tracking_spath_raw"],
            },
        },
        "hist_tables": sorted(hist_names),
        "source_loaded": not config.skip_source,
    }


def write_manifest(manifest: dict[str, Any], path: str | Path) -> Path:
    """Write the manifest as indented JSON (parent directories created)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the manifest {target}: {exc.strerror}") from None
    return target
