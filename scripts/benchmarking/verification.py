"""Phase 8: what the source verification of issue 23 costs at its limit, against MariaDB.

Every run looks up at most ``ORDER_TRACKING_SOURCE_CHECK_LIMIT`` (2,000) open findings per type
(Tests 1 and 2) in the MySQL source and reads the warehouse's figures beside them. Here, 2,000
orders per type from the window (or as many as the data has) are verified exactly as a run does
(``source_verdict.look_up`` over a source engine made from the URL, then
``source_verdict.warehouse_figures``), timed in rounds like the rest, and reported in seconds and
as a share of the monitor run (phase 4).

The source is a MariaDB database of the benchmark's own (``<mart schema>_src``, replaced on every
run and dropped after) holding those orders' ``uni_tracking_info`` and ``uni_tracking_spath`` rows,
copied from the mart. The look-ups go by ``order_id`` (the primary key, and the index on
``uni_tracking_spath``), so the other orders a production source holds change little. A source
that cannot be reached makes the figure ``unknown``, with the reason, never a number.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

from benchmarking.config import AS_OF
from benchmarking.rounds import rounds

DEFAULT_SOURCE_URL = "mysql+pymysql://root@127.0.0.1:3306"
SOURCE_SCHEMA = "bench_src"
INSERT_BATCH = 5000


def _flagged_ids(bench: Any, per_type: int) -> tuple[list[int], list[int]]:
    """Two disjoint sets of up to ``per_type`` orders of the window, as Test 1's and Test 2's."""
    import sqlalchemy as sa

    uti = bench.tables.mart_uti
    start = AS_OF - timedelta(hours=bench.settings.dq_lookback_hours)
    query = (
        sa.select(uti.c.order_id)
        .where(uti.c.update_time > start, uti.c.update_time <= AS_OF)
        .order_by(uti.c.order_id)
        .limit(2 * per_type)
    )
    with bench.engine.connect() as conn:
        ids = [int(r[0]) for r in conn.execute(query)]
    half = (len(ids) + 1) // 2
    return ids[:half], ids[half:]


def _load_source(bench: Any, settings: Any, ids: list[int]) -> int:
    """The orders' uti and spath rows from the mart into the MariaDB source; returns spath rows."""
    import sqlalchemy as sa

    from order_tracking import db, schema

    _drop_source(settings)
    tables = schema.build_tables(settings)
    source = db.create_engine(settings.source_url, [settings.source_schema], role="source")
    try:
        schema.create_tables(source, [tables.src_uti, tables.src_uts])
        mart_uti, mart_uts = bench.tables.mart_uti, bench.tables.mart_uts
        with bench.engine.connect() as wh:
            uti_rows = [
                {"order_id": r[0], "update_time": r[1]}
                for r in wh.execute(
                    sa.select(mart_uti.c.order_id, mart_uti.c.update_time).where(mart_uti.c.order_id.in_(ids))
                )
            ]
            uts_rows = [
                {"id": n, "order_id": r[0], "pathTime": r[1]}
                for n, r in enumerate(
                    wh.execute(
                        sa.select(mart_uts.c.order_id, mart_uts.c.pathtime).where(
                            mart_uts.c.order_id.in_(ids)
                        )
                    ),
                    1,
                )
            ]
        with source.begin() as conn:
            for table, rows in ((tables.src_uti, uti_rows), (tables.src_uts, uts_rows)):
                for at in range(0, len(rows), INSERT_BATCH):
                    conn.execute(table.insert(), rows[at : at + INSERT_BATCH])
        return len(uts_rows)
    finally:
        source.dispose()


def _drop_source(settings: Any) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(settings.source_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{settings.source_schema}`")
    finally:
        admin.dispose()


def measure_verification(
    bench: Any, source_url: str, repeat: int, source_schema: str = SOURCE_SCHEMA
) -> dict:
    """``{"orders": [t1, t2], "source_spath_rows", "median_s", "per_type_s", "runs_s"}``, or
    ``{"error": reason}`` when the MariaDB source cannot be used."""
    from order_tracking import db
    from order_tracking.checks import source_verdict
    from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH

    settings = dataclasses.replace(bench.settings, source_url=source_url, source_schema=source_schema)
    limit = settings.source_check_limit
    test1, test2 = _flagged_ids(bench, limit)
    try:
        spath_rows = _load_source(bench, settings, test1 + test2)
    except Exception as exc:
        return {"error": f"MariaDB source {db.redact(source_url)} not usable: {db.short_reason(exc)}"}
    source = db.create_engine(
        settings.source_url, [settings.source_schema], role="source", timeouts=settings.timeouts
    )

    def verify() -> list[float]:
        out = []
        for etype, ids in ((UTI_UTS_TIME_MISMATCH, test1), (ORDER_MISSING_SPATH, test2)):
            start = time.perf_counter()
            verdicts = source_verdict.look_up(source, settings, etype, ids)
            with bench.engine.connect() as conn:
                source_verdict.warehouse_figures(conn, bench.tables, ids)
            out.append(time.perf_counter() - start)
            unknown = [v.reason for v in verdicts.values() if v.verdict == source_verdict.UNKNOWN]
            if unknown:  # a look-up that failed is not a cost: no figure rather than a wrong one
                raise RuntimeError(f"{len(unknown)} verdicts unknown: {unknown[0]}")
        return out

    try:
        timing = rounds(repeat, {"verify": verify})["verify"]
    except RuntimeError as exc:
        return {"error": str(exc)}
    finally:
        source.dispose()
        _drop_source(settings)
    return {
        "limit": limit,
        "orders": [len(test1), len(test2)],
        "source_spath_rows": spath_rows,
        "median_s": timing["median_s"],
        "per_type_s": timing["per_check_s"],
        "runs_s": timing["runs_s"],
    }


def verification_line(r: dict) -> str:
    """The report's line: seconds, and the share of the monitor run (phase 4)."""
    v = r.get("verify")
    if v is None:
        return "8 verification: not measured"
    if "error" in v:
        return f"8 verification: unknown ({v['error']})"
    t1, t2 = v["orders"]
    s1, s2 = v["per_type_s"]
    share = v["median_s"] / r["full_s"] if r["full_s"] else float("nan")
    return (
        f"8 verification at the limit ({v['limit']:,} per type): {t1:,} Test 1 + {t2:,} Test 2 orders "
        f"looked up in MariaDB ({v['source_spath_rows']:,} spath rows) and the warehouse: "
        f"{v['median_s']:.3f} s ({s1:.3f} + {s2:.3f}), {share:.0%} of the monitor run ({r['full_s']:.3f} s)"
    )
