"""``resolve``: --by and --notes are measured in UTF-8 bytes, as Redshift's VARCHAR(n) counts them.

In both dialects (PostgreSQL, the Redshift twin). PostgreSQL's VARCHAR counts characters, so these
values would be stored: the check must come from the code, not from the database.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.checks import exceptions_store as store
from order_tracking.errors import UserError
from order_tracking.settings import UTI_UTS_TIME_MISMATCH, Settings
from tests.conftest import PG_URL, run_cli

T0 = datetime(2026, 1, 10, 3, 0, 0)


@pytest.fixture
def one_open(warehouse):
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.ods_tables)
    row = {"order_id": 11, "exception_type": UTI_UTS_TIME_MISMATCH, "detected_at": T0, "last_seen_at": T0}
    with sa.create_engine(PG_URL).begin() as conn:  # setup on plain PostgreSQL
        conn.execute(tables.exceptions.insert(), [row])
    yield engine, tables
    engine.dispose()


def _open_rows(engine, tables) -> int:
    ex = tables.exceptions
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(ex.c.resolved_at.is_(None))).scalar_one()


@pytest.mark.parametrize(
    ("by", "notes", "message"),
    [
        ("é" * 65, "fixed", "--by is 130 bytes long in UTF-8 (65 characters); at most 128 bytes"),
        ("ana", "€" * 342, "--notes is 1026 bytes long in UTF-8 (342 characters); at most 1024 bytes"),
    ],
    ids=["by", "notes"],
)
def test_resolve_counts_bytes_not_characters(one_open, by, notes, message):
    engine, tables = one_open
    with pytest.raises(UserError) as err:
        store.resolve(engine, tables, order_ids=[11], exception_type=UTI_UTS_TIME_MISMATCH,
                      all_of_type=False, by=by, notes=notes)  # fmt: skip
    assert message in str(err.value)
    assert _open_rows(engine, tables) == 1

    res = run_cli(
        "resolve", "--order-id", "11", "--type", UTI_UTS_TIME_MISMATCH, "--by", by, "--notes", notes
    )
    assert res.returncode == 3 and message in res.stderr
    assert _open_rows(engine, tables) == 1


def test_resolve_accepts_values_that_fit_in_bytes(one_open):
    engine, tables = one_open
    closed = store.resolve(engine, tables, order_ids=[11], exception_type=UTI_UTS_TIME_MISMATCH,
                           all_of_type=False, by="é" * 64, notes="€" * 341)  # fmt: skip
    assert closed == 1 and _open_rows(engine, tables) == 0
