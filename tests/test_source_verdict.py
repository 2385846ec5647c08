"""Source verdicts (issue 23 section 1): each Test 1 / Test 2 finding looked up in the MySQL source.

Real MariaDB as the source; a refusing port and a silent one for the ``unknown`` verdicts.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from order_tracking import db
from order_tracking.checks import source_verdict
from order_tracking.checks.source_verdict import WarehouseFigures, look_up
from order_tracking.settings import ORDER_MISSING_SPATH, UTI_UTS_TIME_MISMATCH, Settings, Timeouts
from tests.test_fault_injection import SilentServer
from tests.test_malformed_catalogue import IN, Data, load

LATER = IN + timedelta(minutes=7)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def refused_port() -> int:
    """A localhost port nobody listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_data() -> Data:
    """One order per verdict (ids say which), in the source only."""
    d = Data()
    # ORDER_MISSING_SPATH: 201 has 3 spath rows in the source; 202 has none; 203 not there at all.
    d.add("src_uti", order_id=201, update_time=IN)
    for i, minutes in enumerate((1, 2, 3)):
        d.add("src_uts", id=2010 + i, order_id=201, pathTime=IN - timedelta(minutes=minutes))
    d.add("src_uti", order_id=202, update_time=IN)
    # UTI_UTS_TIME_MISMATCH: 101 agrees in the source, 102 has the same mismatch, 103 is absent,
    # 104 has a uni_tracking_info row but no spath row.
    d.add("src_uti", order_id=101, update_time=IN)
    d.add("src_uts", id=1010, order_id=101, pathTime=IN)
    d.add("src_uts", id=1011, order_id=101, pathTime=IN - timedelta(hours=1))
    d.add("src_uti", order_id=102, update_time=LATER)
    d.add("src_uts", id=1020, order_id=102, pathTime=IN)
    d.add("src_uti", order_id=104, update_time=IN)
    return d


def source_engine(settings: Settings):
    return db.create_engine(settings.source_url, [settings.source_schema], "source", settings.timeouts)


@pytest.mark.usefixtures("maria_source")
def test_every_verdict_from_mariadb():
    settings = Settings.from_env()
    load(settings, source_data())
    engine = source_engine(settings)
    try:
        spath = look_up(engine, settings, ORDER_MISSING_SPATH, [201, 202, 203])
        mismatch = look_up(engine, settings, UTI_UTS_TIME_MISMATCH, [101, 102, 103, 104])
    finally:
        engine.dispose()
    assert {i: v.verdict for i, v in spath.items()} == {
        201: "in_source",
        202: "missing_in_source",
        203: "missing_in_source",
    }
    assert spath[201].source_rows == 3 and spath[201].source_max_pathtime == IN - timedelta(minutes=1)
    assert {i: v.verdict for i, v in mismatch.items()} == {
        101: "in_source",
        102: "mismatch_in_source",
        103: "missing_in_source",
        104: "mismatch_in_source",
    }
    v = mismatch[102]
    assert (v.source_rows, v.source_update_time, v.source_max_pathtime) == (1, LATER, IN)
    wh = WarehouseFigures(0, IN.isoformat(sep=" "), None)
    assert v.detail(wh) == (
        f"source: 1 spath rows, update_time={LATER.isoformat(sep=' ')}, max_pathtime={IN.isoformat(sep=' ')}"
        f"; warehouse: 0 spath rows, update_time={IN.isoformat(sep=' ')}, max_pathtime=NULL"
    )
    assert "no uni_tracking_info row" in mismatch[103].detail()


@pytest.mark.usefixtures("maria_source")
def test_lookups_are_batched_and_stop_at_the_limit(monkeypatch):
    settings = replace(Settings.from_env(), source_check_limit=5)
    load(settings, source_data())
    monkeypatch.setattr(source_verdict, "BATCH_SIZE", 2)
    engine = source_engine(settings)
    statements: list[str] = []
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    try:
        got = look_up(engine, settings, UTI_UTS_TIME_MISMATCH, [101, 102, 103, 104, 105, 106, 107, 101])
    finally:
        engine.dispose()
    assert sorted(got) == [101, 102, 103, 104, 105, 106, 107]  # each once, 101 given twice
    assert got[106].verdict == got[107].verdict == "unknown"
    assert got[106].reason.startswith("over the limit: ORDER_TRACKING_SOURCE_CHECK_LIMIT=5")
    assert got[101].verdict == "in_source" and got[105].verdict == "missing_in_source"
    lookups = [s for s in statements if "uni_tracking" in s]
    assert len(lookups) == 6  # 5 orders, 2 per IN list: 3 batches x 2 tables


def test_a_refusing_source_gives_unknown_with_the_reason():
    url = f"mysql+pymysql://root:secret@127.0.0.1:{refused_port()}/kuaisong"
    settings = replace(Settings.from_env(), source_url=url, timeouts=Timeouts(connect_secs=2, read_secs=2))
    engine = source_engine(settings)
    try:
        got = look_up(engine, settings, ORDER_MISSING_SPATH, [1, 2])
    finally:
        engine.dispose()
    assert {v.verdict for v in got.values()} == {"unknown"}
    assert got[1].reason.startswith("source unreachable: ") and "secret" not in got[1].reason
    assert got[1].detail().startswith("unknown: source unreachable")


def test_a_silent_source_gives_unknown_within_the_timeouts(silent_server):
    url = f"mysql+pymysql://root:secret@127.0.0.1:{silent_server.port}/kuaisong"
    settings = replace(Settings.from_env(), source_url=url, timeouts=Timeouts(connect_secs=1, read_secs=1))
    engine = source_engine(settings)
    started = time.monotonic()
    try:
        got = look_up(engine, settings, UTI_UTS_TIME_MISMATCH, list(range(1, 2500)))
    finally:
        engine.dispose()
    assert time.monotonic() - started < 10
    assert silent_server.accepted
    assert {v.verdict for v in got.values()} == {"unknown"}
    assert got[1].reason.startswith("source timed out: ")
    assert got[2400].reason.startswith("over the limit")


def test_detail_fits_the_column():
    v = source_verdict.unknown(1, ORDER_MISSING_SPATH, "é" * 2000)
    assert len(v.detail().encode()) <= source_verdict.DETAIL_MAX


@pytest.mark.parametrize("raw", ["-1", "1000001", "2.5", "lots"])
def test_the_limit_is_range_checked(monkeypatch, raw):
    from order_tracking.errors import UserError

    monkeypatch.setenv("ORDER_TRACKING_SOURCE_CHECK_LIMIT", raw)
    with pytest.raises(
        UserError, match=r"ORDER_TRACKING_SOURCE_CHECK_LIMIT=.* is not a whole number of orders"
    ):
        Settings.from_env()


def test_limit_and_auto_resolve_from_the_environment(monkeypatch):
    assert (Settings.from_env().source_check_limit, Settings.from_env().auto_resolve) == (2000, False)
    monkeypatch.setenv("ORDER_TRACKING_SOURCE_CHECK_LIMIT", "0")
    monkeypatch.setenv("ORDER_TRACKING_AUTO_RESOLVE", "true")
    assert (Settings.from_env().source_check_limit, Settings.from_env().auto_resolve) == (0, True)


@pytest.mark.usefixtures("maria_source")
def test_limit_zero_looks_nothing_up():
    settings = replace(Settings.from_env(), source_check_limit=0)
    engine = source_engine(settings)
    try:
        got = look_up(engine, settings, ORDER_MISSING_SPATH, [1])
    finally:
        engine.dispose()
    assert got[1].verdict == "unknown" and got[1].reason.startswith("over the limit")
