"""The benchmark's verification phase (issue 23) on a small data set: seconds and share, or unknown."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from order_tracking import db, schema, synthetic
from tests.conftest import MARIA_URL, ROOT, seed_dataset

sys.path.insert(0, str(ROOT / "scripts"))
from benchmarking.config import AS_OF
from benchmarking.verification import measure_verification, verification_line


def _bench():
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=4000, seed=5, skip_source=True))
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    return SimpleNamespace(settings=settings, engine=engine, tables=schema.build_tables(settings))


def test_verification_at_the_limit_is_timed_against_mariadb_and_cleaned_up(pg_warehouse, schemas):
    bench = _bench()
    name = f"bench_src_{uuid.uuid4().hex[:8]}"
    try:
        v = measure_verification(bench, MARIA_URL, 3, source_schema=name)
        uti = bench.tables.mart_uti
        start = AS_OF - timedelta(hours=bench.settings.dq_lookback_hours)
        with bench.engine.connect() as conn:
            in_window = conn.scalar(
                sa.select(sa.func.count()).where(uti.c.update_time > start, uti.c.update_time <= AS_OF)
            )
    finally:
        bench.engine.dispose()

    assert "error" not in v, v
    assert v["limit"] == 2000
    assert sum(v["orders"]) == min(in_window, 4000) and abs(v["orders"][0] - v["orders"][1]) <= 1
    assert v["source_spath_rows"] > sum(v["orders"])  # several spath rows per order
    assert v["median_s"] > 0 and len(v["per_type_s"]) == 2 and len(v["runs_s"]) == 3
    line = verification_line({"verify": v, "full_s": 2 * v["median_s"]})
    assert line.startswith("8 verification at the limit (2,000 per type): ")
    assert line.endswith(f"50% of the monitor run ({2 * v['median_s']:.3f} s)")
    maria = sa.create_engine(MARIA_URL)
    try:
        with maria.connect() as conn:
            assert conn.exec_driver_sql(f"SHOW DATABASES LIKE '{name}'").all() == []  # dropped after
    finally:
        maria.dispose()


def test_an_unreachable_source_gives_unknown_not_a_number(pg_warehouse, schemas):
    bench = _bench()
    try:
        v = measure_verification(bench, "mysql+pymysql://root@127.0.0.1:1", 3, source_schema="nowhere")
    finally:
        bench.engine.dispose()

    assert v["error"].startswith("MariaDB source mysql+pymysql://root@127.0.0.1:1 not usable: ")
    assert verification_line({"verify": v, "full_s": 1.0}).startswith(
        "8 verification: unknown (MariaDB source"
    )
