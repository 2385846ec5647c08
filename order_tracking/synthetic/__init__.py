"""Synthetic order-tracking data with known anomalies, for demos, tests and benchmarks.

``generate`` (``dataset``) is pure numpy (vectorised, deterministic for a seed): it builds every
order and spath event once (``orders``), then derives each table from the same arrays, so the
source, the raw copies, the mart and the history tables agree except where an anomaly is injected
on purpose (``anomalies``: Tests 1-3; ``extraction``: Test 0). ``seed`` (``load``) loads the
result (PostgreSQL: binary COPY; other backends: batched Core inserts) and returns the manifest
(``manifest``).

Times are whole seconds, held as int64 Unix seconds until they are written (naive UTC).

What is injected (all anomalies with ``update_time`` in the Tests 1-3 window ``(as_of-24h, as_of]``):

- UTI_UTS_TIME_MISMATCH: mart ``update_time`` moved later than the last event, or the last
  mart spath row lost (alternating); the order keeps other mart spath rows and its mart_ecs row.
- ORDER_MISSING_SPATH: no spath row in the mart nor in any history table (the source has them).
- REACTIVATED_ORDER_MISSING_ECS: created 190-199 days ago, ecs row only in ``hist_ecs_order_info_*``,
  old events in ``hist_uni_tracking_spath_*``, new ones in the window (consistent for Test 1).
- extraction drops: raw ecs/spath rows removed inside the Test 0 window ``[as_of-2h5m, as_of-5m)``.

Traps (never to be flagged) are listed in the manifest under ``traps``.

May import the ground floor (settings, errors, db, schema); never ``commands``.
"""

from order_tracking.synthetic.config import Dataset, Progress, SeedConfig
from order_tracking.synthetic.dataset import generate
from order_tracking.synthetic.load import refuse_production, seed, stderr_progress
from order_tracking.synthetic.manifest import write_manifest

__all__ = [
    "Dataset",
    "Progress",
    "SeedConfig",
    "generate",
    "refuse_production",
    "seed",
    "stderr_progress",
    "write_manifest",
]
