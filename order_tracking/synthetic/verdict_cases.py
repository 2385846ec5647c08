"""Source edits that give the seeded Test 1 / Test 2 findings every source verdict (the demo).

The seed's findings are all ``in_source``: the warehouse lost what the source still has. After
seeding, :func:`inject` edits the SOURCE of a few of them (the warehouse is left as seeded, so the
checks flag the same orders):

- ORDER_MISSING_SPATH, the 2nd finding: its ``uni_tracking_spath`` rows deleted ->
  ``missing_in_source`` (an upstream gap);
- UTI_UTS_TIME_MISMATCH, the 2nd finding: its ``update_time`` set a day before its last
  ``pathTime`` -> ``mismatch_in_source`` (backdated upstream; a day back keeps it out of Test 0's
  two-hour window, where an extra source row would fire the extraction alarm);
- UTI_UTS_TIME_MISMATCH, the 3rd finding: its ``uni_tracking_info`` row deleted ->
  ``missing_in_source``.

``unknown`` needs no edit: a run whose ``ORDER_TRACKING_SOURCE_CHECK_LIMIT`` is below the number
of findings leaves the rest unknown ("over the limit"); the demo sets it to ``DEMO_LIMIT``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from order_tracking.schema import Tables
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH

DEMO_LIMIT = 4  # source look-ups per type in the demo: the 5th mismatch (by order id) is unknown


def inject(source: Engine, tables: Tables, manifest: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """Edit the source; return ``{verdict: {exception type: [order ids]}}`` for every finding
    (before the limit: the ``DEMO_LIMIT`` + 1st mismatch by id is listed as ``unknown``)."""
    spath = sorted(manifest["expected"][ORDER_MISSING_SPATH])
    mismatch = sorted(manifest["expected"][UTI_UTS_TIME_MISMATCH])
    if len(spath) < 2 or len(mismatch) < 3:
        raise ValueError(
            "verdict cases need at least 2 ORDER_MISSING_SPATH and 3 UTI_UTS_TIME_MISMATCH findings"
        )
    uti, uts = tables.src_uti, tables.src_uts
    with source.begin() as conn:
        conn.execute(uts.delete().where(uts.c.order_id == spath[1]))
        last = conn.execute(
            sa.select(sa.func.max(uts.c.pathTime)).where(uts.c.order_id == mismatch[1])
        ).scalar_one()
        conn.execute(
            uti.update().where(uti.c.order_id == mismatch[1]).values(update_time=last - timedelta(days=1))
        )
        conn.execute(uti.delete().where(uti.c.order_id == mismatch[2]))
    special = {spath[1], mismatch[1], mismatch[2]}
    unknown = mismatch[DEMO_LIMIT:]
    return {
        "in_source": {
            ORDER_MISSING_SPATH: [i for i in spath[:DEMO_LIMIT] if i not in special],
            UTI_UTS_TIME_MISMATCH: [i for i in mismatch[:DEMO_LIMIT] if i not in special],
        },
        "missing_in_source": {ORDER_MISSING_SPATH: [spath[1]], UTI_UTS_TIME_MISMATCH: [mismatch[2]]},
        "mismatch_in_source": {UTI_UTS_TIME_MISMATCH: [mismatch[1]]},
        "unknown": {ORDER_MISSING_SPATH: spath[DEMO_LIMIT:], UTI_UTS_TIME_MISMATCH: unknown},
    }
