"""The malformed-data catalogue (issue 11): each kind of bad or borderline data, with its outcome.

Every kind is a handful of rows in otherwise empty tables (embedded SQLite warehouse and source,
real GX checkpoints through ``monitoring.run_checks``), and states in writing what each of the
four checks must report: the failing order ids (Tests 1-3, also read back from the exceptions
table: nothing lost, nothing extra), the raw tables short of the source (Test 0), or an error.
Pipeline tables are created with nullable keys here, as production may have them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.checks.run import CHECK_NAMES, run_checks
from order_tracking.settings import Settings
from tests.conftest import MARIA_URL, ROOT, exception_rows

AS_OF = datetime(2026, 11, 25, 3, 0, 0)
IN = datetime(2026, 11, 25, 1, 0, 0)  # inside Tests 1-3's window and Test 0's window
US = timedelta(microseconds=1)
START = AS_OF - timedelta(hours=24)  # Tests 1-3: start < update_time <= as_of
T0_START = AS_OF - timedelta(hours=2, minutes=5)  # Test 0: t0_start <= t < t0_end
T0_END = AS_OF - timedelta(minutes=5)
BIG = 9223372036854775807  # bigint max
SMALL = -9223372036854775808  # bigint min
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999999)
EPOCH = datetime(1970, 1, 1)

T1, T2, T3, T0 = CHECK_NAMES[1], CHECK_NAMES[2], CHECK_NAMES[3], CHECK_NAMES[0]
ERROR = "error"


@dataclass
class Data:
    """Rows per table attribute of ``schema.Tables`` (``mart_uti`` ...) plus raw SQL to run."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    sql: list[str] = field(default_factory=list)
    open_exceptions: list[dict] = field(default_factory=list)

    def add(self, table: str, **row) -> Data:
        self.rows.setdefault(table, []).append(row)
        return self

    def consistent(self, order_id: int | None, t: datetime = IN) -> Data:
        """An order that every check accepts: mart uti/uts/ecs agree, source == raw."""
        self.add("mart_uti", order_id=order_id, update_time=t)
        self.add("mart_uts", order_id=order_id, pathtime=t)
        self.add("mart_ecs", order_id=order_id, partner_id=1, add_time=t)
        return self

    def extracted(self, order_id: int, t: datetime = IN, *, raw: bool = True) -> Data:
        """The order's three source rows, and (``raw``) their raw copies in the warehouse."""
        self.add("src_ecs", order_id=order_id, partner_id=1, add_time=t)
        self.add("src_uti", order_id=order_id, update_time=t)
        self.add("src_uts", id=order_id, order_id=order_id, pathTime=t)
        if raw:
            self.add("raw_ecs", order_id=order_id, partner_id=1, add_time=t)
            self.add("raw_uti", order_id=order_id, update_time=t)
            self.add("raw_uts", id=order_id, order_id=order_id, pathtime=t)
        return self


@dataclass
class Kind:
    """One kind of malformed data and what each check must say about it."""

    name: str
    data: Callable[[], Data]
    expect: dict[str, list | str]  # check -> failing order ids / short raw tables, or ERROR
    notes: dict[int, str] = field(default_factory=dict)  # order id -> text its note must hold
    why: str = ""
    warnings: tuple[str, ...] = ()  # text each logged warning must hold (a skipped table ...)
    missing_total: int | None = None  # Test 0: source rows the lost-row report must name


PASS_ALL: dict[str, list | str] = {T0: [], T1: [], T2: [], T3: []}


def expect(**failing) -> dict[str, list | str]:
    out = dict(PASS_ALL)
    names = {"t0": T0, "t1": T1, "t2": T2, "t3": T3}
    out.update({names[k]: v for k, v in failing.items()})
    return out


def _lookalike_uts() -> Data:
    d = Data().add("mart_uti", order_id=5, update_time=IN).add("mart_ecs", order_id=5, add_time=IN)
    d.sql.append(
        'CREATE TABLE "{mart}".hist_uni_tracking_spath_2027_h1 (tracking_no TEXT, pathtime TIMESTAMP)'
    )
    return d


def _lookalike_ecs() -> Data:
    d = Data().add("mart_uti", order_id=6, update_time=IN).add("mart_uts", order_id=6, pathtime=IN)
    d.sql.append('CREATE TABLE "{mart}".hist_ecs_order_info_2027_h1 (partner_id INTEGER, add_time TIMESTAMP)')
    return d


KINDS: list[Kind] = [
    # --- empty and clean ----------------------------------------------------------------------
    Kind("empty_tables", Data, PASS_ALL, why="no rows anywhere: nothing to flag, no error"),
    Kind("one_consistent_order", lambda: Data().consistent(1).extracted(1), PASS_ALL),
    # --- NULL keys ----------------------------------------------------------------------------
    Kind(
        "null_order_id_in_mart_uti",
        lambda: (
            Data().add("mart_uti", order_id=None, update_time=IN).add("mart_uti", order_id=7, update_time=IN)
        ),
        expect(t1=[], t2=[7], t3=[7]),
        why="the NULL row is skipped and reported; order 7's findings are still written",
    ),
    Kind(
        "null_order_id_in_mart_spath",
        lambda: Data().consistent(1).add("mart_uts", order_id=None, pathtime=IN + timedelta(hours=1)),
        PASS_ALL,
        why="a spath row that belongs to no order changes no order's MAX(pathtime)",
    ),
    Kind(
        "null_order_id_in_mart_ecs",
        lambda: (
            Data()
            .add("mart_uti", order_id=8, update_time=IN)
            .add("mart_uts", order_id=8, pathtime=IN)
            .add("mart_ecs", order_id=None, add_time=IN)
        ),
        expect(t3=[8]),
        why="NOT EXISTS, not NOT IN: a NULL key in mart_ecs must not hide order 8",
    ),
    Kind(
        "null_order_id_in_hist_spath",
        lambda: (
            Data()
            .add("mart_uti", order_id=9, update_time=IN)
            .add("mart_ecs", order_id=9)
            .add("hist_uts_2026_1", order_id=None, pathtime=IN)
        ),
        expect(t2=[9]),
        why="a NULL key in a history table must not hide order 9",
    ),
    Kind(
        "null_order_id_in_hist_ecs",
        lambda: (
            Data()
            .add("mart_uti", order_id=10, update_time=IN)
            .add("mart_uts", order_id=10, pathtime=IN)
            .add("hist_ecs_2026_1", order_id=None, add_time=IN)
        ),
        expect(t3=[10]),
        notes={10: "found in none"},
    ),
    Kind(
        "null_order_id_in_raw_tables",
        lambda: Data().extracted(11).add("raw_uti", order_id=None, update_time=IN),
        PASS_ALL,
        why="raw counts rows: an extra raw row is never an alarm",
    ),
    # --- NULL times ---------------------------------------------------------------------------
    Kind(
        "null_update_time_in_mart_uti",
        lambda: Data().add("mart_uti", order_id=12, update_time=None),
        PASS_ALL,
        why="a NULL update_time is in no window: out of scope of Tests 1-3",
    ),
    Kind(
        "all_pathtimes_null",
        lambda: (
            Data()
            .add("mart_uti", order_id=13, update_time=IN)
            .add("mart_uts", order_id=13, pathtime=None)
            .add("mart_uts", order_id=13, pathtime=None)
            .add("mart_ecs", order_id=13, add_time=IN)
        ),
        expect(t1=[13]),
        notes={13: "every pathtime of the order is NULL"},
        why="spath rows exist (not Test 2's) but carry no time: a Test 1 finding",
    ),
    Kind(
        "some_pathtimes_null",
        lambda: Data().consistent(14).add("mart_uts", order_id=14, pathtime=None),
        PASS_ALL,
        why="MAX ignores NULLs: the latest real pathtime matches",
    ),
    Kind(
        "null_add_time_in_mart_ecs",
        lambda: (
            Data()
            .add("mart_uti", order_id=15, update_time=IN)
            .add("mart_uts", order_id=15, pathtime=IN)
            .add("mart_ecs", order_id=15, add_time=None)
        ),
        PASS_ALL,
        why="Test 3 asks whether the row exists, not when it was added",
    ),
    Kind(
        "null_time_in_source",
        lambda: Data().extracted(16).add("src_uti", order_id=17, update_time=None),
        PASS_ALL,
        why="a source row with no time is in no window",
    ),
    Kind(
        "null_time_in_raw",
        lambda: (
            Data()
            .extracted(18, raw=False)
            .add("raw_ecs", order_id=18, add_time=IN)
            .add("raw_uti", order_id=18, update_time=IN)
            .add("raw_uts", id=18, order_id=18, pathtime=None)
        ),
        expect(t0=["uni_tracking_spath"]),
        why="the raw copy lost its time: the window holds fewer raw rows than source rows",
    ),
    # --- duplicates ---------------------------------------------------------------------------
    Kind(
        "duplicate_mart_uti_rows",
        lambda: (
            Data()
            .add("mart_uti", order_id=19, update_time=IN)
            .add("mart_uti", order_id=19, update_time=IN)
            .add("mart_uts", order_id=19, pathtime=IN - timedelta(seconds=5))
            .add("mart_ecs", order_id=19, add_time=IN)
        ),
        expect(t1=[19]),
        why="one order, one finding (found counts distinct orders)",
    ),
    Kind(
        "duplicate_spath_and_ecs_rows",
        lambda: (
            Data()
            .consistent(20)
            .add("mart_uts", order_id=20, pathtime=IN)
            .add("mart_ecs", order_id=20, add_time=IN)
        ),
        PASS_ALL,
    ),
    Kind(
        "duplicate_source_rows_in_raw",
        lambda: Data().extracted(21).add("raw_uti", order_id=21, update_time=IN),
        PASS_ALL,
        why="an order seen in two cycles: more raw rows than source rows is normal",
    ),
    # --- far-future and epoch times -----------------------------------------------------------
    Kind(
        "far_future_update_time",
        lambda: Data().add("mart_uti", order_id=22, update_time=FAR_FUTURE),
        PASS_ALL,
        why="update_time after as_of is outside the window",
    ),
    Kind(
        "far_future_pathtime",
        lambda: (
            Data()
            .add("mart_uti", order_id=23, update_time=IN)
            .add("mart_uts", order_id=23, pathtime=FAR_FUTURE)
            .add("mart_ecs", order_id=23, add_time=IN)
        ),
        expect(t1=[23]),
        notes={23: "max_pathtime=9999-12-31 23:59:59.999999"},
    ),
    Kind(
        "epoch_pathtime",
        lambda: (
            Data()
            .add("mart_uti", order_id=24, update_time=IN)
            .add("mart_uts", order_id=24, pathtime=EPOCH)
            .add("mart_ecs", order_id=24, add_time=IN)
        ),
        expect(t1=[24]),
        notes={24: "diff=1795568400s"},
    ),
    Kind(
        "epoch_update_time",
        lambda: Data().add("mart_uti", order_id=25, update_time=EPOCH),
        PASS_ALL,
        why="an epoch update_time is outside the window",
    ),
    Kind(
        "far_future_and_epoch_in_source",
        lambda: (
            Data()
            .extracted(26)
            .add("src_uti", order_id=27, update_time=FAR_FUTURE)
            .add("src_ecs", order_id=28, add_time=EPOCH)
        ),
        PASS_ALL,
    ),
    # --- window boundaries to the microsecond -------------------------------------------------
    Kind(
        "update_time_at_window_start",
        lambda: Data().add("mart_uti", order_id=29, update_time=START),
        PASS_ALL,
        why="the start is exclusive",
    ),
    Kind(
        "update_time_1us_after_window_start",
        lambda: Data().add("mart_uti", order_id=30, update_time=START + US).add("mart_ecs", order_id=30),
        expect(t2=[30]),
    ),
    Kind(
        "update_time_at_as_of",
        lambda: (
            Data()
            .add("mart_uti", order_id=31, update_time=AS_OF)
            .add("mart_uts", order_id=31, pathtime=AS_OF)
        ),
        expect(t3=[31]),
        why="the end is inclusive",
    ),
    Kind(
        "update_time_1us_after_as_of",
        lambda: Data().add("mart_uti", order_id=32, update_time=AS_OF + US),
        PASS_ALL,
    ),
    Kind(
        "source_row_at_test0_start",
        lambda: (
            Data()
            .extracted(33, T0_START, raw=False)
            .add("raw_uti", order_id=33, update_time=T0_START)
            .add("raw_uts", id=33, order_id=33, pathtime=T0_START)
        ),
        expect(t0=["ecs_order_info"]),
        why="Test 0's start is inclusive: the missing raw ecs row counts",
    ),
    Kind(
        "source_row_at_test0_end",
        lambda: Data().extracted(34, T0_END, raw=False),
        PASS_ALL,
        why="Test 0's end is exclusive: that row belongs to the next window",
    ),
    Kind(
        "source_row_1us_before_test0_end",
        lambda: Data().extracted(35, T0_END - US, raw=False),
        expect(t0=["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"]),
    ),
    # --- sub-second differences ---------------------------------------------------------------
    Kind(
        "subsecond_mismatch",
        lambda: (
            Data()
            .add("mart_uti", order_id=36, update_time=IN + timedelta(milliseconds=250))
            .add("mart_uts", order_id=36, pathtime=IN)
            .add("mart_ecs", order_id=36, add_time=IN)
        ),
        expect(t1=[36]),
        notes={36: "diff=0.250000s"},
    ),
    Kind(
        "negative_one_microsecond_mismatch",
        lambda: (
            Data()
            .add("mart_uti", order_id=37, update_time=IN)
            .add("mart_uts", order_id=37, pathtime=IN + US)
            .add("mart_ecs", order_id=37, add_time=IN)
        ),
        expect(t1=[37]),
        notes={37: "diff=-0.000001s"},
    ),
    # --- bigint extremes ----------------------------------------------------------------------
    Kind(
        "bigint_max_order_id",
        lambda: (
            Data().add("mart_uti", order_id=BIG, update_time=IN).add("mart_uts", order_id=BIG, pathtime=IN)
        ),
        expect(t3=[BIG]),
    ),
    Kind(
        "bigint_min_order_id",
        lambda: Data().add("mart_uti", order_id=SMALL, update_time=IN).add("mart_ecs", order_id=SMALL),
        expect(t2=[SMALL]),
    ),
    Kind("order_id_zero", lambda: Data().add("mart_uti", order_id=0, update_time=IN), expect(t2=[0], t3=[0])),
    # --- quotes, newlines, emoji in text ------------------------------------------------------
    Kind(
        "quotes_in_open_exception_notes",
        lambda: (
            Data(
                open_exceptions=[
                    {"order_id": 38, "exception_type": "ORDER_MISSING_SPATH", "notes": "it's \"x\"'; --"}
                ]
            )
            .add("mart_uti", order_id=38, update_time=IN)
            .add("mart_ecs", order_id=38)
        ),
        expect(t2=[38]),
        notes={38: "no spath rows"},
        why="the open row is updated in place (notes refreshed), never duplicated",
    ),
    Kind(
        "newlines_and_emoji_in_open_exception_notes",
        lambda: (
            Data(
                open_exceptions=[
                    {"order_id": 39, "exception_type": "ORDER_MISSING_SPATH", "notes": "a\nb\r\n🚚📦"}
                ]
            )
            .add("mart_uti", order_id=39, update_time=IN)
            .add("mart_ecs", order_id=39)
        ),
        expect(t2=[39]),
        notes={39: "no spath rows"},
    ),
    Kind(
        "emoji_in_resolution_notes_then_recurrence",
        lambda: (
            Data(
                open_exceptions=[
                    {
                        "order_id": 40,
                        "exception_type": "REACTIVATED_ORDER_MISSING_ECS",
                        "notes": "old",
                        "resolved_at": IN,
                        "resolved_by": "Zoë 🚀",
                        "resolution_notes": "fixed ✅ 'moved'\nback",
                    }
                ]
            )
            .add("mart_uti", order_id=40, update_time=IN)
            .add("mart_uts", order_id=40, pathtime=IN)
        ),
        expect(t3=[40]),
        why="a resolved exception that recurs opens a new row; the resolved one is untouched",
    ),
    # --- look-alike and odd tables ------------------------------------------------------------
    Kind(
        "lookalike_hist_spath_table_without_order_id",
        _lookalike_uts,
        expect(t2=[5]),
        why="skipped with a warning naming it; Test 2 keeps checking the real tables",
    ),
    Kind(
        "lookalike_hist_ecs_table_without_order_id",
        _lookalike_ecs,
        expect(t3=[6]),
        why="skipped with a warning naming it; Test 3 keeps checking",
    ),
    Kind(
        "history_name_outside_the_pattern",
        lambda: (
            Data(
                sql=[
                    'CREATE TABLE "{mart}".hist_uni_tracking_spath_backup '
                    "(order_id BIGINT, pathtime TIMESTAMP)"
                ]
            )
            .add("mart_uti", order_id=41, update_time=IN)
            .add("mart_ecs", order_id=41)
        ),
        expect(t2=[41]),
        why="only hist_uni_tracking_spath_<YYYY>_h<1|2> is history; a backup table hides nothing",
    ),
    Kind(
        "spath_only_in_history",
        lambda: (
            Data()
            .add("mart_uti", order_id=42, update_time=IN)
            .add("mart_ecs", order_id=42)
            .add("hist_uts_2026_1", order_id=42, pathtime=IN)
        ),
        PASS_ALL,
        why="Test 1 leaves orders without mart spath to Test 2, which finds the history row",
    ),
    Kind(
        "ecs_in_two_history_tables",
        lambda: (
            Data()
            .add("mart_uti", order_id=43, update_time=IN)
            .add("mart_uts", order_id=43, pathtime=IN)
            .add("hist_ecs_2025_2", order_id=43, add_time=EPOCH)
            .add("hist_ecs_2026_1", order_id=43, add_time=EPOCH)
        ),
        expect(t3=[43]),
        notes={43: "found in hist_ecs_order_info_2026_h1"},
        why="the newest history table is named (a reactivated order was archived last)",
    ),
    # --- missing tables -----------------------------------------------------------------------
    Kind(
        "missing_raw_table",
        lambda: Data(sql=['DROP TABLE "{mart}".uni_tracking_spath_raw']).extracted(44),
        expect(t0=ERROR),
        why="an error (exit 3), never 'EXTRACTION COUNT ALARM: ;'",
    ),
    Kind(
        "missing_mart_spath_table",
        lambda: Data(sql=['DROP TABLE "{mart}".mart_uni_tracking_spath']).add(
            "mart_uti", order_id=45, update_time=IN
        ),
        expect(t1=ERROR, t2=ERROR, t3=[45]),
        why="a query error is an error, not '0 failing'; Test 3 still writes its finding",
    ),
    # --- values Python cannot hold (issue 28) -------------------------------------------------
    Kind(
        "null_order_id_in_source_short_cycle",
        lambda: (
            Data()
            .extracted(60)
            .add("src_uts", id=61, order_id=None, pathTime=IN)
            .add("src_uts", id=62, order_id=62, pathTime=IN)
        ),
        expect(t0=["uni_tracking_spath"]),
        missing_total=2,
        why="the lost-row report names the row with no order_id too, not a TypeError",
    ),
]

HIST_TABLES = {"hist_uts_2026_1": (2026, 1), "hist_ecs_2025_2": (2025, 2), "hist_ecs_2026_1": (2026, 1)}


@pytest.fixture(scope="module")
def shared_gx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One GX copy for the whole catalogue: suite pages are rendered once, not once per kind."""
    target = tmp_path_factory.mktemp("catalogue") / "project" / "gx"
    shutil.copytree(ROOT / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def _table(tables: schema.Tables, name: str) -> sa.Table:
    if name in HIST_TABLES:
        year, half = HIST_TABLES[name]
        return tables.hist_uts(year, half) if name.startswith("hist_uts") else tables.hist_ecs(year, half)
    return getattr(tables, name)


def load(settings: Settings, data: Data) -> None:
    """Create every table (keys nullable, as production may have them), then insert ``data``."""
    tables = schema.build_tables(settings)
    hist = [_table(tables, n) for n in HIST_TABLES if n in data.rows]
    pipeline = [*tables.pipeline_tables, *hist]
    for t in (*pipeline, *tables.source_tables):
        for c in t.columns:
            if not c.primary_key:
                c.nullable = True
    wh = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    src = db.create_engine(settings.source_url, [settings.source_schema])
    try:
        schema.create_tables(wh, [*pipeline, *tables.ods_tables])
        schema.create_tables(src, tables.source_tables)
        for name, rows in data.rows.items():
            engine = src if name.startswith("src_") else wh
            with engine.begin() as conn:
                for row in rows:  # rows of one table may name different columns
                    conn.execute(sa.insert(_table(tables, name)), row)
        with wh.begin() as conn:
            for sql in data.sql:
                conn.execute(sa.text(sql.format(mart=settings.mart_schema)))
            for row in data.open_exceptions:
                values = {
                    "detected_at": IN - timedelta(days=3),
                    "last_seen_at": IN - timedelta(days=1),
                    **row,
                }
                conn.execute(sa.insert(tables.exceptions), values)
    finally:
        wh.dispose()
        src.dispose()


def check_outcome(settings: Settings, kind: Kind, caplog: pytest.LogCaptureFixture | None = None) -> None:
    report = run_checks(settings, AS_OF)
    by_check = {o.check: o for o in report.outcomes}
    for check, wanted in kind.expect.items():
        got = by_check[check]
        if wanted == ERROR:
            assert got.status == "error" and got.message, (check, got)
            continue
        assert got.status == ("fail" if wanted else "pass"), (check, got)
        if check == T0:
            assert sorted(r["table_name"] for r in got.sample) == sorted(wanted), got.sample
            # The alarm comes with its lost rows, never with "lost-row report failed".
            assert "lost_rows_error" not in got.details, got.details["lost_rows_error"]
            if kind.missing_total is not None:
                assert got.details["missing_total"] == kind.missing_total, got.details
        else:
            assert got.failing == len(wanted), (check, got)
    # What was written: exactly the expected open findings, per type.
    tables = schema.build_tables(settings)
    cols = list(tables.exceptions.c.keys())
    rows = [dict(zip(cols, r, strict=True)) for r in exception_rows(settings)]
    open_rows = [r for r in rows if r["resolved_at"] is None]
    for check in (T1, T2, T3):
        wanted = kind.expect[check]
        etype = by_check[check].exception_type
        if wanted == ERROR or etype is None:
            continue
        written = sorted(r["order_id"] for r in open_rows if r["exception_type"] == etype)
        assert written == sorted(wanted), (check, written)
    for order_id, text in kind.notes.items():
        assert any(r["order_id"] == order_id and text in (r["notes"] or "") for r in open_rows), (
            text,
            open_rows,
        )
    # Resolved rows are never touched; their text survives byte for byte.
    for row in kind.data().open_exceptions:
        if row.get("resolved_at"):
            assert any(r.get("resolution_notes") == row["resolution_notes"] for r in rows)
    for text in kind.warnings:
        assert caplog is not None
        assert any(r.levelname == "WARNING" and text in r.getMessage() for r in caplog.records), (
            text,
            caplog.messages,
        )
    errors = any(v == ERROR for v in kind.expect.values())
    alarm = bool(kind.expect[T0]) and kind.expect[T0] != ERROR
    findings = any(kind.expect[c] for c in (T1, T2, T3) if kind.expect[c] != ERROR)
    assert report.exit_code() == (3 if errors else 2 if alarm else 1 if findings else 0)


@pytest.mark.parametrize("kind", [pytest.param(k, id=k.name) for k in KINDS])
def test_malformed_kind(kind: Kind, shared_gx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(shared_gx))
    settings = Settings.from_env()
    load(settings, kind.data())
    check_outcome(settings, kind)


def test_catalogue_has_at_least_54_kinds() -> None:
    names = [k.name for k in KINDS] + [k.name for k, _ in WAREHOUSE_KINDS] + list(SERVER_KINDS)
    assert len(names) >= 54
    assert len(set(names)) == len(names)


# --- kinds that need the real servers: mixed-case schema names -------------------------------

SERVER_KINDS = (
    "mixed_case_mariadb_source_schema",
    "mixed_case_warehouse_schema_folds",
    "test1_times_postgres_redshift",
)


def test_mixed_case_mariadb_source_schema(schemas, pg_warehouse, shared_gx, monkeypatch) -> None:
    """A real mixed-case MariaDB database (``Rel_SrcUp``): used as configured, not lower-cased.

    Its empty lower-case twin exists too: reading that one would be an error (no tables).
    """
    name = f"Rel_SrcUp_{schemas.source[-8:]}"
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_URL", MARIA_URL)
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_SCHEMA", name)
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(shared_gx))
    settings = Settings.from_env()
    assert settings.source_schema == name
    admin = sa.create_engine(MARIA_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name.lower()}`"))
    try:
        kind = Kind("mixed_case", lambda: Data().consistent(1).extracted(1).extracted(2, raw=False), expect())
        kind.expect[T0] = ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"]
        load(settings, kind.data())
        check_outcome(settings, kind)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name.lower()}`"))
        admin.dispose()


def test_mixed_case_warehouse_schema_folds(schemas, warehouse, shared_gx, monkeypatch) -> None:
    """``SP_...`` means sp_..., as on Redshift (which folds identifiers, quoted or not)."""
    monkeypatch.setenv("ORDER_TRACKING_MART_SCHEMA", schemas.mart.upper())
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(shared_gx))
    settings = Settings.from_env()
    assert settings.mart_schema == schemas.mart
    kind = Kind(
        "mixed_case_wh", lambda: Data().add("mart_uti", order_id=1, update_time=IN), expect(t2=[1], t3=[1])
    )
    load(settings, kind.data())
    check_outcome(settings, kind)


def test_test1_times_in_both_warehouse_dialects(warehouse, shared_gx, monkeypatch) -> None:
    """Sub-second, negative, epoch and all-NULL cases on PostgreSQL and through the Redshift twin."""
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(shared_gx))
    cases = {k.name: k for k in KINDS}
    names = (
        "subsecond_mismatch",
        "negative_one_microsecond_mismatch",
        "epoch_pathtime",
        "all_pathtimes_null",
    )
    data = Data()
    for name in names:
        for table, rows in cases[name].data().rows.items():
            data.rows.setdefault(table, []).extend(rows)
    ids = sorted(i for n in names for i in cases[n].expect[T1])
    kind = Kind(
        "test1_times",
        lambda: data,
        expect(t1=ids),
        notes={i: t for n in names for i, t in cases[n].notes.items()},
    )
    settings = Settings.from_env()
    load(settings, kind.data())
    check_outcome(settings, kind)


# --- kinds that need a real warehouse: values and types SQLite has not (issue 28) ------------
# Each runs on PostgreSQL and, unless PostgreSQL alone can hold the value, through the Redshift
# twin (and on SQLite where it means the same there). One bad value must cost one finding, never
# the check: the other orders' findings of the same check are written too.


def _spath_sql(*values: str) -> list[str]:
    return ['INSERT INTO "{mart}".mart_uni_tracking_spath (order_id, pathtime) VALUES ' + ", ".join(values)]


def _infinite_pathtimes() -> Data:
    d = Data(sql=_spath_sql("(50, 'infinity')", "(51, '-infinity')"))
    for order_id in (50, 51, 52):
        d.add("mart_uti", order_id=order_id, update_time=IN).add("mart_ecs", order_id=order_id, add_time=IN)
    return d.add("mart_uts", order_id=52, pathtime=IN - timedelta(seconds=5))


def _pathtime_in_year_294276() -> Data:
    d = Data(sql=_spath_sql("(53, '294276-01-01 00:00:00')"))
    for order_id in (53, 54):
        d.add("mart_uti", order_id=order_id, update_time=IN).add("mart_ecs", order_id=order_id, add_time=IN)
    return d.add("mart_uts", order_id=54, pathtime=IN - timedelta(seconds=5))


def _text_order_id_hist_spath() -> Data:
    d = Data().add("mart_uti", order_id=55, update_time=IN).add("mart_ecs", order_id=55, add_time=IN)
    d.sql += [
        'CREATE TABLE "{mart}".hist_uni_tracking_spath_2027_h1 (order_id VARCHAR(32), pathtime TIMESTAMP)',
        "INSERT INTO \"{mart}\".hist_uni_tracking_spath_2027_h1 VALUES ('x55', '2026-01-01 00:00:00')",
    ]
    return d


def _text_order_id_hist_ecs() -> Data:
    d = Data().add("mart_uti", order_id=56, update_time=IN).add("mart_uts", order_id=56, pathtime=IN)
    d.sql.append(
        'CREATE TABLE "{mart}".hist_ecs_order_info_2027_h1 '
        "(order_id VARCHAR(32), partner_id INTEGER, add_time TIMESTAMP)"
    )
    return d


def _date_typed_pathtime() -> Data:
    d = Data(
        sql=[
            'DROP TABLE "{mart}".mart_uni_tracking_spath',
            'CREATE TABLE "{mart}".mart_uni_tracking_spath (order_id BIGINT, pathtime DATE)',
            *_spath_sql("(57, '2026-11-25')", "(58, '2026-11-25')"),
        ]
    )
    d.add("mart_uti", order_id=57, update_time=IN).add(
        "mart_uti", order_id=58, update_time=datetime(2026, 11, 25)
    )
    return d.add("mart_ecs", order_id=57, add_time=IN).add("mart_ecs", order_id=58, add_time=IN)


def _date_typed_update_time() -> Data:
    # Order 59 agrees (its day's midnight); order 63 has no spath and no ecs.
    d = Data(
        sql=[
            'DROP TABLE "{mart}".mart_uni_tracking_info',
            'CREATE TABLE "{mart}".mart_uni_tracking_info (order_id BIGINT, update_time DATE)',
            "INSERT INTO \"{mart}\".mart_uni_tracking_info VALUES (59, '2026-11-25'), (63, '2026-11-25')",
        ]
    )
    return d.add("mart_uts", order_id=59, pathtime=datetime(2026, 11, 25)).add("mart_ecs", order_id=59)


BOTH = ("postgresql", "redshift")
WAREHOUSE_KINDS: list[tuple[Kind, tuple[str, ...]]] = [
    (
        Kind(
            "infinite_pathtimes",
            _infinite_pathtimes,
            expect(t1=[50, 51, 52]),
            notes={50: "max_pathtime=infinity: ", 51: "max_pathtime=-infinity: ", 52: "diff=5s"},
            why="'infinity' is a PostgreSQL timestamp (Redshift has none): flagged, with the value "
            "as text, instead of 'cannot subtract infinite timestamps' losing Test 1",
        ),
        ("postgresql",),
    ),
    (
        Kind(
            "pathtime_in_year_294276",
            _pathtime_in_year_294276,
            expect(t1=[53, 54]),
            notes={53: "max_pathtime=294276-01-01 00:00:00", 54: "diff=5s"},
            why="a timestamp the warehouse holds and Python cannot (year > 9999): flagged with the "
            "value as text, not 'year 294276 is out of range'",
        ),
        ("sqlite", *BOTH),
    ),
    (
        Kind(
            "text_order_id_in_hist_spath_table",
            _text_order_id_hist_spath,
            expect(t2=[55]),
            warnings=("hist_uni_tracking_spath_2027_h1", "character varying(32)"),
            why="skipped with a warning naming the table and the type, as a table without order_id "
            "is; not 'operator does not exist: text = bigint' losing Test 2",
        ),
        BOTH,
    ),
    (
        Kind(
            "text_order_id_in_hist_ecs_table",
            _text_order_id_hist_ecs,
            expect(t3=[56]),
            notes={56: "found in none"},
            warnings=("hist_ecs_order_info_2027_h1", "character varying(32)"),
            why="the same for Test 3's history lookup",
        ),
        BOTH,
    ),
    (
        Kind(
            "date_typed_pathtime_column",
            _date_typed_pathtime,
            expect(t1=[57]),
            notes={57: "max_pathtime=2026-11-25 diff=3600s"},
            why="a DATE pathtime compares as midnight; the sample holds it as text, not "
            "'date.isoformat() takes no keyword arguments'",
        ),
        BOTH,
    ),
    (
        Kind(
            "date_typed_update_time_column",
            _date_typed_update_time,
            expect(t2=[63], t3=[63]),
            notes={63: "update_time=2026-11-25;"},
            why="the samples of Tests 2 and 3 carry the DATE as '2026-11-25'",
        ),
        BOTH,
    ),
]


@pytest.mark.parametrize(
    ("kind", "dialect"),
    [pytest.param(k, d, id=f"{k.name}-{d}") for k, dialects in WAREHOUSE_KINDS for d in dialects],
)
def test_malformed_kind_in_the_warehouse(
    kind: Kind,
    dialect: str,
    request: pytest.FixtureRequest,
    shared_gx: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if dialect != "sqlite":  # the embedded SQLite warehouse is the default (conftest._clean_env)
        request.getfixturevalue("pg_warehouse" if dialect == "postgresql" else "redshift_warehouse")
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(shared_gx))
    settings = Settings.from_env()
    load(settings, kind.data())
    with caplog.at_level(logging.WARNING):
        check_outcome(settings, kind, caplog)
