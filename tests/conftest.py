"""Shared fixtures: real PostgreSQL and MariaDB on localhost, real SQLite files.

Every test that touches a server gets schemas of its own (random suffix) through the
``ORDER_TRACKING_*_SCHEMA`` variables, and they are dropped afterwards, so tests can run in any
order and a failed run leaves nothing that breaks the next one.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tests import redshift_twin

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TWIN_URL = redshift_twin.twin_url(PG_URL)  # the redshift dialect against PG_URL, guarded
MARIA_URL = os.environ.get("TEST_MARIA_URL", "mysql+pymysql://root@127.0.0.1:3306")

_ENV_KEYS = [k for k in os.environ if k.startswith("ORDER_TRACKING_")]

# One Fernet key for this test process and every Airflow CLI child it starts: the first test that
# makes Airflow build a Connection caches the key (airflow.models.crypto.get_fernet), and
# connections `airflow-setup` stores encrypted must read back with it.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's own ORDER_TRACKING_* settings or the demo's .local files."""
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_URL", f"sqlite:///{tmp_path / 'source.db'}")


@dataclass
class Schemas:
    source: str
    mart: str
    ods: str


@pytest.fixture
def schemas(monkeypatch: pytest.MonkeyPatch) -> Schemas:
    suffix = uuid.uuid4().hex[:8]
    s = Schemas(source=f"ks_{suffix}", mart=f"sp_{suffix}", ods=f"so_{suffix}")
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_SCHEMA", s.source)
    monkeypatch.setenv("ORDER_TRACKING_MART_SCHEMA", s.mart)
    monkeypatch.setenv("ORDER_TRACKING_ODS_SCHEMA", s.ods)
    return s


def _drop_warehouse_schemas(schemas: Schemas) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        for name in (schemas.mart, schemas.ods):
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_warehouse(schemas: Schemas, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PostgreSQL as the warehouse, in schemas of this test's own."""
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", PG_URL)
    yield PG_URL
    _drop_warehouse_schemas(schemas)


@contextmanager
def _own_database(monkeypatch: pytest.MonkeyPatch, twin: bool) -> Iterator[str]:
    """A PostgreSQL database of this test's own as the warehouse (plain or through the twin).

    VACUUM cannot remove rows that a transaction older than their deletion may still see, and
    PostgreSQL's horizon counts every session in the same database: with other test runs on the
    shared database ``test``, "dead rows reclaimed" would depend on them. Sessions in other
    databases do not hold it back.
    """
    name = f"own_warehouse_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    if twin:
        redshift_twin.ensure_stand_ins(url)
        for key, value in redshift_twin.child_env().items():
            monkeypatch.setenv(key, value)
        url = redshift_twin.twin_url(url)
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def own_pg(schemas, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with _own_database(monkeypatch, twin=False) as url:
        yield url


@pytest.fixture
def own_twin(schemas, monkeypatch: pytest.MonkeyPatch, _twin_stand_ins) -> Iterator[str]:
    with _own_database(monkeypatch, twin=True) as url:
        yield url


@pytest.fixture(scope="session")
def _twin_stand_ins() -> None:
    """svv_table_info, sys_vacuum_history and DATEDIFF for the twin (tests/redshift_twin.py)."""
    redshift_twin.ensure_stand_ins(PG_URL)


@pytest.fixture
def redshift_warehouse(schemas: Schemas, monkeypatch: pytest.MonkeyPatch, _twin_stand_ins) -> Iterator[str]:
    """The Redshift twin as the warehouse: the redshift dialect against the local PostgreSQL, every
    statement checked by the guard (this process and ``run_cli`` children), in this test's schemas."""
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", TWIN_URL)
    for key, value in redshift_twin.child_env().items():
        monkeypatch.setenv(key, value)
    yield TWIN_URL
    _drop_warehouse_schemas(schemas)


@pytest.fixture(params=["postgresql", "redshift"])
def warehouse(request: pytest.FixtureRequest) -> str:
    """The warehouse in both dialects: ``pg_warehouse``, then ``redshift_warehouse``; yields the URL."""
    return request.getfixturevalue("pg_warehouse" if request.param == "postgresql" else "redshift_warehouse")


@pytest.fixture
def twin_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``record(name)``: from now on every twin statement (this process and children) goes to
    ``<tmp>/<name>.jsonl``; returns the path. Read it with ``redshift_twin.read_recording``."""

    def record(name: str) -> Path:
        path = tmp_path / f"{name}.jsonl"
        monkeypatch.setenv(redshift_twin.RECORD_ENV, str(path))
        return path

    return record


@pytest.fixture
def maria_source(schemas: Schemas, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MariaDB as the MySQL source, in a database of this test's own."""
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_URL", MARIA_URL)
    yield MARIA_URL
    engine = sa.create_engine(MARIA_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{schemas.source}`"))
    engine.dispose()


@pytest.fixture
def sqlite_urls(tmp_path: Path) -> tuple[str, str]:
    """The embedded default, in this test's tmp dir (set by ``_clean_env``)."""
    return (os.environ["ORDER_TRACKING_WAREHOUSE_URL"], os.environ["ORDER_TRACKING_SOURCE_URL"])


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m order_tracking`` as a user would, in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "order_tracking", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def gx_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The committed GX project copied to tmp, so Data Docs written by the runs stay there."""
    target = tmp_path / "project" / "gx"
    shutil.copytree(ROOT / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("ORDER_TRACKING_GX_ROOT", str(target))
    return target


def seed_dataset(config):
    """Seed the configured warehouse (and source unless skipped) and return the manifest."""
    from order_tracking import db, synthetic
    from order_tracking.settings import Settings

    settings = Settings.from_env()
    # Seeding refuses Redshift by design; the twin's data goes in through plain PostgreSQL.
    wh_url = settings.warehouse_url
    if redshift_twin.is_twin_url(wh_url):
        wh_url = redshift_twin.postgres_url(wh_url)
    wh = db.create_engine(wh_url, settings.warehouse_schemas)
    src = None if config.skip_source else db.create_engine(settings.source_url, [settings.source_schema])
    try:
        manifest = synthetic.seed(settings, config, wh, src)
    finally:
        wh.dispose()
        if src is not None:
            src.dispose()
    return settings, manifest


class SmtpSink:
    """What a real SMTP server on localhost received: ``{"to": [...], "data": "<message>"}``."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf-8", "replace")}
        )
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on a free localhost port (port=0 would break its start-up self-check)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = SmtpSink()
    sink.port = port
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


def exception_rows(settings) -> list[tuple]:
    """Every row of the exceptions table, oldest first (an independent read for assertions)."""
    from order_tracking import db, schema

    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    ex = schema.build_tables(settings).exceptions
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(ex).order_by(ex.c.exception_id))]
    engine.dispose()
    return rows


def resolve_orders(settings, exception_type: str, order_ids: list[int]) -> int:
    """Close the open exceptions of ``order_ids`` as a person would after a fix (the store's API)."""
    from order_tracking import db, schema
    from order_tracking.checks import exceptions_store

    engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas)
    try:
        return exceptions_store.resolve(
            engine,
            schema.build_tables(settings),
            order_ids=order_ids,
            exception_type=exception_type,
            all_of_type=False,
            by="tester",
            notes="backfilled",
        )
    finally:
        engine.dispose()
