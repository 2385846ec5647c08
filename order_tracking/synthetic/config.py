"""What to generate (``SeedConfig``), what comes out (``Dataset``), and the windows it is timed by."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from order_tracking.settings import Settings

DAY = 86_400
HOUR = 3_600
FIRST_ORDER_ID = 10_000_001
ORDER_SPAN_DAYS = 200  # orders are created over this many days before as_of
MART_UTS_DAYS = 120  # spath rows older than this live in hist_uni_tracking_spath_*
MART_ECS_DAYS = 183  # orders created earlier live in hist_ecs_order_info_*
RAW_HOURS = 6  # raw tables keep this much history
MAX_EVENT_SPAN = 10 * DAY  # an order's events span at most this long (healthy orders)

# order kinds (int8 codes in the arrays)
HEALTHY, MISMATCH_LATE, MISMATCH_LOST_LAST, MISSING, REACTIVATED, HIST_ONLY, RECENT, EDGE = range(8)

Progress = Callable[[str, int, int], None]  # (table, rows done, rows total)
Columns = dict[str, np.ndarray]  # one table's rows, column by column


@dataclass(frozen=True)
class SeedConfig:
    """What to generate. ``clean()`` gives the same data shape with no anomaly to find."""

    as_of: datetime
    orders: int = 20_000
    seed: int = 42
    mismatch: int = 5
    missing_spath: int = 4
    reactivated: int = 3
    dropped_raw: int = 2
    skip_source: bool = False
    replace: bool = False

    def clean(self) -> SeedConfig:
        return SeedConfig(
            as_of=self.as_of,
            orders=self.orders,
            seed=self.seed,
            mismatch=0,
            missing_spath=0,
            reactivated=0,
            dropped_raw=0,
            skip_source=self.skip_source,
            replace=self.replace,
        )


@dataclass
class Dataset:
    """Rows per table as column arrays (times in Unix seconds), plus the manifest."""

    manifest: dict[str, Any]
    source: dict[str, Columns] = field(default_factory=dict)  # keyed by Tables attr
    warehouse: dict[str, Columns] = field(default_factory=dict)  # attr or hist name


def epoch(ts: datetime) -> int:
    """Naive UTC ``ts`` as whole Unix seconds."""
    return int((ts - datetime(1970, 1, 1)).total_seconds())


@dataclass(frozen=True)
class Windows:
    """The check windows the anomalies and traps are placed against, in Unix seconds."""

    as_of_dt: datetime  # as_of without microseconds: times are whole seconds
    as_of: int
    lookback: int  # Tests 1-3 look back this many seconds
    after: int  # Tests 1-3: update_time > after AND update_time <= as_of
    t0_start: int  # Test 0: [t0_start, t0_end)
    t0_end: int

    @classmethod
    def of(cls, config: SeedConfig, settings: Settings) -> Windows:
        as_of_dt = config.as_of.replace(microsecond=0)
        as_of = epoch(as_of_dt)
        lookback = settings.dq_lookback_hours * HOUR
        return cls(
            as_of_dt=as_of_dt,
            as_of=as_of,
            lookback=lookback,
            after=as_of - lookback,
            t0_start=as_of - settings.extraction_window_secs - settings.extraction_buffer_secs,
            t0_end=as_of - settings.extraction_buffer_secs,
        )
