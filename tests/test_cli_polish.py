"""Small things a new user trips over: each one asserted through the real CLI on SQLite files."""

from __future__ import annotations

import os
import re
import subprocess
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from order_tracking import db, synthetic
from order_tracking.checks.run import run_checks
from tests.conftest import resolve_orders, run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)


@pytest.fixture
def open_spath(gx_copy, sqlite_urls):
    """SQLite warehouse whose exceptions table holds the injected ORDER_MISSING_SPATH rows."""
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    run_checks(settings, AS_OF, ["missing_spath"])
    ids = manifest["expected"]["ORDER_MISSING_SPATH"]
    assert len(ids) >= 3
    return settings, ids


@contextmanager
def read_only(path: Path):
    """The file cannot be written, even by root (who ignores permission bits: use chattr +i)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)


@pytest.mark.parametrize("value", ["", " , "])
def test_empty_checks_is_an_error(value):
    proc = run_cli("monitor", "--checks", value)
    assert proc.returncode == 3
    assert proc.stderr.startswith(
        "error: --checks is empty; give a comma-separated subset of extraction_count"
    )


def test_exceptions_limit_says_when_it_truncated(open_spath):
    _, ids = open_spath
    proc = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--limit", "2", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1 + 2  # header + 2 rows, csv stays clean
    assert proc.stderr.strip() == "showing the newest 2 rows; more match (raise --limit or drop it)"
    proc = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--limit", str(len(ids)))
    assert proc.returncode == 0 and proc.stderr == ""  # exactly all: nothing was cut
    proc = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--limit", "0")
    assert proc.returncode == 3 and "--limit 0" in proc.stderr


def test_include_resolved_summary_splits_open_and_resolved(open_spath):
    settings, ids = open_spath
    resolve_orders(settings, "ORDER_MISSING_SPATH", ids[:1])
    proc = run_cli("exceptions", "--include-resolved", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert f'"open": {len(ids) - 1}' in proc.stdout and '"resolved": 1' in proc.stdout
    proc = run_cli("exceptions")  # the default summary is unchanged: open rows only
    assert re.search(rf"ORDER_MISSING_SPATH\s+{len(ids) - 1}\s", proc.stdout), proc.stdout


def test_read_only_sqlite_error_names_the_file(open_spath):
    settings, _ = open_spath
    ods_file = Path(db.schema_file(settings.warehouse_url.removeprefix("sqlite:///"), settings.ods_schema))
    with read_only(ods_file):
        proc = run_cli(
            "resolve", "--all-of-type", "--type", "ORDER_MISSING_SPATH", "--by", "me", "--notes", "fixed"
        )
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        f"error: database error: attempt to write a readonly database ({ods_file} is not writable)"
    )


def test_vacuum_prints_each_step_as_it_starts_and_ends_and_what_sqlite_really_runs(sqlite_urls):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=500, seed=5, skip_source=True))
    proc = run_cli("vacuum", "--tables", "uti")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "sqlite has no table-level VACUUM: each VACUUM DELETE ONLY below rebuilds the whole file" in out
    assert 'VACUUM "settlement_public";  -- VACUUM DELETE ONLY mart_uni_tracking_info' in out
    step = r'VACUUM DELETE ONLY mart_uni_tracking_info \(runs: VACUUM "settlement_public"\)'
    start = re.search(rf"^\d\d:\d\d:\d\d start {step}$", out, re.M)
    end = re.search(rf"^\d\d:\d\d:\d\d ok {step} in \d+\.\d s$", out, re.M)
    assert start and end and start.start() < end.start(), out
    assert re.search(r"^\d\d:\d\d:\d\d ok ANALYZE mart_uni_tracking_info in \d+\.\d s$", out, re.M)


def test_rules_doc_sqlite_lines_run_the_spec_queries_verbatim(open_spath, tmp_path):
    import sqlite3

    from tests.conftest import ROOT

    settings, ids = open_spath
    doc = (ROOT / "docs" / "rules.md").read_text()
    (block,) = re.findall(r"```sql\n(.*?)```", doc, re.S)
    main_file = settings.warehouse_url.removeprefix("sqlite:///")
    sql = block.replace(".local/warehouse", main_file.removesuffix(".db"))
    sql = sql.replace(
        "order_id = 123 AND exception_type = 'UTI_UTS_TIME_MISMATCH'",
        f"order_id = {ids[0]} AND exception_type = 'ORDER_MISSING_SPATH'",
    )
    conn = sqlite3.connect(main_file)
    results = []
    for statement in (s.strip() for s in sql.split(";")):
        if statement and not all(line.startswith("--") for line in statement.splitlines()):
            cursor = conn.execute(statement)
            results.append((cursor.fetchall(), cursor.rowcount))
    conn.commit()
    conn.close()
    (summary, _), _detail, (_, updated) = results[2:]  # after the two ATTACH lines
    assert summary == [("ORDER_MISSING_SPATH", len(ids))]
    assert updated == 1
    proc = run_cli("exceptions", "--include-resolved", "--format", "csv")
    assert f"ORDER_MISSING_SPATH,{len(ids) - 1},1," in proc.stdout


# --- issue 27: smaller edges from a new user's trial -------------------------------------------


def test_exceptions_limit_without_type_or_order_is_refused(open_spath):
    proc = run_cli("exceptions", "--limit", "2")
    assert proc.returncode == 3, proc.stdout
    assert proc.stderr.splitlines() == [
        "error: --limit 2 limits detail rows: give --type T or --order-id N with it "
        "(the summary has one line per type)"
    ]
    assert proc.stdout == ""


def test_exceptions_json_age_names_its_unit(open_spath):
    import json

    from order_tracking.clock import utc_now

    proc = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and all("age" not in r for r in rows)
    for r in rows:  # whole seconds since first detection
        expected = (utc_now() - datetime.fromisoformat(r["detected_at"])).total_seconds()
        assert isinstance(r["age_seconds"], int) and 0 <= expected - r["age_seconds"] < 120


def test_exceptions_table_shows_resolution_notes_one_line_per_exception(open_spath):
    settings, ids = open_spath
    resolve_orders(settings, "ORDER_MISSING_SPATH", ids[:1])  # notes "backfilled"
    proc = run_cli(
        "resolve", "--order-id", str(ids[1]), "--type", "ORDER_MISSING_SPATH", "--by", "ana",
        "--notes", "fixed by hand\nsee ticket 42",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("exceptions", "--type", "ORDER_MISSING_SPATH", "--include-resolved")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert len(lines) == len(ids)  # a line break in a note does not split a row
    columns = header.split()
    # The long evidence column last: the resolution stays on screen beside the order.
    assert columns[-1] == "notes" and columns.index("resolution_notes") < columns.index("notes")
    by_order = {line.split()[0]: line for line in lines}
    assert "backfilled" in by_order[str(ids[0])]
    assert "fixed by hand see ticket 42" in by_order[str(ids[1])]
    start = header.index("resolution_notes")
    assert by_order[str(ids[1])][start:].startswith("fixed by hand see ticket 42")


def test_monitor_says_what_found_counts(gx_copy, sqlite_urls):
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:6]}
    # Test 0 counts raw tables short of the source; Tests 1-3 count distinct orders.
    assert re.match(r"extraction_count\s+FAIL\s+2 tables\s+-\s+-\s", rows["extraction_count"])
    for check in ("uti_uts_alignment", "missing_spath", "reactivated_missing_ecs"):
        assert re.match(rf"{check}\s+FAIL\s+\d+ orders\s+\d+\s+\d+\s", rows[check]), rows[check]
