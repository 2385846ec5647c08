"""The Redshift twin itself: every guard entry refuses, allowed Redshift SQL passes, the shims work,
and the guard is active in child processes (tests/redshift_twin.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests import redshift_twin as twin
from tests.conftest import PG_URL, ROOT, TWIN_URL


@pytest.fixture(scope="module")
def twin_engine() -> Iterator[sa.Engine]:
    twin.ensure_stand_ins(PG_URL)
    engine = sa.create_engine(TWIN_URL)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("rule", twin.RULES, ids=[r.construct for r in twin.RULES])
def test_every_guard_entry_is_refused_with_the_construct_and_the_guide_page(twin_engine, rule) -> None:
    assert twin.refusal(rule.example) is rule
    with pytest.raises(sa.exc.NotSupportedError) as caught, twin_engine.connect() as conn:
        conn.exec_driver_sql(rule.example)
    text = str(caught.value.orig)
    assert rule.construct in text
    assert rule.page[1] in text and rule.page[1].startswith("https://docs.aws.amazon.com/redshift/")
    assert "Amazon Redshift Database Developer Guide" in text


@pytest.mark.parametrize("sql", twin.ALLOWED_EXAMPLES)
def test_redshift_sql_the_product_uses_is_allowed(sql: str) -> None:
    assert twin.refusal(sql) is None


def test_a_catalog_query_that_also_reads_a_user_table_is_guarded() -> None:
    sql = "SELECT c.relname FROM pg_catalog.pg_class c JOIN s.t ON t.a = c.oid WHERE c.oid = ANY (ARRAY[1])"
    assert twin.refusal(sql).construct == "array types and constructors"


def test_the_guide_pages_are_the_ones_the_issue_names() -> None:
    titles = {r.page[0] for r in twin.RULES}
    assert {"Unsupported PostgreSQL features", "Unsupported PostgreSQL functions"} <= titles


@pytest.mark.usefixtures("redshift_warehouse")  # drops the test's schemas afterwards
def test_shims_datediff_identity_distkey_vacuum_and_stand_ins(twin_engine, schemas) -> None:
    s = schemas.mart
    with twin_engine.begin() as conn:
        # Redshift counts unit boundaries crossed, not elapsed whole units.
        assert (
            conn.execute(
                sa.text("SELECT DATEDIFF(second, :a, :b)").bindparams(
                    sa.bindparam("a", datetime(2026, 1, 1, 0, 0, 0, 900000), sa.DateTime),
                    sa.bindparam("b", datetime(2026, 1, 1, 0, 0, 1, 100000), sa.DateTime),
                )
            ).scalar_one()
            == 1
        )
        conn.exec_driver_sql(f"CREATE SCHEMA {s}")
        conn.exec_driver_sql(
            f"CREATE TABLE {s}.t (id BIGINT IDENTITY(1,1) NOT NULL, a INTEGER ENCODE az64, PRIMARY KEY (id)) "
            "DISTSTYLE KEY DISTKEY (a) COMPOUND SORTKEY (a, id)"
        )
        conn.exec_driver_sql(f"INSERT INTO {s}.t (a) VALUES (1), (2)")
        assert conn.exec_driver_sql(f"SELECT max(id) FROM {s}.t").scalar_one() == 2
        conn.exec_driver_sql(f"DELETE FROM {s}.t WHERE a = 1")
    with twin_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM DELETE ONLY {s}.t")
        conn.exec_driver_sql(f"VACUUM SORT ONLY {s}.t TO 100 PERCENT")
    with twin_engine.connect() as conn:
        info = conn.execute(
            sa.text('SELECT tbl_rows, size FROM svv_table_info WHERE schema = :s AND "table" = :t'),
            {"s": s, "t": "t"},
        ).one()
        history = conn.execute(
            sa.text(
                "SELECT vacuum_type, status, is_automatic FROM sys_vacuum_history WHERE schema_name = :s "
                "ORDER BY start_time, vacuum_type"
            ),
            {"s": s},
        ).all()
        assert sa.inspect(conn).has_table("t", schema=s)  # the dialect's own catalog query
        assert sa.inspect(conn).get_table_names(schema=s) == ["t"]
    assert info.size >= 1
    assert history == [("Delete", "Complete", False), ("Sort", "Complete", False)]


@pytest.mark.usefixtures("redshift_warehouse")
def test_varchar_length_counts_bytes_as_on_redshift(twin_engine, schemas) -> None:
    s = schemas.mart
    with twin_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {s}")
        conn.exec_driver_sql(f"CREATE TABLE {s}.v (\n\tnote VARCHAR(4), \n\tother INTEGER\n)")
        conn.execute(sa.text(f"INSERT INTO {s}.v (note) VALUES (:n)"), {"n": "abcd"})  # 4 bytes
    with pytest.raises(sa.exc.IntegrityError, match="note_varchar_bytes"), twin_engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {s}.v (note) VALUES (:n)"), {"n": "ééé"})  # 3 chars, 6 bytes
    # temporary tables too (the staged exceptions write makes one)
    with pytest.raises(sa.exc.IntegrityError, match="notes_varchar_bytes"), twin_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TEMPORARY TABLE staged (\n\tnotes VARCHAR(4)\n)")
        conn.execute(sa.text("INSERT INTO staged (notes) VALUES (:n)"), {"n": "ééé"})
    # and the VARCHAR(n) columns a CREATE TABLE ... AS makes
    with pytest.raises(sa.exc.IntegrityError, match="note_varchar_bytes"), twin_engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE copied AS SELECT CAST(note AS VARCHAR(4)) AS note FROM {s}.v"
        )
        assert conn.exec_driver_sql("SELECT note FROM copied").scalar_one() == "abcd"
        conn.execute(sa.text("INSERT INTO copied (note) VALUES (:n)"), {"n": "ééé"})


def test_recording_keeps_every_statement_as_sent(twin_engine, twin_recording) -> None:
    path = twin_recording("probe")
    with twin_engine.connect() as conn:
        conn.exec_driver_sql("SELECT DATEDIFF(second, now()::timestamp, now()::timestamp)")
        with pytest.raises(sa.exc.NotSupportedError):
            conn.exec_driver_sql("SELECT nextval('x')")
    records = twin.read_recording(path)
    assert [r["sql"] for r in records][-2:] == [
        "SELECT DATEDIFF(second, now()::timestamp, now()::timestamp)",  # before the shim
        "SELECT nextval('x')",
    ]
    assert records[-1]["refused"] == "sequence functions nextval/currval/setval/lastval"


def test_child_processes_are_guarded(redshift_warehouse: str) -> None:
    code = (
        "import sqlalchemy as sa\n"
        "from order_tracking import db\n"
        f"e = db.create_engine({redshift_warehouse!r})\n"
        "with e.connect() as c:\n"
        "    c.exec_driver_sql('CREATE INDEX ix ON public.nothing (a)')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Redshift does not support CREATE INDEX" in proc.stderr
    assert "c_unsupported-postgresql-features.html" in proc.stderr
    assert str(ROOT) in os.environ["PYTHONPATH"]
