"""Test 0 names the lost rows: per-cycle counts and the keys of the missing rows.

Raw rows are dropped on purpose from a clean data set (source and raw agree), in known 15-minute
cycles; the report must name exactly those cycles and keys, in the validation result, the CLI
and the Data Docs page. The SQL is checked per dialect, the comparison against the real MariaDB
source and PostgreSQL warehouse.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from order_tracking import db, schema, synthetic
from order_tracking.checks import extraction_sql, lost_rows, rules
from order_tracking.checks.run import run_checks
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.conftest import run_cli, seed_dataset

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
WINDOW = rules.Window.extraction(AS_OF, 7200, 300)  # [00:55, 02:55)


def _cycle(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


@pytest.mark.parametrize(
    ("dialect", "fragment"),
    [
        (sqlite.dialect(), "(CAST(strftime('%s', settlement_public.ecs_order_info_raw.add_time) AS INTEGER)"),
        (
            postgresql.psycopg2.dialect(),
            "CAST(FLOOR(EXTRACT(EPOCH FROM (settlement_public.ecs_order_info_raw.add_time - '2026-11-25 "
            "00:45:00')) / 900) AS INTEGER)",
        ),
        (
            mysql.pymysql.dialect(),
            "TIMESTAMPDIFF(SECOND, '2026-11-25 00:45:00', settlement_public.ecs_order_info_raw.add_time) "
            "DIV 900",
        ),
        (
            RedshiftDialect_psycopg2(),
            "DATEDIFF(second, '2026-11-25 00:45:00', settlement_public.ecs_order_info_raw.add_time) / 900",
        ),
    ],
)
def test_cycle_counts_sql_per_dialect(dialect, fragment):
    tables = schema.build_tables(Settings.from_env())
    text = rules.compile_sql(extraction_sql.cycle_counts(tables.raw_ecs, "add_time", WINDOW, 900), dialect)
    assert fragment in text
    # One GROUP BY over the window only (cost follows the window, not the table).
    assert "GROUP BY per_row.cycle" in text
    assert "add_time >= '2026-11-25 00:55:00" in text and "add_time < '2026-11-25 02:55:00" in text


def test_cycle_origin_is_on_the_clock():
    assert extraction_sql.cycle_origin(WINDOW, 900) == datetime(2026, 11, 25, 0, 45)
    exact = rules.Window(datetime(2026, 11, 25, 1, 0), datetime(2026, 11, 25, 3, 0))
    assert extraction_sql.cycle_origin(exact, 900) == datetime(2026, 11, 25, 1, 0)


def _drop_raw_rows(settings: Settings) -> dict:
    """Delete raw rows in known cycles; return the expected report (cycles short, missing keys)."""
    tables = schema.build_tables(settings)
    in_window = lambda col: sa.and_(col >= WINDOW.start, col < WINDOW.end)  # noqa: E731
    source = db.create_engine(settings.source_url, [settings.source_schema])
    with source.connect() as conn:
        source_uti = conn.execute(
            sa.select(tables.src_uti.c.order_id, tables.src_uti.c.update_time).where(
                in_window(tables.src_uti.c.update_time)
            )
        ).all()
    source.dispose()
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    with engine.begin() as conn:
        ecs = conn.execute(
            sa.select(tables.raw_ecs.c.order_id, tables.raw_ecs.c.add_time)
            .where(in_window(tables.raw_ecs.c.add_time))
            .order_by(tables.raw_ecs.c.add_time)
        ).all()
        uts = conn.execute(
            sa.select(tables.raw_uts.c.id, tables.raw_uts.c.order_id, tables.raw_uts.c.pathtime)
            .where(in_window(tables.raw_uts.c.pathtime))
            .order_by(tables.raw_uts.c.pathtime, tables.raw_uts.c.id)
        ).all()
        # ecs: the first two rows of the first cycle that has two; spath: one row in a later cycle.
        by_cycle: dict[datetime, list] = {}
        for row in ecs:
            by_cycle.setdefault(_cycle(row.add_time), []).append(row)
        ecs_victims = next(rows[:2] for rows in by_cycle.values() if len(rows) >= 2)
        uts_victim = next(r for r in uts if _cycle(r.pathtime) != _cycle(ecs_victims[0].add_time))
        conn.execute(
            tables.raw_ecs.delete().where(tables.raw_ecs.c.order_id.in_([r.order_id for r in ecs_victims]))
        )
        conn.execute(tables.raw_uts.delete().where(tables.raw_uts.c.id == uts_victim.id))
        # uti: raw also holds older versions of orders (one row per cycle that saw them), so a
        # loss is hidden unless the table (the alarm) and the cycle hold no extra: drop the
        # window's extras (not missing: not in the source) and the raw copy of one current source
        # version (missing).
        raw_uti = conn.execute(
            sa.select(tables.raw_uti.c.order_id, tables.raw_uti.c.update_time).where(
                in_window(tables.raw_uti.c.update_time)
            )
        ).all()
        in_source = {(r.order_id, r.update_time) for r in source_uti}
        uti_victim = min(
            (r for r in raw_uti if (r.order_id, r.update_time) in in_source),
            key=lambda r: (r.update_time, r.order_id),
        )
        doomed = [r for r in raw_uti if (r.order_id, r.update_time) not in in_source or r == uti_victim]
        for r in doomed:
            conn.execute(
                tables.raw_uti.delete().where(
                    tables.raw_uti.c.order_id == r.order_id, tables.raw_uti.c.update_time == r.update_time
                )
            )
        # A raw row lost OUTSIDE the window is not Test 0's business and must not be listed.
        outside = conn.execute(
            sa.select(tables.raw_uts.c.id).where(tables.raw_uts.c.pathtime < WINDOW.start).limit(1)
        ).scalar_one()
        conn.execute(tables.raw_uts.delete().where(tables.raw_uts.c.id == outside))
    engine.dispose()
    missing = [
        {"table": "ecs_order_info", "key": r.order_id, "order_id": r.order_id, "time": str(r.add_time)}
        for r in ecs_victims
    ] + [
        {
            "table": "uni_tracking_spath",
            "key": uts_victim.id,
            "order_id": uts_victim.order_id,
            "time": str(uts_victim.pathtime),
        },
        {
            "table": "uni_tracking_info",
            "key": uti_victim.order_id,
            "order_id": uti_victim.order_id,
            "time": str(uti_victim.update_time),
        },
    ]
    missing.sort(key=lambda m: (m["time"], m["table"], m["key"]))
    short = {
        ("ecs_order_info", str(_cycle(ecs_victims[0].add_time))),
        ("uni_tracking_spath", str(_cycle(uts_victim.pathtime))),
        ("uni_tracking_info", str(_cycle(uti_victim.update_time))),
    }
    return {"missing": missing, "short": short, "ecs_lost": len(ecs_victims)}


def _stored_details(gx_root) -> dict:
    (path,) = (gx_root / "uncommitted" / "validations" / "order_tracking_extraction_count").rglob("*.json")
    return json.loads(path.read_text())["results"][0]["result"]["details"]


def test_mariadb_source_and_warehouse_in_both_dialects_name_the_dropped_rows(
    warehouse, maria_source, gx_copy, twin_recording
):
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=11).clean())
    assert not any(manifest["extraction_dropped"].values())
    expected = _drop_raw_rows(settings)

    recording = twin_recording("test0")
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "extraction_count")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    if warehouse.startswith("redshift"):
        # The per-cycle counts reached the warehouse in Redshift's words, and the guard let them by.
        sent = redshift_twin.read_recording(recording)
        assert redshift_twin.refused(sent) == []
        cycles = [r["sql"] for r in sent if "GROUP BY per_row.cycle" in r["sql"]]
        assert len(cycles) == 3 and all("DATEDIFF(second, " in q and ") / 900" in q for q in cycles)

    details = _stored_details(gx_copy)
    assert details["missing_rows"] == expected["missing"]
    assert details["missing_total"] == 4
    short = {(c["table"], c["cycle_start"]) for c in details["cycles"] if c["raw_count"] < c["source_count"]}
    assert short == expected["short"]
    # Every cycle of the short tables is listed, the window's two partial cycles included,
    # and per table the cycles add up to the window's counts.
    counts = {c["table"]: c for c in details["counts"]}
    for table in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"):
        cycles = [c for c in details["cycles"] if c["table"] == table]
        assert cycles[0]["cycle_start"] == "2026-11-25 00:45:00"
        assert cycles[-1]["cycle_start"] == "2026-11-25 02:45:00"
        assert sum(c["source_count"] for c in cycles) == counts[table]["source_count"]
        assert sum(c["raw_count"] for c in cycles) == counts[table]["raw_count"]
    ecs_short = next(
        c
        for c in details["cycles"]
        if c["table"] == "ecs_order_info" and (c["table"], c["cycle_start"]) in expected["short"]
    )
    assert ecs_short["source_count"] - ecs_short["raw_count"] == expected["ecs_lost"]

    # The CLI prints the short cycles and the first missing keys.
    for table, start in expected["short"]:
        assert f"short cycle {table} {start}:" in proc.stdout
    first = expected["missing"][0]
    assert (
        f"{first['table']} key={first['key']} order_id={first['order_id']} at {first['time']}" in proc.stdout
    )
    assert "missing rows (4):" in proc.stdout

    # The Data Docs page shows the per-cycle table and the keys.
    (page,) = (gx_copy / "uncommitted" / "data_docs" / "local_site" / "validations").rglob("*.html")
    text = page.read_text(encoding="utf-8")
    assert "Rows per 15-minute extraction cycle" in text and "SHORT" in text
    for m in expected["missing"]:
        assert re.search(rf">\s*{m['key']}\s*<", text), m


def test_report_lists_up_to_the_limit_with_the_total(sqlite_urls):
    settings, _ = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=11).clean())
    expected = _drop_raw_rows(settings)
    tables = schema.build_tables(settings)
    src = db.create_engine(settings.source_url, [settings.source_schema])
    wh = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    with src.connect() as s, wh.connect() as w:
        full = lost_rows.report(s, w, tables, WINDOW, extraction_sql.EXTRACTION_TABLES)
        one = lost_rows.report(s, w, tables, WINDOW, extraction_sql.EXTRACTION_TABLES, limit=1)
        only_ecs = lost_rows.report(s, w, tables, WINDOW, ["ecs_order_info"])
    src.dispose()
    wh.dispose()
    assert full["missing_rows"] == expected["missing"] and full["missing_total"] == 4
    assert one["missing_rows"] == expected["missing"][:1] and one["missing_total"] == 4
    assert {m["table"] for m in only_ecs["missing_rows"]} == {"ecs_order_info"}
    assert only_ecs["missing_total"] == 2
    # Cycles are on the clock, 15 minutes apart.
    starts = [datetime.fromisoformat(c["cycle_start"]) for c in only_ecs["cycles"]]
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(starts))


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_a_failing_lost_row_report_keeps_the_alarm(monkeypatch):
    settings, manifest = seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=2000, seed=7))
    assert manifest["extraction_dropped"]["ecs_order_info"]

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT ...", {}, Exception("source went away"))

    monkeypatch.setattr(lost_rows, "report", broken)
    report = run_checks(settings, AS_OF, ["extraction_count"])
    (outcome,) = report.outcomes
    assert outcome.status == "fail" and report.exit_code() == 2
    assert outcome.details["lost_rows_error"].startswith("lost-row report failed: OperationalError")
    assert "source went away" in outcome.details["lost_rows_error"]
    assert sorted(r["table_name"] for r in outcome.sample) == ["ecs_order_info", "uni_tracking_spath"]


def test_source_rows_with_null_keys_are_listed_not_a_type_error(sqlite_urls):
    """A source row with a NULL key (MySQL may not declare the key NOT NULL) is a lost row like
    any other: listed with a null key, sorted after the numbered ones of the same instant, and
    shown as NULL in the terminal (issue 28: ``lost-row report failed: TypeError``)."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    src = db.create_engine(settings.source_url, [settings.source_schema])
    wh = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(wh, [tables.raw_ecs, tables.raw_uti, tables.raw_uts])
    lost_at = datetime(2026, 11, 25, 1, 0)
    with src.begin() as conn:
        # No primary key, so order_id may be NULL, as in a source that never declared one.
        conn.exec_driver_sql(
            f'CREATE TABLE "{settings.source_schema}".ecs_order_info '
            "(order_id BIGINT, partner_id INTEGER, add_time TIMESTAMP)"
        )
        conn.execute(
            tables.src_ecs.insert(),
            [{"order_id": None, "add_time": lost_at}, {"order_id": 5, "add_time": lost_at}],
        )
    try:
        with src.connect() as s, wh.connect() as w:
            report = lost_rows.report(s, w, tables, WINDOW, ["ecs_order_info"])
    finally:
        src.dispose()
        wh.dispose()
    assert report["missing_rows"] == [
        {"table": "ecs_order_info", "key": 5, "order_id": 5, "time": "2026-11-25 01:00:00"},
        {"table": "ecs_order_info", "key": None, "order_id": None, "time": "2026-11-25 01:00:00"},
    ]
    assert report["missing_total"] == 2
    (_cycle_line, missing_line) = lost_rows.summary_lines(report)
    assert missing_line.endswith("ecs_order_info key=NULL order_id=NULL at 2026-11-25 01:00:00")
