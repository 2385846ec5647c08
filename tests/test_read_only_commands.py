"""Issue 27, defect 5: a command that only reads never creates a database.

SQLite creates a missing database file on connect, and the embedded warehouse ATTACHes one more
file per schema, so ``exceptions`` against a mistyped path used to leave a directory and three
empty files behind before saying that the table does not exist. Each command runs through the
real CLI, in a child process; the assertion is on the files, not only on the message.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from order_tracking import db, synthetic
from tests.conftest import run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
READ_ONLY = [
    ["exceptions"],
    ["exceptions", "--type", "ORDER_MISSING_SPATH", "--format", "json"],
    # Not read-only, but nothing to do without the table: refused the same way.
    ["resolve", "--all-of-type", "--type", "ORDER_MISSING_SPATH", "--by", "me", "--notes", "x"],
    ["vacuum", "--tables", "uti"],
]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_a_missing_sqlite_warehouse_is_named_and_never_created(tmp_path, command):
    missing = tmp_path / "nonexistent" / "dir" / "w.db"
    before = _tree(tmp_path)
    proc = run_cli("--warehouse-url", f"sqlite:///{missing}", *command)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: no database at {missing}: check the warehouse URL "
        "(--warehouse-url or ORDER_TRACKING_WAREHOUSE_URL), or create it with init-db"
    ]
    assert not (tmp_path / "nonexistent").exists()
    assert _tree(tmp_path) == before


def test_vacuum_dry_run_prints_the_plan_without_creating_the_database(tmp_path):
    missing = tmp_path / "nonexistent" / "w.db"
    before = _tree(tmp_path)
    proc = run_cli("--warehouse-url", f"sqlite:///{missing}", "vacuum", "--dry-run", "--tables", "uti")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "-- vacuum plan for sqlite"
    assert 'VACUUM "settlement_public";  -- VACUUM DELETE ONLY mart_uni_tracking_info' in proc.stdout
    assert _tree(tmp_path) == before


def test_doctor_names_both_missing_databases_and_creates_neither(tmp_path, sqlite_urls):
    """doctor's contract stays: a FAIL line per problem, exit 1, and the source is still checked."""
    missing = tmp_path / "nonexistent" / "w.db"
    source = Path(sqlite_urls[1].removeprefix("sqlite:///"))  # tmp_path/source.db, never made
    before = _tree(tmp_path)
    proc = run_cli("--warehouse-url", f"sqlite:///{missing}", "doctor")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f"FAIL warehouse: no database at {missing}: check the warehouse URL "
        "(--warehouse-url or ORDER_TRACKING_WAREHOUSE_URL), or create it with init-db"
    )
    assert lines[1] == (
        f"FAIL source: no database at {source}: check the source URL "
        "(--source-url or ORDER_TRACKING_SOURCE_URL), or create it with init-db"
    )
    assert lines[-1] == "2 checks: 2 failed"
    assert proc.stderr == ""
    assert _tree(tmp_path) == before


def test_a_missing_schema_file_is_named_and_not_created(tmp_path, sqlite_urls, gx_copy):
    """The main file exists but a schema's ATTACHed file is gone: that file is named, not made."""
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=50, seed=3, skip_source=True))
    ods_file = Path(db.schema_file(settings.warehouse_url.removeprefix("sqlite:///"), settings.ods_schema))
    ods_file.unlink()
    proc = run_cli("exceptions")
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"error: no database at {ods_file} (schema {settings.ods_schema}): ")
    assert not ods_file.exists()


def test_an_existing_warehouse_still_reads(tmp_path, sqlite_urls, gx_copy):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=50, seed=3, skip_source=True))
    proc = run_cli("exceptions")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no open exceptions"
