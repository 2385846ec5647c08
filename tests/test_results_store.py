"""The GX project's results store and Data Docs site as configured in gx/ (issue 10, fixed cost)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from great_expectations.core import run_identifier
from great_expectations.data_context.store.validation_results_store import (
    ValidationResultsStore as GXValidationResultsStore,
)

from expectations_custom.data_docs import build as data_docs
from expectations_custom.data_docs.results_store import ValidationResultsStore, listed_once
from order_tracking.checks import gx_project
from order_tracking.settings import Settings

# (suite name parts..., run name, run time, batch id), as the filesystem and S3 backends list them
GX_FORMAT_KEYS = [
    ("order_tracking_missing_spath", "as_of_20261125T030000", "20261125T031502.123456Z", "abc123"),
    ("order_tracking_missing_spath", "__none__", "20260101T000000.000000Z", "__none__"),
    ("order", "tracking", "suite", "as_of_x", "20251231T235959.999999Z", "b"),  # a dotted suite name
]
OTHER_FORMAT_KEYS = [
    ("order_tracking_missing_spath", "as_of_x", "2026-11-25T03:15:02+00:00", "b"),
    ("order_tracking_missing_spath", "as_of_x", "20261125T031502Z", "b"),
]


@pytest.fixture
def local_time_not_utc(monkeypatch):
    """Workers run in any zone; GX reads a naive run time as local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _stores():
    backend = {"class_name": "InMemoryStoreBackend"}
    return ValidationResultsStore(store_backend=backend), GXValidationResultsStore(store_backend=backend)


@pytest.mark.usefixtures("local_time_not_utc")
@pytest.mark.parametrize("key", GX_FORMAT_KEYS + OTHER_FORMAT_KEYS)
def test_keys_are_the_keys_gx_reads(key):
    ours, theirs = _stores()
    mine, gx_key = ours.tuple_to_key(key), theirs.tuple_to_key(key)
    assert mine == gx_key and mine.to_tuple() == gx_key.to_tuple()
    if key in GX_FORMAT_KEYS:
        assert mine.to_tuple() == key
    assert mine.run_id.run_time == gx_key.run_id.run_time and mine.run_id.run_time.tzinfo is not None
    assert mine.run_id.run_name == gx_key.run_id.run_name
    assert mine.expectation_suite_identifier == gx_key.expectation_suite_identifier


def test_gx_run_times_are_read_without_dateutil(monkeypatch):
    def no_dateutil(*args, **kwargs):
        raise AssertionError("dateutil parse called")

    ours, _ = _stores()
    monkeypatch.setattr(run_identifier, "parse", no_dateutil)
    keys = [ours.tuple_to_key(key) for key in GX_FORMAT_KEYS]
    assert keys[0].run_id.run_time == datetime(2026, 11, 25, 3, 15, 2, 123456, tzinfo=UTC)
    with pytest.raises(AssertionError, match="dateutil"):  # another format still goes to GX's parse
        ours.tuple_to_key(OTHER_FORMAT_KEYS[0])


@pytest.mark.usefixtures("gx_copy", "sqlite_urls")
def test_the_committed_project_uses_it_and_builds_no_profiling_section():
    context = gx_project.load(Settings.from_env())
    store = context.validation_results_store
    assert type(store) is ValidationResultsStore  # not GX's default, silently swapped in
    assert store.store_backend.full_base_directory.endswith("uncommitted/validations/")
    (builder,) = data_docs.site_builders(context).values()
    assert set(builder.site_section_builders) == {"expectations", "validations"}


def test_the_store_is_listed_once_inside_a_build_and_afresh_after(monkeypatch):
    ours, _ = _stores()
    backend = ours.store_backend
    for key in GX_FORMAT_KEYS[:2]:
        backend.set(key, "{}")
    listings: list[int] = []
    list_backend = type(backend).list_keys

    def counting(self, prefix=()):
        listings.append(1)
        return list_backend(self, prefix)

    monkeypatch.setattr(type(backend), "list_keys", counting)
    with listed_once():
        first, second = ours.list_keys(), ours.list_keys()
        second.clear()  # a caller's list is its own
        assert len(ours.list_keys()) == 2 and first == [ours.tuple_to_key(k) for k in GX_FORMAT_KEYS[:2]]
    assert len(listings) == 1
    backend.set(GX_FORMAT_KEYS[2], "{}")
    assert len(ours.list_keys()) == 3 and len(listings) == 2  # outside: listed as it is now
