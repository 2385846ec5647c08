"""One configuration from the entry point to every write (issue 27, defect 1).

Every command runs with ``--warehouse-url`` / ``--source-url`` while the environment points at
other databases (SQLite files): every row must land where the flags say, and the databases the
environment names must never be opened (their files never appear).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.settings import EXCEPTION_TYPES, Settings
from tests.conftest import MARIA_URL, PG_URL, exception_rows, run_cli

AS_OF = datetime(2026, 11, 25, 3, 0, 0)


@pytest.fixture
def elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_warehouse, maria_source, gx_copy
) -> dict[str, Path]:
    """The environment's warehouse and source: SQLite files that must stay untouched (the
    PostgreSQL/MariaDB schemas of ``pg_warehouse``/``maria_source`` are named by the flags)."""
    paths = {"warehouse": tmp_path / "env" / "warehouse.db", "source": tmp_path / "env" / "source.db"}
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", f"sqlite:///{paths['warehouse']}")
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_URL", f"sqlite:///{paths['source']}")
    return paths


def _flags() -> list[str]:
    return ["--warehouse-url", PG_URL, "--source-url", MARIA_URL]


def _ok(proc, *codes: int) -> str:
    assert proc.returncode in (codes or (0,)), proc.stdout + proc.stderr
    return proc.stdout


def test_every_command_writes_and_reads_where_its_flags_say(elsewhere, tmp_path) -> None:
    manifest_path = tmp_path / "manifest.json"
    _ok(run_cli(*_flags(), "init-db", "--with-pipeline-tables"))
    _ok(
        run_cli(
            *_flags(),
            "seed",
            "--orders",
            "3000",
            "--as-of",
            AS_OF.isoformat(),
            "--manifest",
            str(manifest_path),
            "--quiet",
        )
    )
    manifest = json.loads(manifest_path.read_text())

    # monitor: Test 0 included (its lost-row report reads the flagged source), then Tests 1-3
    # write to the flagged warehouse and the unresolved count is read there too.
    monitor = run_cli(*_flags(), "monitor", "--as-of", AS_OF.isoformat())
    assert monitor.returncode in (1, 2), monitor.stdout + monitor.stderr
    assert "Traceback" not in monitor.stderr and "error" not in monitor.stderr.lower(), monitor.stderr
    settings = Settings.from_env(warehouse_url=PG_URL, source_url=MARIA_URL)
    written = exception_rows(settings)
    expected = sum(len(manifest["expected"][t]) for t in EXCEPTION_TYPES)
    assert len(written) == expected and expected > 0
    assert f"unresolved exceptions: {expected}" in monitor.stdout, monitor.stdout

    listing = _ok(run_cli(*_flags(), "exceptions", "--format", "json"))
    assert sum(row["count"] for row in json.loads(listing)) == expected

    spath = manifest["expected"]["ORDER_MISSING_SPATH"]
    _ok(
        run_cli(
            *_flags(),
            "resolve",
            "--type",
            "ORDER_MISSING_SPATH",
            "--order-id",
            str(spath[0]),
            "--by",
            "test",
            "--notes",
            "flags reach the write",
        )
    )
    engine = db.create_engine(PG_URL, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    with engine.connect() as conn:
        closed = conn.execute(sa.select(ex.c.order_id).where(ex.c.resolved_at.is_not(None))).scalars().all()
    assert closed == [spath[0]]

    ecs = manifest["expected"]["REACTIVATED_ORDER_MISSING_ECS"]
    repair = _ok(run_cli(*_flags(), "repair-reactivated", "--order-id", str(ecs[0]), "--by", "test"))
    assert "hist_ecs_order_info_" in repair  # the dry run found the order in the flagged mart

    _ok(run_cli(*_flags(), "vacuum", "--tables", "uti"), 0, 1)
    log_table = schema.build_tables(settings).maintenance_log
    with engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(log_table)).scalar_one()
    engine.dispose()
    assert logged >= 1

    doctor = run_cli(*_flags(), "doctor")
    assert "127.0.0.1" in doctor.stdout or "postgres" in doctor.stdout.lower(), doctor.stdout

    # The environment's databases were never opened: no file, no folder.
    assert not elsewhere["warehouse"].parent.exists(), list(elsewhere["warehouse"].parent.iterdir())


def test_an_unreadable_exceptions_table_is_an_unknown_count_never_zero(
    schemas, pg_warehouse, gx_copy
) -> None:
    """Issue 27, defect 3: a role with no grants gets errors, and the count is "unknown"."""
    from tests.pg_roles import restricted_role

    _ok(run_cli("init-db", "--with-pipeline-tables"))
    with restricted_role() as (_name, url, _admin):
        proc = run_cli("--warehouse-url", url, "monitor", "--as-of", AS_OF.isoformat(), "--checks",
                       "missing_spath")  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "unresolved exceptions: unknown" in proc.stdout, proc.stdout
    assert "unresolved exceptions: 0" not in proc.stdout
    assert "error in unresolved_summary" in proc.stderr or "permission denied" in proc.stderr, proc.stderr


def test_the_source_urls_database_is_the_source_schema(monkeypatch) -> None:
    """Issue 27, defect 6: ``mysql://…/nc_src`` reads ``nc_src.*``; a disagreeing setting is refused."""
    monkeypatch.delenv("ORDER_TRACKING_SOURCE_SCHEMA", raising=False)
    assert Settings.from_env(source_url=f"{MARIA_URL}/nc_src").source_schema == "nc_src"
    assert Settings.from_env(source_url=MARIA_URL).source_schema == "kuaisong"  # no database: default
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_SCHEMA", "nc_src")
    assert Settings.from_env(source_url=f"{MARIA_URL}/nc_src").source_schema == "nc_src"
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_SCHEMA", "kuaisong")
    proc = run_cli("--source-url", f"{MARIA_URL}/nc_src", "doctor")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        "error: ORDER_TRACKING_SOURCE_SCHEMA='kuaisong' disagrees with the source URL's database "
        "'nc_src': set one of them, or make them the same"
    )
