"""Settings, engines, schema and init-db on the three real backends; Redshift DDL as text."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from order_tracking import db, schema
from order_tracking.errors import UserError
from order_tracking.settings import Settings
from tests import redshift_twin
from tests.conftest import MARIA_URL, PG_URL, run_cli


def test_settings_defaults_and_spec_constants(monkeypatch):
    from order_tracking import settings as s

    assert (s.DQ_LOOKBACK_HOURS, s.EXTRACTION_WINDOW_SECS, s.EXTRACTION_BUFFER_SECS) == (24, 7200, 300)
    assert s.HIST_UTS_TABLES is None  # discovery by name unless overridden
    monkeypatch.delenv("ORDER_TRACKING_WAREHOUSE_URL")
    cfg = Settings.from_env()
    assert cfg.warehouse_url.endswith("/.local/warehouse.db")
    assert (cfg.source_schema, cfg.mart_schema, cfg.ods_schema) == (
        "kuaisong",
        "settlement_public",
        "settlement_ods",
    )
    monkeypatch.setenv(
        "ORDER_TRACKING_HIST_UTS_TABLES", "hist_uni_tracking_spath_2025_h2, hist_uni_tracking_spath_2026_h1"
    )
    assert Settings.from_env().hist_uts_tables == (
        "hist_uni_tracking_spath_2025_h2",
        "hist_uni_tracking_spath_2026_h1",
    )


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ORDER_TRACKING_MART_SCHEMA", "drop table;", "ORDER_TRACKING_MART_SCHEMA"),
        ("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "a day", "ORDER_TRACKING_DQ_LOOKBACK_HOURS"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=fragment):
        Settings.from_env()


def test_plain_driver_names_use_the_pinned_drivers():
    assert db.parse_url("postgresql://u@h/d", "warehouse").drivername == "postgresql+psycopg2"
    assert db.parse_url("mysql://u@h/d", "source").drivername == "mysql+pymysql"
    assert db.parse_url("redshift://u@h:5439/d", "warehouse").drivername == "redshift+psycopg2"


def test_redact_never_shows_the_password():
    assert "p@ss" not in db.redact("postgresql://bob:p%40ss@h/d")
    assert "hunter2" not in db.redact("weird://bob:hunter2@host/x?%%%")


def test_sqlite_schemas_are_attached_files(tmp_path: Path):
    engine = db.create_engine(f"sqlite:///{tmp_path / 'w.db'}", ["settlement_public", "settlement_ods"])
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE settlement_public.t (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO settlement_public.t VALUES (1)"))
    engine.dispose()
    assert (tmp_path / "w.settlement_public.db").stat().st_size > 0
    # A second engine (as GX makes from the URL string) sees the same schema.
    url = db.with_schemas(f"sqlite:///{tmp_path / 'w.db'}", ["settlement_public"]).render_as_string(False)
    other = sa.create_engine(url)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT x FROM settlement_public.t")).scalar_one() == 1
    other.dispose()


def _init(*extra: str):
    return run_cli("init-db", "--with-pipeline-tables", *extra)


def _backend_cases():
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres-warehouse-mariadb-source"),
        pytest.param("redshift", id="redshift-twin-warehouse-mariadb-source"),
    ]


@pytest.mark.parametrize("backend", _backend_cases())
def test_init_db_creates_everything_idempotently_and_never_drops(backend, request, schemas):
    if backend in ("postgres", "redshift"):
        request.getfixturevalue("pg_warehouse" if backend == "postgres" else "redshift_warehouse")
        request.getfixturevalue("maria_source")
    else:
        request.getfixturevalue("sqlite_urls")
    first = _init()
    assert first.returncode == 0, first.stderr
    created = [line.split()[-1] for line in first.stdout.splitlines() if line.startswith("created")]
    assert f"{schemas.ods}.order_tracking_exceptions" in created
    assert f"{schemas.mart}.mart_ecs_order_info" in created
    assert f"{schemas.source}.uni_tracking_spath" in created
    assert len(created) == 11

    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    with engine.begin() as conn:
        conn.execute(tables.mart_uti.insert().values(order_id=1, update_time=datetime(2026, 1, 1)))
    second = _init()
    assert second.returncode == 0
    assert "created" not in second.stdout and second.stdout.count("exists") == 11
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.mart_uti)).scalar_one() == 1
    engine.dispose()


def test_without_flag_init_db_creates_only_our_tables(warehouse, schemas):
    proc = run_cli("init-db")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "created",
        f"{schemas.ods}.order_tracking_exceptions",
        "created",
        f"{schemas.ods}.order_tracking_maintenance_log",
    ]
    engine = sa.create_engine(PG_URL)
    names = sa.inspect(engine).get_table_names(schema=schemas.mart)
    engine.dispose()
    assert names == []  # the pipeline's tables are not ours to create in production


def test_mariadb_source_columns_and_indexes(maria_source, schemas):
    settings = Settings.from_env()
    report = schema.create_tables(
        db.create_engine(settings.source_url, [settings.source_schema]),
        schema.build_tables(settings).source_tables,
    )
    assert all(created for _, created in report)
    engine = sa.create_engine(MARIA_URL)
    insp = sa.inspect(engine)
    cols = [c["name"] for c in insp.get_columns("uni_tracking_spath", schema=schemas.source)]
    indexed = {
        tuple(i["column_names"]) for i in insp.get_indexes("uni_tracking_spath", schema=schemas.source)
    }
    engine.dispose()
    assert cols == ["id", "order_id", "pathTime"]
    assert ("order_id", "pathTime") in indexed and ("pathTime",) in indexed


def test_open_exception_uniqueness_is_enforced_where_the_backend_can(pg_warehouse):
    settings = Settings.from_env()
    tables = schema.build_tables(settings)
    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    schema.create_tables(engine, tables.ods_tables)
    row = {
        "order_id": 5,
        "exception_type": "ORDER_MISSING_SPATH",
        "detected_at": sa.func.now(),
        "last_seen_at": sa.func.now(),
    }
    with engine.begin() as conn:
        conn.execute(tables.exceptions.insert().values(**row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(tables.exceptions.insert().values(**row))
    with engine.begin() as conn:  # a resolved one does not block a new open one
        conn.execute(tables.exceptions.update().values(resolved_at=sa.func.now()))
        conn.execute(tables.exceptions.insert().values(**row))
    engine.dispose()


def test_redshift_ddl_text():
    tables = schema.build_tables(Settings.from_env())
    ddl = dict(
        zip(
            ("exceptions", "ecs", "uti", "uts"),
            [
                s
                for s in schema.redshift_ddl(
                    [tables.exceptions, tables.mart_ecs, tables.mart_uti, tables.mart_uts]
                )
                if s.startswith("CREATE TABLE")
            ],
            strict=True,
        )
    )
    assert ddl["ecs"] == (
        "CREATE TABLE settlement_public.mart_ecs_order_info (\n"
        "\torder_id BIGINT NOT NULL, \n"
        "\tpartner_id INTEGER, \n"
        "\tadd_time TIMESTAMP WITHOUT TIME ZONE\n"
        ") DISTSTYLE KEY DISTKEY (order_id) SORTKEY (partner_id, add_time, order_id)"
    )
    assert "exception_id BIGINT IDENTITY(1,1) NOT NULL" in ddl["exceptions"]
    assert ddl["exceptions"].endswith(
        "DISTSTYLE KEY DISTKEY (order_id) SORTKEY (exception_type, detected_at)"
    )
    assert ddl["uti"].endswith("SORTKEY (update_time, order_id)")
    assert ddl["uts"].endswith("SORTKEY (order_id, pathtime)")
    assert all("INDEX" not in text for text in ddl.values())  # Redshift has none


def test_print_redshift_ddl_is_exactly_what_init_db_sends_to_redshift(redshift_warehouse, twin_recording):
    printed = run_cli("init-db", "--with-pipeline-tables", "--print-redshift-ddl")
    assert printed.returncode == 0, printed.stderr
    recording = twin_recording("init-db")
    proc = run_cli("init-db", "--with-pipeline-tables")
    assert proc.returncode == 0, proc.stderr
    sent = [
        r["sql"].strip()
        for r in redshift_twin.read_recording(recording)
        if r["sql"].lstrip().startswith("CREATE")
    ]
    assert sent  # the warehouse DDL went through the twin
    assert printed.stdout.strip() == ";\n\n".join(sent) + ";"
    assert not any("INDEX" in s for s in sent)


def test_print_redshift_ddl_connects_to_nothing():
    proc = run_cli("--warehouse-url", "postgresql://u:pw@127.0.0.1:1/x", "init-db", "--print-redshift-ddl")
    assert proc.returncode == 0, proc.stderr
    assert "CREATE TABLE settlement_ods.order_tracking_exceptions" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--warehouse-url", "nonsense", "init-db"], "warehouse URL is not a valid SQLAlchemy URL"),
        (
            ["--warehouse-url", "postgresql://bob:s3cret@127.0.0.1:1/x", "init-db"],
            "cannot connect to warehouse",
        ),
        (["--warehouse-url", "oracle+nope://bob:s3cret@h/x", "init-db"], "cannot be used"),
        (["init-db", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_exit_3_no_password(args, fragment):
    proc = run_cli(*args)
    assert proc.returncode == 3
    assert fragment in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_help_everywhere():
    for cmd in ([], ["init-db"], ["seed"], ["monitor"], ["exceptions"], ["resolve"], ["vacuum"]):
        proc = run_cli(*cmd, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, cmd
