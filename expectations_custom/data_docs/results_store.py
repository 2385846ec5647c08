"""GX's validation results store, listed once per Data Docs build and keyed without ``dateutil``.

A Data Docs build lists the whole results store several times (the index, the validation pages'
section, the health page), and GX turns every stored key into a ``RunIdentifier`` by parsing its
run time with ``dateutil`` (~0.13 ms a key). With a year of results (4 checks a night) that was
~0.4 s of every ``monitor`` run, growing every night (benchmark, issue 10). So:

- GX writes run times in one fixed format (``RunIdentifier.to_tuple``): read with
  ``datetime.fromisoformat`` (C, ~0.3 µs; ``strptime`` looks the locale up on every call), it
  gives the same key. A run time in any other format still goes through GX's own parse.
- Inside :func:`listed_once` the store is listed once: nothing writes results while a build
  reads them, and the memo ends with the block, so the next run lists afresh. The results read
  there that are errors are noted too (:func:`errors_read`), for the index to mark them apart.

Named by ``class_name``/``module_name`` in ``gx/great_expectations.yml`` (``gx_project.build``).
"""

from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import datetime

from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.store import validation_results_store
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.exceptions import InvalidKeyError

from expectations_custom.scoped import bound
from expectations_custom.store_faults import noted_faults
from order_tracking.checks import gx_results
from order_tracking.errors import StoreUnavailable

logger = logging.getLogger(__name__)

GX_RUN_TIME = re.compile(r"\d{8}T\d{6}\.\d{6}Z")  # RunIdentifier.to_tuple's "%Y%m%dT%H%M%S.%fZ", UTC

_LISTED: ContextVar[dict | None] = ContextVar("order_tracking_results_listed", default=None)


def listed_once() -> AbstractContextManager[dict]:
    """Inside, each results store lists its keys at most once (a Data Docs build)."""
    return bound(_LISTED, {})


_ERRORS = "errors"  # in the listed_once memo, beside the listings (keyed by store id)


def errors_read() -> dict[tuple[str, ...], str]:
    """Inside :func:`listed_once`: the results read so far that are errors, by key tuple, with
    the first line of the error. The index reads every result it lists anyway; its renderer
    (``site_index``) marks these runs apart from real findings without reading them again."""
    listed = _LISTED.get()
    return {} if listed is None else listed.setdefault(_ERRORS, {})


class ValidationResultsStore(validation_results_store.ValidationResultsStore):
    """GX's ``ValidationResultsStore``, with keys read directly and listed once per build.

    It keeps GX's class name on purpose: a context config without a store of class_name
    ``ValidationResultsStore`` gets GX's default one under the same store name, silently
    replacing this one (``DataContextConfig._init_stores``).
    """

    def store_validation_results(self, *args, **kwargs):
        """GX's, except that a store that cannot be reached is noted, not raised, inside
        ``store_faults_noted``: the check's actions (the exceptions write first) still run."""
        try:
            return super().store_validation_results(*args, **kwargs)
        except StoreUnavailable as exc:
            faults = noted_faults()
            if faults is None:
                raise
            faults.results = faults.results or str(exc)
            logger.warning("validation result not stored: %s", exc)
            return False

    def list_keys(self) -> list:
        listed = _LISTED.get()
        if listed is None:
            return super().list_keys()
        if id(self) not in listed:
            listed[id(self)] = super().list_keys()
        return list(listed[id(self)])

    def get(self, key):
        try:
            result = super().get(key)
        except (InvalidKeyError, StoreUnavailable):
            raise
        except Exception as exc:
            if _LISTED.get() is None:
                raise
            # In a build: one result cut short (a run killed while GX wrote it) must not fail every
            # build from now on. GX's builders skip a key that raises InvalidKeyError, with a warning.
            logger.warning("stored validation result %s cannot be read, skipped: %s", key, exc)
            raise InvalidKeyError(f"unreadable validation result {key}") from None
        if _LISTED.get() is not None and isinstance(key, ValidationResultIdentifier):
            evrs = getattr(result, "results", None) or []
            error = next((e for e in map(gx_results.result_error, evrs) if e), None)
            if error:
                errors_read()[key.to_tuple()] = error
        return result

    def tuple_to_key(self, tuple_: tuple[str, ...]):
        return fast_identifier(tuple_) or super().tuple_to_key(tuple_)


def fast_identifier(tuple_: tuple[str, ...]) -> ValidationResultIdentifier | None:
    """A result's key tuple as its identifier, the run time read with ``datetime.fromisoformat``
    (GX's ``from_tuple`` runs dateutil's parser, ~0.1 ms a key); None when GX's parse must decide."""
    # (suite name parts..., run name, run time, batch id); the fixed-length form has one part
    if len(tuple_) < 4 or not GX_RUN_TIME.fullmatch(tuple_[-2]):
        return None
    try:
        run_time = datetime.fromisoformat(tuple_[-2])
    except ValueError:  # e.g. a 13th month: GX's parse decides what that means
        return None
    return ValidationResultIdentifier(
        ExpectationSuiteIdentifier.from_tuple(tuple_[:-3]),
        RunIdentifier(tuple_[-3], run_time),
        tuple_[-1],
    )
