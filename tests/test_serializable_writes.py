"""Serializable conflicts (issue 24 section 3): every writer locks first, in one order, and
retries Redshift error 1023, bounded; a conflict in every attempt is one line and exit 3.

The Redshift twin runs every transaction at SERIALIZABLE and turns PostgreSQL's 40001 into
Redshift's error 1023 text (tests/redshift_twin_isolation.py). Writers that lock first never
conflict with each other, so the tests that must see a retry plan a conflict on one statement
(``REDSHIFT_TWIN_CONFLICTS``): Redshift cancelling our side because another session conflicted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime

import pytest
import sqlalchemy as sa

from order_tracking import db, locked_write, schema, synthetic
from order_tracking.settings import EXCEPTION_TYPES, ORDER_MISSING_SPATH, Settings
from tests import redshift_twin
from tests.conftest import ROOT, exception_rows, run_cli, seed_dataset
from tests.redshift_twin_isolation import CONFLICTS_ENV

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
CHECKS = "uti_uts_alignment,missing_spath,reactivated_missing_ecs"
RETRY_LINE = re.compile(r"serializable isolation conflict \(Redshift error 1023\), attempt 1 of 3; retrying")
# The monitor's INSERT of new exception rows, after its UPDATE of the open ones: mid-transaction.
EXCEPTIONS_INSERT = r"^\s*INSERT INTO \S*order_tracking_exceptions "
RESOLVE_UPDATE = r"^\s*UPDATE \S*order_tracking_exceptions SET resolved_at"


def _seed(missing_spath: int = 5) -> tuple[Settings, dict]:
    return seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=7, missing_spath=missing_spath))


def _open_rows(settings: Settings) -> list[tuple[int, str]]:
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ex.c.order_id, ex.c.exception_type).where(ex.c.resolved_at.is_(None))
        ).all()
    engine.dispose()
    return sorted((int(o), t) for o, t in rows)


def _expected(manifest: dict) -> list[tuple[int, str]]:
    return sorted((int(o), t) for t in EXCEPTION_TYPES for o in manifest["expected"][t])


def _popen(*args: str, conflicts: dict[str, int]) -> subprocess.Popen:
    env = {**os.environ, CONFLICTS_ENV: json.dumps(conflicts)}
    return subprocess.Popen(
        [sys.executable, "-m", "order_tracking", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- the twin itself ----------------------------------------------------------------------------


def test_twin_runs_serializable_and_speaks_redshift_1023(redshift_warehouse, monkeypatch):
    monkeypatch.setenv(CONFLICTS_ENV, json.dumps({r"^SELECT 'twin-1023-probe'": 1}))
    engine = sa.create_engine(redshift_warehouse)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "serializable"
        with pytest.raises(sa.exc.DBAPIError) as err, engine.connect() as conn:
            conn.exec_driver_sql("SELECT 'twin-1023-probe'")
        # What Redshift says, and nothing PostgreSQL-specific for the product to match on.
        assert str(err.value.orig).startswith(
            "ERROR:  1023\nDETAIL:  Serializable isolation violation on table - "
        )
        assert err.value.orig.pgcode is None
        assert locked_write.is_serialization_error(err.value)
    finally:
        engine.dispose()


def test_lock_order_is_ours_then_mart_then_history():
    tables = schema.build_tables(Settings.from_env())
    given = [tables.hist_ecs(2025, 2), tables.mart_ecs, tables.maintenance_log, tables.exceptions,
             tables.hist_ecs(2024, 1), tables.mart_ecs]  # fmt: skip
    assert [f"{t.schema}.{t.name}" for t in locked_write.lock_order(given)] == [
        "settlement_ods.order_tracking_exceptions",
        "settlement_ods.order_tracking_maintenance_log",
        "settlement_public.mart_ecs_order_info",
        "settlement_public.hist_ecs_order_info_2024_h1",
        "settlement_public.hist_ecs_order_info_2025_h2",
    ]


# --- concurrency, in the twin -------------------------------------------------------------------


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_monitor_x_monitor_retries_1023_without_duplicate_or_loss(redshift_warehouse):
    settings, manifest = _seed()
    cmd = ("monitor", "--as-of", AS_OF.isoformat(), "--checks", CHECKS)
    procs = [_popen(*cmd, conflicts={EXCEPTIONS_INSERT: 1}) for _ in range(2)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]

    for out, err, code in results:
        assert code == 1, out + err  # findings remain open: exit 1, no error
        assert len(RETRY_LINE.findall(err)) == 1, err  # each process was cancelled once, and retried
    assert _open_rows(settings) == _expected(manifest)
    assert len(exception_rows(settings)) == len(_expected(manifest))


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_monitor_x_resolve_retries_1023_without_duplicate_or_loss(redshift_warehouse):
    settings, manifest = _seed()
    assert run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", CHECKS).returncode == 1
    resolved = sorted(manifest["expected"][ORDER_MISSING_SPATH])[:2]
    ids = [a for o in resolved for a in ("--order-id", str(o))]
    procs = [
        _popen("monitor", "--as-of", AS_OF.isoformat(), "--checks", CHECKS, conflicts={EXCEPTIONS_INSERT: 1}),
        _popen("resolve", *ids, "--type", ORDER_MISSING_SPATH, "--by", "alice", "--notes", "fixed",
               conflicts={RESOLVE_UPDATE: 1}),
    ]  # fmt: skip
    (m_out, m_err), (r_out, r_err) = (p.communicate(timeout=300) for p in procs)

    assert procs[0].returncode == 1, m_out + m_err
    assert procs[1].returncode == 0, r_out + r_err
    assert "closed 2 open ORDER_MISSING_SPATH exceptions" in r_out
    assert len(RETRY_LINE.findall(m_err)) == 1 and len(RETRY_LINE.findall(r_err)) == 1, m_err + r_err
    rows = exception_rows(settings)
    closed = [r for r in rows if r[6] is not None]  # resolved_at
    assert sorted(r[1] for r in closed) == resolved
    expected = _expected(manifest)
    # Either order is serializable: resolve first (the monitor reopens the two: new rows), or the
    # monitor first (its rows are then closed). Never a duplicate open row, never a lost finding.
    open_rows = _open_rows(settings)
    assert len(open_rows) == len(set(open_rows))
    if len(rows) == len(expected) + 2:
        assert open_rows == expected
    else:
        assert len(rows) == len(expected)
        assert open_rows == [r for r in expected if not (r[1] == ORDER_MISSING_SPATH and r[0] in resolved)]


# --- a conflict in every attempt: one line, exit 3, nothing changed -----------------------------


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_monitor_conflict_in_every_attempt_is_one_line_and_exit_3(redshift_warehouse):
    settings, _ = _seed()
    proc = run_cli(
        "monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath",
        env={CONFLICTS_ENV: json.dumps({EXCEPTIONS_INSERT: 3})},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error in missing_spath:")]
    assert len(errors) == 1, proc.stderr
    assert (
        "ORDER_MISSING_SPATH exceptions write: serializable isolation conflict with a concurrent "
        "transaction (Redshift error 1023) in each of 3 attempts; rolled back, nothing changed"
    ) in errors[0]
    assert "Traceback" not in proc.stderr
    assert exception_rows(settings) == []


@pytest.mark.usefixtures("gx_copy", "maria_source")
def test_resolve_conflict_in_every_attempt_is_one_line_and_exit_3(redshift_warehouse):
    settings, manifest = _seed()
    assert run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath").returncode == 1
    order = sorted(manifest["expected"][ORDER_MISSING_SPATH])[0]
    proc = run_cli(
        "resolve", "--order-id", str(order), "--type", ORDER_MISSING_SPATH, "--by", "alice", "--notes", "x",
        env={CONFLICTS_ENV: json.dumps({RESOLVE_UPDATE: 3})},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Redshift error 1023) in each of 3 attempts" in lines[0], proc.stderr
    assert all(r[6] is None for r in exception_rows(settings))  # nothing resolved


def test_maintenance_log_write_retries_1023(redshift_warehouse):
    assert run_cli("init-db", "--with-pipeline-tables").returncode == 0
    proc = run_cli(
        "vacuum", "--tables", "uti", "--retry-attempts", "1", "--retry-delay", "0",
        env={CONFLICTS_ENV: json.dumps({r"^\s*INSERT INTO \S*order_tracking_maintenance_log ": 1})},
    )  # fmt: skip
    assert len(RETRY_LINE.findall(proc.stderr)) == 1, proc.stdout + proc.stderr
    assert "not written to the maintenance log" not in proc.stderr
    log = schema.build_tables(Settings.from_env()).maintenance_log
    engine = sa.create_engine(redshift_twin.postgres_url(redshift_warehouse))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(log)).scalar_one() == 2
    engine.dispose()


def test_repair_apply_retries_1023_and_moves_the_row_once(redshift_warehouse):
    from tests.test_repair import EXCEPTION_ROWS, H1_2026_ROWS, H2_2025_ROWS, MART_ROWS, admin

    tables = schema.build_tables(Settings.from_env())
    h2, h1 = tables.hist_ecs(2025, 2), tables.hist_ecs(2026, 1)
    engine = db.create_engine(redshift_warehouse, tables.settings.warehouse_schemas)
    schema.create_tables(engine, [*tables.pipeline_tables, *tables.ods_tables, h2, h1])
    engine.dispose()
    with admin() as conn:
        conn.execute(tables.mart_ecs.insert(), MART_ROWS)
        conn.execute(h2.insert(), H2_2025_ROWS)
        conn.execute(h1.insert(), H1_2026_ROWS)
        conn.execute(tables.exceptions.insert(), EXCEPTION_ROWS)

    # Cancelled after its INSERT into the mart: the rerun must not copy the row twice.
    proc = run_cli(
        "repair-reactivated", "--order-id", "10", "--by", "bob", "--apply",
        env={CONFLICTS_ENV: json.dumps({r"^\s*DELETE FROM \S*hist_ecs_order_info_2025_h2 ": 1})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(RETRY_LINE.findall(proc.stderr)) == 1, proc.stderr
    with admin() as conn:
        assert conn.execute(sa.select(tables.mart_ecs.c.order_id).order_by("order_id")).scalars().all() == [
            1,
            10,
        ]
        assert 10 not in conn.execute(sa.select(h2.c.order_id)).scalars().all()
