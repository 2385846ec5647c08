"""repair-reactivated: move a reactivated order's row from history into mart_ecs_order_info.

The warehouse is PostgreSQL and the Redshift twin (each test in schemas of its own); one test runs
the same path on the embedded SQLite warehouse; the Redshift lock/retry path also runs against a
fake connection that raises error 1023.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

from order_tracking import db, schema
from order_tracking.errors import UserError
from order_tracking.fixes import repair_reactivated as repair
from order_tracking.settings import REACTIVATED_ORDER_MISSING_ECS, UTI_UTS_TIME_MISMATCH, Settings
from tests.conftest import PG_URL, run_cli
from tests.fake_redshift import FakePgError, FakeRedshift

NOW = datetime(2026, 11, 25, 3, 0, 0)
T0 = datetime(2025, 8, 1, 10, 0, 0)
T1 = datetime(2026, 2, 1, 10, 0, 0)

# order 10: the one to repair (2025_h2); 20: repairable too (2026_h1); 1: already in mart;
# 30: in two history tables; 40: twice in one; 99: nowhere; 50: no open exception.
MART_ROWS = [{"order_id": 1, "partner_id": 7, "add_time": T0}]
H2_2025_ROWS = [
    {"order_id": 10, "partner_id": 5, "add_time": T0},
    {"order_id": 30, "partner_id": 5, "add_time": T0},
    {"order_id": 40, "partner_id": 5, "add_time": T0},
    {"order_id": 40, "partner_id": 6, "add_time": T0},
]
H1_2026_ROWS = [
    {"order_id": 20, "partner_id": 8, "add_time": T1},
    {"order_id": 30, "partner_id": 8, "add_time": T1},
    {"order_id": 50, "partner_id": 9, "add_time": T1},  # repairable, but nobody flagged it
]


def _exc(order_id: int, type_: str, resolved: bool = False) -> dict:
    return {
        "order_id": order_id,
        "exception_type": type_,
        "detected_at": datetime(2026, 11, 20),
        "last_seen_at": datetime(2026, 11, 24),
        "notes": f"finding for {order_id}",
        "resolved_at": datetime(2026, 11, 1) if resolved else None,
        "resolved_by": "earlier" if resolved else None,
        "resolution_notes": "old fix" if resolved else None,
    }


EXCEPTION_ROWS = [
    _exc(10, REACTIVATED_ORDER_MISSING_ECS),
    _exc(10, REACTIVATED_ORDER_MISSING_ECS, resolved=True),  # history: must stay as it is
    _exc(10, UTI_UTS_TIME_MISMATCH),  # another type: must stay open
    _exc(20, REACTIVATED_ORDER_MISSING_ECS),
    _exc(30, REACTIVATED_ORDER_MISSING_ECS),
]


@pytest.fixture
def wh(warehouse):
    """Tables with the rows above, in both dialects (PostgreSQL, the Redshift twin); yields (the
    product's engine, tables, the two history tables). Setup SQL goes through ``admin()``."""
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    h2, h1 = tables.hist_ecs(2025, 2), tables.hist_ecs(2026, 1)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables + [h2, h1])
    with admin() as conn:
        conn.execute(tables.mart_ecs.insert(), MART_ROWS)
        conn.execute(h2.insert(), H2_2025_ROWS)
        conn.execute(h1.insert(), H1_2026_ROWS)
        conn.execute(tables.exceptions.insert(), EXCEPTION_ROWS)
    yield engine, tables, h2, h1
    engine.dispose()


@contextmanager
def admin() -> Iterator[sa.Connection]:
    """A transaction on plain PostgreSQL, for test setup the twin's guard would refuse (triggers,
    CHECK constraints) or that is not the product's SQL."""
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def snapshot(engine, tables, *hist) -> dict[str, list[tuple]]:
    """Every row of every table the repair can touch, in a stable order."""
    out = {}
    with engine.connect() as conn:
        for t in (tables.mart_ecs, tables.exceptions, *hist):
            out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(t)))
    return out


def test_apply_moves_exactly_one_row_and_resolves_the_exception(wh):
    engine, tables, h2, h1 = wh
    before = snapshot(engine, tables, h2, h1)

    result = repair.apply(engine, tables, 10, "alice", NOW)

    assert (result.moved, result.closed) == (1, 1)
    after = snapshot(engine, tables, h2, h1)
    assert after[tables.mart_ecs.name] == sorted(before[tables.mart_ecs.name] + [(10, 5, T0)])
    assert after[h2.name] == [r for r in before[h2.name] if r[0] != 10]
    assert after[h1.name] == before[h1.name]
    ex = tables.exceptions
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ex.c.order_id, ex.c.exception_type, ex.c.resolved_at, ex.c.resolved_by,
                      ex.c.resolution_notes).order_by(ex.c.exception_id)
        ).all()  # fmt: skip
    mart_schema = tables.settings.mart_schema
    note = f"moved order 10 from {mart_schema}.{h2.name} to {mart_schema}.mart_ecs_order_info"
    assert rows[0] == (10, REACTIVATED_ORDER_MISSING_ECS, NOW, "alice", note)
    assert rows[1][2:] == (datetime(2026, 11, 1), "earlier", "old fix")  # already resolved: untouched
    assert rows[2][2:] == (None, None, None)  # other type stays open
    assert [r[2] for r in rows[3:]] == [None, None]  # other orders stay open


def test_dry_run_prints_the_statements_and_changes_nothing(wh):
    engine, tables, h2, h1 = wh
    before = snapshot(engine, tables, h2, h1)

    proc = run_cli("repair-reactivated", "--order-id", "10", "--order-id", "20", "--by", "alice")

    assert proc.returncode == 0, proc.stderr
    mart, ods = tables.settings.mart_schema, tables.settings.ods_schema
    out = proc.stdout
    for locked in (f"{ods}.order_tracking_exceptions", f"{mart}.mart_ecs_order_info", f"{mart}.{h2.name}"):
        if engine.dialect.name == "redshift":
            assert f"\nLOCK {locked};\n" in out
        else:
            assert f"\nLOCK TABLE {locked} IN SHARE ROW EXCLUSIVE MODE;\n" in out
    assert f"INSERT INTO {mart}.mart_ecs_order_info (order_id, partner_id, add_time) SELECT" in out
    assert f"DELETE FROM {mart}.{h2.name} WHERE {mart}.{h2.name}.order_id = 10;" in out
    assert f"DELETE FROM {mart}.{h1.name} WHERE {mart}.{h1.name}.order_id = 20;" in out
    assert f"from {mart}.{h2.name} to {mart}.mart_ecs_order_info" in out
    assert "resolved_by='alice'" in out
    assert out.count("BEGIN;") == 2 and out.count("COMMIT;") == 2
    assert "dry run: nothing changed" in out
    assert snapshot(engine, tables, h2, h1) == before


def test_cli_apply_moves_each_order_in_its_own_transaction(wh):
    engine, tables, h2, h1 = wh

    proc = run_cli("repair-reactivated", "--order-id", "10", "--order-id", "20", "--by", "bob", "--apply")

    assert proc.returncode == 0, proc.stderr
    mart = tables.settings.mart_schema
    assert f"moved order 10 from {mart}.{h2.name} to {mart}.mart_ecs_order_info; closed 1 exception" in (
        proc.stdout
    )
    assert f"moved order 20 from {mart}.{h1.name}" in proc.stdout
    after = snapshot(engine, tables, h2, h1)
    assert [r[0] for r in after[tables.mart_ecs.name]] == [1, 10, 20]
    assert [r[0] for r in after[h1.name]] == [30, 50]
    ex = tables.exceptions
    with engine.connect() as conn:
        still_open = conn.execute(
            sa.select(ex.c.order_id).where(
                ex.c.exception_type == REACTIVATED_ORDER_MISSING_ECS, ex.c.resolved_at.is_(None)
            )
        ).all()
    assert still_open == [(30,)]


@pytest.mark.parametrize(
    ("order_id", "message"),
    [
        (1, "order 1 is already in {mart}.mart_ecs_order_info"),
        (99, "order 99 is in no history table ({mart}.hist_ecs_order_info_*: 2 found)"),
        (30, "order 30 has more than one history row: {mart}.hist_ecs_order_info_2025_h2 (1 row), "
             "{mart}.hist_ecs_order_info_2026_h1 (1 row)"),
        (40, "order 40 has more than one history row: {mart}.hist_ecs_order_info_2025_h2 (2 rows)"),
    ],
)  # fmt: skip
def test_refusals_change_nothing(wh, order_id, message):
    engine, tables, h2, h1 = wh
    before = snapshot(engine, tables, h2, h1)
    expected = message.format(mart=tables.settings.mart_schema)

    with pytest.raises(UserError) as err:
        repair.apply(engine, tables, order_id, "alice", NOW)
    assert expected in str(err.value)
    assert "nothing changed" in str(err.value)
    assert snapshot(engine, tables, h2, h1) == before

    # On the command line a refused order stops the whole run before any change, even for the
    # good order given first.
    proc = run_cli(
        "repair-reactivated", "--order-id", "10", "--order-id", str(order_id), "--by", "a", "--apply"
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [f"error: {err.value}"]
    assert proc.stdout == ""
    assert snapshot(engine, tables, h2, h1) == before


def _pg_trigger(table: sa.Table, body: str) -> None:
    """A BEFORE DELETE trigger on ``table`` (Core has no construct for triggers)."""
    name = f"{table.schema}.trg_{table.name}"
    with admin() as conn:
        conn.execute(sa.text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$"))
        conn.execute(
            sa.text(
                f"CREATE TRIGGER trg BEFORE DELETE ON {table.schema}.{table.name} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        )


def test_failing_delete_rolls_back_the_insert(wh):
    engine, tables, h2, h1 = wh
    _pg_trigger(h2, "BEGIN RAISE EXCEPTION 'history is read-only today'; END;")
    before = snapshot(engine, tables, h2, h1)

    with pytest.raises(sa.exc.DBAPIError, match="history is read-only today"):
        repair.apply(engine, tables, 10, "alice", NOW)
    assert snapshot(engine, tables, h2, h1) == before

    proc = run_cli("repair-reactivated", "--order-id", "10", "--by", "alice", "--apply")
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        "error: order 10: repair failed and was rolled back: history is read-only today"
    )
    assert snapshot(engine, tables, h2, h1) == before


def test_delete_that_removes_nothing_rolls_back(wh):
    # A trigger that silently skips the DELETE: the INSERT succeeded, the rowcount check must undo it.
    engine, tables, h2, h1 = wh
    _pg_trigger(h2, "BEGIN RETURN NULL; END;")
    before = snapshot(engine, tables, h2, h1)

    with pytest.raises(UserError, match=r"DELETE from .*hist_ecs_order_info_2025_h2 removed 0 rows"):
        repair.apply(engine, tables, 10, "alice", NOW)
    assert snapshot(engine, tables, h2, h1) == before


def test_failing_insert_changes_nothing(wh):
    engine, tables, h2, h1 = wh
    mart = tables.mart_ecs
    with admin() as conn:
        conn.execute(
            sa.text(f"ALTER TABLE {mart.schema}.{mart.name} ADD CONSTRAINT no_ten CHECK (order_id <> 10)")
        )
    before = snapshot(engine, tables, h2, h1)

    with pytest.raises(sa.exc.IntegrityError, match="no_ten"):
        repair.apply(engine, tables, 10, "alice", NOW)
    assert snapshot(engine, tables, h2, h1) == before


def test_apply_on_the_embedded_sqlite_warehouse(sqlite_urls):
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    h2 = tables.hist_ecs(2025, 2)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.pipeline_tables + tables.ods_tables + [h2])
    with engine.begin() as conn:
        conn.execute(h2.insert(), H2_2025_ROWS)
        conn.execute(tables.exceptions.insert(), [_exc(10, REACTIVATED_ORDER_MISSING_ECS)])

    result = repair.apply(engine, tables, 10, "carol", NOW)

    assert (result.moved, result.closed) == (1, 1)
    after = snapshot(engine, tables, h2)
    assert after[tables.mart_ecs.name] == [(10, 5, T0)]
    assert [r[0] for r in after[h2.name]] == [30, 40, 40]
    assert after[tables.exceptions.name][0][6:8] == (NOW, "carol")
    with pytest.raises(UserError, match=r"already in settlement_public\.mart_ecs_order_info"):
        repair.apply(engine, tables, 10, "carol", NOW)
    engine.dispose()


def test_statements_compiled_for_redshift():
    tables = schema.build_tables(Settings(warehouse_url="redshift://x", source_url="mysql://x"))
    hist = tables.hist_ecs(2025, 2)
    dialect = RedshiftDialect_psycopg2()
    where = repair.Location(10, hist, 1, ("order_id", "partner_id", "add_time", "carrier"))
    stmts = repair.repair_statements(tables, where, "alice", NOW)

    sql = repair.render(stmts, dialect, repair.transaction_start(dialect, tables, hist))

    h = "settlement_public.hist_ecs_order_info_2025_h2"
    assert [" ".join(s.split()) for s in sql] == [
        "BEGIN",
        "LOCK settlement_ods.order_tracking_exceptions",
        "LOCK settlement_public.mart_ecs_order_info",
        f"LOCK {h}",
        "INSERT INTO settlement_public.mart_ecs_order_info (order_id, partner_id, add_time, carrier) "
        f"SELECT {h}.order_id, {h}.partner_id, {h}.add_time, {h}.carrier FROM {h} WHERE {h}.order_id = 10",
        f"DELETE FROM {h} WHERE {h}.order_id = 10",
        "UPDATE settlement_ods.order_tracking_exceptions SET resolved_at='2026-11-25 03:00:00', "
        "resolved_by='alice', resolution_notes='moved order 10 from "
        f"{h} to settlement_public.mart_ecs_order_info' "
        "WHERE settlement_ods.order_tracking_exceptions.order_id = 10 "
        "AND settlement_ods.order_tracking_exceptions.exception_type = 'REACTIVATED_ORDER_MISSING_ECS' "
        "AND settlement_ods.order_tracking_exceptions.resolved_at IS NULL",
        "COMMIT",
    ]


def test_empty_by_is_refused(wh):
    engine, tables, _, _ = wh
    with pytest.raises(UserError, match="--by is empty"):
        repair.plan(engine, tables, [10], "  ")


def test_by_longer_than_its_column_in_bytes_is_refused(wh):
    # 65 characters, 130 bytes: PostgreSQL would store it, Redshift's VARCHAR(128) would not.
    engine, tables, _, _ = wh
    with pytest.raises(UserError, match=r"--by is 130 bytes long in UTF-8 \(65 characters\); at most 128"):
        repair.plan(engine, tables, [10], "é" * 65)
    assert repair.check_by("é" * 64) == "é" * 64


# --- every column (issue 10 item 4) -----------------------------------------------------------------


def _add_column(table: sa.Table, ddl: str) -> None:
    with admin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table.schema}.{table.name} ADD COLUMN {ddl}"))


def test_apply_copies_every_column_of_the_real_tables(wh):
    # The real mart_ecs_order_info has more columns than the three we model: all must move.
    engine, tables, h2, h1 = wh
    for table in (tables.mart_ecs, h2, h1):
        _add_column(table, "carrier VARCHAR(20)")
        _add_column(table, "weight NUMERIC(8, 2)")
    with admin() as conn:
        conn.execute(sa.text(f"UPDATE {h2.schema}.{h2.name} SET carrier = 'UNI', weight = 1.25"))

    result = repair.apply(engine, tables, 10, "alice", NOW)

    assert result.moved == 1
    mart = tables.mart_ecs
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT * FROM {mart.schema}.{mart.name} WHERE order_id = 10")).one()
    assert row._asdict() == {"order_id": 10, "partner_id": 5, "add_time": T0, "carrier": "UNI",
                             "weight": Decimal("1.25")}  # fmt: skip


@pytest.mark.parametrize(
    ("mart_ddl", "hist_ddl", "difference"),
    [
        (None, "carrier VARCHAR(20)", "only in {h}: carrier"),
        ("zone INTEGER", None, "only in {m}: zone"),
        (
            "carrier VARCHAR(10)",
            "carrier VARCHAR(20)",
            "different types: carrier (character varying(20) vs character varying(10))",
        ),
    ],
)
def test_tables_with_different_columns_are_refused(wh, mart_ddl, hist_ddl, difference):
    engine, tables, h2, h1 = wh
    if mart_ddl:
        _add_column(tables.mart_ecs, mart_ddl)
    if hist_ddl:
        _add_column(h2, hist_ddl)
    before = snapshot(engine, tables, h2, h1)
    m, h = repair.qualified(tables.mart_ecs), repair.qualified(h2)

    proc = run_cli("repair-reactivated", "--order-id", "10", "--by", "alice", "--apply")

    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        f"error: {h} and {m} do not have the same columns ({difference.format(h=h, m=m)}): "
        "copying the row would lose or change data; nothing changed"
    )
    assert snapshot(engine, tables, h2, h1) == before


# --- an order nobody flagged (issue 13 item 5) ------------------------------------------------------


def test_order_without_open_exception_is_refused_unless_forced(wh):
    engine, tables, h2, h1 = wh
    before = snapshot(engine, tables, h2, h1)
    why = (
        "order 50 has no open REACTIVATED_ORDER_MISSING_ECS exception (was the id mistyped? the "
        "monitor never flagged it, or it was resolved already); nothing changed; "
        "add --force to move it anyway"
    )
    with pytest.raises(UserError) as err:
        repair.apply(engine, tables, 50, "alice", NOW)
    assert str(err.value) == why

    proc = run_cli("repair-reactivated", "--order-id", "20", "--order-id", "50", "--by", "alice", "--apply")
    assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (3, "", f"error: {why}")
    assert snapshot(engine, tables, h2, h1) == before

    dry = run_cli("repair-reactivated", "--order-id", "50", "--by", "alice")
    assert dry.returncode == 0, dry.stderr
    assert "exception: none open (--apply refuses it without --force)" in dry.stdout

    forced = run_cli("repair-reactivated", "--order-id", "50", "--by", "alice", "--apply", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "moved order 50 from" in forced.stdout and "closed 0 exceptions" in forced.stdout
    assert 50 in [r[0] for r in snapshot(engine, tables, h2, h1)[tables.mart_ecs.name]]


# --- Redshift: locks and error 1023 (fake DB-API connection) -----------------------------------------

SERIALIZABLE_1023 = (
    "ERROR:  1023\nDETAIL:  Serializable isolation violation on table - 156362, transactions forming "
    "the cycle are: 1235, 1234 (pid:12345)"
)


def _fake_repair(errors: int):
    """A fake Redshift where order 10 sits in hist 2025_h2 and its INSERT fails ``errors`` times."""
    fake = FakeRedshift()
    tables = schema.build_tables(Settings.from_env())
    hist = tables.hist_ecs(2025, 2)
    count = "SELECT count(*) AS count_1 \nFROM "
    fake.canned += [
        (f"{count}settlement_public.mart_ecs_order_info", [{"count_1": 0}]),
        (f"{count}{repair.qualified(hist)}", [{"count_1": 1}]),
        (f"{count}settlement_ods.order_tracking_exceptions", [{"count_1": 1}]),
    ]
    fake.errors["INSERT INTO settlement_public.mart_ecs_order_info"] = [
        FakePgError(SERIALIZABLE_1023) for _ in range(errors)
    ]
    where = repair.Location(10, hist, 1, ("order_id", "partner_id", "add_time"))
    return fake, tables, where


def _transactions(fake: FakeRedshift) -> list[list[str]]:
    """The statements of each transaction the repair ran, in order (first words only)."""
    out, current = [], []
    for sql, _, _ in fake.executed:
        if sql.startswith(("LOCK", "SELECT count", "INSERT", "DELETE", "UPDATE")):
            current.append(" ".join(sql.split()[:2]) if not sql.startswith("LOCK") else sql)
        elif sql in ("-- commit", "-- rollback") and current:
            out.append([*current, sql])
            current = []
    return out


def test_redshift_locks_every_table_first_and_retries_error_1023():
    fake, tables, where = _fake_repair(errors=1)
    sleeps: list[float] = []

    result = repair.apply(fake.engine(), tables, where, "alice", NOW, sleep=sleeps.append)

    assert (result.moved, result.closed, result.attempts) == (1, 1, 2)
    assert sleeps == [repair.SERIALIZATION_RETRY.base_delay]
    locks = [
        "LOCK settlement_ods.order_tracking_exceptions",
        "LOCK settlement_public.mart_ecs_order_info",
        "LOCK settlement_public.hist_ecs_order_info_2025_h2",
    ]
    checks = ["SELECT count(*)"] * 3
    assert _transactions(fake) == [
        [*locks, *checks, "INSERT INTO", "-- rollback"],
        [*locks, *checks, "INSERT INTO", "DELETE FROM", "UPDATE settlement_ods.order_tracking_exceptions",
         "-- commit"],
    ]  # fmt: skip


def test_redshift_error_1023_is_retried_a_bounded_number_of_times():
    fake, tables, where = _fake_repair(errors=10)
    sleeps: list[float] = []

    with pytest.raises(UserError) as err:
        repair.apply(fake.engine(), tables, where, "alice", NOW, sleep=sleeps.append)

    assert str(err.value).startswith(
        "order 10: serializable isolation conflict with a concurrent transaction (Redshift error 1023) "
        "in each of 3 attempts; rolled back, nothing changed"
    )
    assert len(sleeps) == 2 and sleeps[1] == 2 * sleeps[0]
    assert [t[-1] for t in _transactions(fake)] == ["-- rollback"] * 3
    assert not [sql for sql, _, _ in fake.executed if sql.startswith(("DELETE", "UPDATE"))]
