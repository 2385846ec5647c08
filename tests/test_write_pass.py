"""What validation hands the write pass, end to end through the GX checkpoints (issues 10 and 11).

- The rule runs once per check, whatever the number of findings: ``monitor`` stages them once and
  the staged rows feed validation and the write pass (issue 24 section 5; above
  ``rules.SAMPLE_SIZE`` it used to run twice: validation, then one staging).
- More than 200 findings while some are already open: every one is recorded.
- Rows of ``mart_uni_tracking_info`` whose ``order_id`` is NULL are skipped, counted, reported;
  the rest are written. An order listed twice counts once.

Warehouse on PostgreSQL and SQLite; no source is needed for Tests 1-3.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from order_tracking import db, schema, synthetic
from order_tracking.checks import exceptions_store
from order_tracking.checks.run import run_checks
from order_tracking.commands.monitor import print_report
from order_tracking.settings import ORDER_MISSING_SPATH, REACTIVATED_ORDER_MISSING_ECS, Settings
from tests.conftest import PG_URL, ROOT, TWIN_URL, seed_dataset

sys.path.insert(0, str(ROOT / "scripts"))
from benchmarking.measures import RuleScans  # the benchmark counts rule scans the same way

sys.path.pop(0)

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
RULE_CHECKS = ["uti_uts_alignment", "missing_spath", "reactivated_missing_ecs"]
MANY = 230  # > rules.SAMPLE_SIZE missing-spath findings: validation cannot fetch them all


WAREHOUSE_FIXTURES = {"postgresql": "pg_warehouse", "redshift": "redshift_warehouse", "sqlite": "sqlite_urls"}


@pytest.fixture(params=list(WAREHOUSE_FIXTURES))
def backend(request: pytest.FixtureRequest, schemas, gx_copy) -> str:
    request.getfixturevalue(WAREHOUSE_FIXTURES[request.param])
    return request.param


def setup_url(settings: Settings) -> str:
    """Test data goes in through PostgreSQL itself when the product talks to the Redshift twin
    (the seeder refuses Redshift URLs; the twin's guard would refuse PostgreSQL-only DDL)."""
    return PG_URL if settings.warehouse_url == TWIN_URL else settings.warehouse_url


def seed(monkeypatch: pytest.MonkeyPatch, **kw) -> tuple[Settings, dict]:
    product_url = os.environ["ORDER_TRACKING_WAREHOUSE_URL"]
    with monkeypatch.context() as m:
        m.setenv("ORDER_TRACKING_WAREHOUSE_URL", setup_url(Settings.from_env()))
        _, manifest = seed_dataset(
            synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=7, skip_source=True, **kw)
        )
    assert os.environ["ORDER_TRACKING_WAREHOUSE_URL"] == product_url
    return Settings.from_env(), manifest


def open_ids(settings: Settings, exception_type: str) -> list[int]:
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    with engine.connect() as conn:
        ids = conn.scalars(
            sa.select(ex.c.order_id)
            .where(ex.c.exception_type == exception_type, ex.c.resolved_at.is_(None))
            .order_by(ex.c.order_id)
        ).all()
    engine.dispose()
    return [int(i) for i in ids]


def test_fetched_findings_cost_one_rule_scan_per_check(backend, monkeypatch) -> None:
    settings, manifest = seed(monkeypatch)
    for _ in range(2):  # first run inserts, the rerun refreshes: the same single scan
        with RuleScans() as scans:
            report = run_checks(settings, AS_OF, RULE_CHECKS)
        assert [o.status for o in report.outcomes] == ["fail"] * 3, [o.message for o in report.outcomes]
        assert scans.per_check == [1, 1, 1]
    for outcome in report.outcomes:
        expected = manifest["expected"][outcome.exception_type]
        assert (outcome.failing, outcome.new, outcome.already_open) == (len(expected), 0, len(expected))
        assert open_ids(settings, outcome.exception_type) == sorted(expected)


def test_over_200_findings_with_some_open_are_all_recorded_with_one_scan(backend, monkeypatch) -> None:
    settings, manifest = seed(monkeypatch, missing_spath=MANY)
    expected = sorted(manifest["expected"][ORDER_MISSING_SPATH])
    assert len(expected) == MANY
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    tables = schema.build_tables(settings)
    before = AS_OF - timedelta(days=1)
    already = expected[::5]  # 46 open rows before the run
    recurring = expected[1]  # resolved before the run: must open a new row
    exceptions_store.record_rows(
        engine, tables, ORDER_MISSING_SPATH, [(o, "old") for o in [*already, recurring]], before
    )
    exceptions_store.resolve(engine, tables, order_ids=[recurring], exception_type=ORDER_MISSING_SPATH,
                             all_of_type=False, by="tester", notes="fixed")  # fmt: skip
    engine.dispose()

    with RuleScans() as scans:
        report = run_checks(settings, AS_OF, ["missing_spath"])
    (outcome,) = report.outcomes
    assert outcome.status == "fail", outcome.message
    assert scans.per_check == [1]  # the staging feeds validation and the write; the lock reads neither
    assert (outcome.failing, outcome.new, outcome.already_open) == (MANY, MANY - len(already), len(already))
    assert open_ids(settings, ORDER_MISSING_SPATH) == expected


def _allow_null_order_id(engine: sa.Engine, table: sa.Table) -> None:
    """Production's mart_uni_tracking_info may allow NULL order_id; ours is NOT NULL."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(f'ALTER TABLE "{table.schema}".{table.name} ALTER COLUMN order_id DROP NOT NULL')
            )
            return
        # SQLite cannot drop a NOT NULL: rebuild the table without it.
        nullable = sa.Table(table.name, sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.columns),
                            schema=table.schema)  # fmt: skip
        conn.execute(sa.text(f"ALTER TABLE {table.schema}.{table.name} RENAME TO old_uti"))
        nullable.create(conn)
        conn.execute(sa.text(f"INSERT INTO {table.schema}.{table.name} SELECT * FROM {table.schema}.old_uti"))
        conn.execute(sa.text(f"DROP TABLE {table.schema}.old_uti"))


@pytest.mark.parametrize("missing_spath", [4, MANY], ids=["fetched", "staged"])
def test_null_order_ids_are_skipped_counted_reported_and_the_rest_written(
    backend, missing_spath, capsys, monkeypatch
) -> None:
    settings, manifest = seed(monkeypatch, missing_spath=missing_spath)
    engine = db.create_engine(setup_url(settings), settings.warehouse_schemas)
    uti = schema.build_tables(settings).mart_uti
    _allow_null_order_id(engine, uti)
    dup = manifest["expected"][ORDER_MISSING_SPATH][0]
    with engine.begin() as conn:
        rows = [{"order_id": None, "update_time": AS_OF - timedelta(hours=h)} for h in (1, 2, 3)]
        rows.append({"order_id": dup, "update_time": AS_OF - timedelta(hours=5)})  # listed twice
        conn.execute(uti.insert(), rows)
    engine.dispose()

    report = run_checks(settings, AS_OF, ["missing_spath", "reactivated_missing_ecs"])
    print_report(report)
    out = capsys.readouterr().out

    for outcome in report.outcomes:
        assert outcome.status == "fail", outcome.message
        expected = sorted(manifest["expected"][outcome.exception_type])
        assert outcome.skipped_null_order_ids == 3
        assert (outcome.failing, outcome.new) == (len(expected), len(expected))  # distinct orders
        assert open_ids(settings, outcome.exception_type) == expected
        assert all(r["order_id"] is not None for r in outcome.sample)
        assert f"{outcome.check}: 3 rows with NULL order_id skipped" in out
    assert {o.exception_type for o in report.outcomes} == {ORDER_MISSING_SPATH, REACTIVATED_ORDER_MISSING_ECS}
