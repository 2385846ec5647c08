"""Every numeric setting is range-checked where it is read (issue 28, "Settings that overflow").

``inf``, ``nan``, ``1e400`` and huge values used to reach the drivers and date arithmetic: an
``OverflowError`` traceback with exit 1 (which a scheduler reads as "unresolved exceptions"),
``Python int too large to convert to C int``, ``date value out of range``, or an invalid
``statement_timeout`` at connect. Now each is one line naming the variable and its allowed range,
and exit 3, through the real CLI; the limits themselves are accepted.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from order_tracking import db
from order_tracking.errors import UserError
from order_tracking.settings import Settings
from tests.conftest import MARIA_URL, PG_URL, run_cli

# variable -> (the allowed range as the message states it, the largest value allowed)
SECONDS_FROM_0 = "a number of seconds from 0 to 604800 (7 days)"
SECONDS_ABOVE_0 = "a number of seconds greater than 0 and at most 604800 (7 days)"
RANGES = {
    "ORDER_TRACKING_CONNECT_TIMEOUT_SECS": (SECONDS_ABOVE_0, "604800"),
    "ORDER_TRACKING_READ_TIMEOUT_SECS": (SECONDS_ABOVE_0, "604800"),
    "ORDER_TRACKING_STATEMENT_TIMEOUT_SECS": (SECONDS_FROM_0, "604800"),
    "ORDER_TRACKING_VACUUM_STATEMENT_TIMEOUT_SECS": (SECONDS_FROM_0, "604800"),
    "ORDER_TRACKING_SQLITE_BUSY_TIMEOUT_SECS": (SECONDS_FROM_0, "604800"),
    "ORDER_TRACKING_SMTP_TIMEOUT_SECS": (SECONDS_ABOVE_0, "604800"),
    "ORDER_TRACKING_DQ_LOOKBACK_HOURS": ("a whole number of hours from 1 to 87600 (10 years)", "87600"),
    "ORDER_TRACKING_EXTRACTION_WINDOW_SECS": (
        "a whole number of seconds from 1 to 315360000 (10 years)",
        "315360000",
    ),
    "ORDER_TRACKING_EXTRACTION_BUFFER_SECS": (
        "a whole number of seconds from 0 to 604800 (7 days)",
        "604800",
    ),
    "ORDER_TRACKING_SMTP_PORT": ("a port number from 1 to 65535", "65535"),
    # issue 24: the vacuum plan's thresholds (0 = always)
    "ORDER_TRACKING_VACUUM_MIN_DELETED_PCT": ("a percentage from 0 to 100", "100"),
    "ORDER_TRACKING_VACUUM_MIN_UNSORTED_PCT": ("a percentage from 0 to 100", "100"),
    "ORDER_TRACKING_ANALYZE_MIN_STATS_OFF_PCT": ("a percentage from 0 to 100", "100"),
    "ORDER_TRACKING_KEEP_DAYS": ("a whole number of days from 1 to 3650 (10 years)", "3650"),
}

# The values the campaign used (issue 28), each through the real CLI.
ISSUE_CASES = [
    ("ORDER_TRACKING_CONNECT_TIMEOUT_SECS", "inf"),
    ("ORDER_TRACKING_CONNECT_TIMEOUT_SECS", "1e400"),
    ("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "1e20"),
    ("ORDER_TRACKING_DQ_LOOKBACK_HOURS", "100000000000000000000"),
    ("ORDER_TRACKING_EXTRACTION_WINDOW_SECS", "999999999999"),
    ("ORDER_TRACKING_READ_TIMEOUT_SECS", "999999999999"),
    ("ORDER_TRACKING_STATEMENT_TIMEOUT_SECS", "3000000"),
    ("ORDER_TRACKING_SMTP_TIMEOUT_SECS", "inf"),
    # and the rest of the numeric settings, once each
    ("ORDER_TRACKING_VACUUM_STATEMENT_TIMEOUT_SECS", "nan"),
    ("ORDER_TRACKING_SQLITE_BUSY_TIMEOUT_SECS", "1e400"),
    ("ORDER_TRACKING_EXTRACTION_BUFFER_SECS", "-1"),
    ("ORDER_TRACKING_SMTP_PORT", "70000"),
]


def _message(name: str, value: str) -> str:
    return f"{name}={value!r} is not {RANGES[name][0]}"


@pytest.mark.parametrize(("name", "value"), ISSUE_CASES)
def test_out_of_range_setting_is_one_line_and_exit_3_from_the_cli(pg_warehouse, schemas, name, value):
    proc = run_cli("init-db", env={name: value})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"error: {_message(name, value)}"
    assert proc.stdout == ""
    with sa.create_engine(PG_URL).connect() as conn:  # refused before anything was done
        assert not sa.inspect(conn).has_schema(schemas.ods)


def _just_above(maximum: str) -> str:
    return str(int(maximum) + 1)


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("kind", ["inf", "-inf", "nan", "1e400", "huge", "negative", "above the maximum"])
def test_every_numeric_setting_refuses_values_outside_its_range(monkeypatch, name, kind):
    value = {
        "huge": "9" * 30,
        "negative": "-1",
        "above the maximum": _just_above(RANGES[name][1]),
    }.get(kind, kind)
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as caught:
        Settings.from_env()
    assert str(caught.value) == _message(name, value)


def test_a_long_value_is_shortened_in_the_message(monkeypatch):
    monkeypatch.setenv("ORDER_TRACKING_READ_TIMEOUT_SECS", "9" * 5000)
    with pytest.raises(UserError) as caught:
        Settings.from_env()
    assert (
        str(caught.value).startswith("ORDER_TRACKING_READ_TIMEOUT_SECS='9999")
        and len(str(caught.value)) < 200
    )


@pytest.mark.parametrize("name", sorted(RANGES))
def test_the_limits_themselves_are_accepted(monkeypatch, name):
    monkeypatch.setenv(name, RANGES[name][1])
    Settings.from_env()  # no error


@pytest.mark.parametrize(
    "name",
    [
        "ORDER_TRACKING_CONNECT_TIMEOUT_SECS",
        "ORDER_TRACKING_READ_TIMEOUT_SECS",
        "ORDER_TRACKING_SMTP_TIMEOUT_SECS",
        "ORDER_TRACKING_DQ_LOOKBACK_HOURS",
        "ORDER_TRACKING_EXTRACTION_WINDOW_SECS",
        "ORDER_TRACKING_SMTP_PORT",
        "ORDER_TRACKING_KEEP_DAYS",
    ],
)
def test_zero_is_refused_where_it_means_nothing(monkeypatch, name):
    monkeypatch.setenv(name, "0")
    with pytest.raises(UserError) as caught:
        Settings.from_env()
    assert str(caught.value) == _message(name, "0")


def test_the_largest_timeouts_are_accepted_by_the_servers(monkeypatch, tmp_path):
    """The maxima were chosen to fit what the drivers and servers take: PostgreSQL's
    statement_timeout (int milliseconds), PyMySQL's connect_timeout (<= 1 year), SQLite's busy
    timeout (int milliseconds)."""
    for name in RANGES:
        if name.endswith("_TIMEOUT_SECS"):
            monkeypatch.setenv(name, RANGES[name][1])
    timeouts = Settings.from_env().timeouts
    for url in (PG_URL, MARIA_URL, f"sqlite:///{tmp_path / 'w.db'}"):
        engine = db.create_engine(url, ["s"], timeouts=timeouts)
        try:
            with engine.connect() as conn:
                if url == PG_URL:
                    assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7d"
                else:
                    assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()
