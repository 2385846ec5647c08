"""GX's validation results store, with keys read without ``dateutil``.

Every Data Docs build lists the results store several times (the index, each page section, the
health page), and GX turns every stored key into a ``RunIdentifier`` by parsing its run time
with ``dateutil``: about 0.13 ms a key, 6-7 times a run, so a year of results (4 checks a night)
added ~0.35 s to every ``monitor`` run (benchmark, issue 10). GX writes run times in one fixed
format (``RunIdentifier.to_tuple``); reading that format with ``strptime`` gives the same key.
A run time in any other format still goes through GX's own parse.

Named by ``class_name``/``module_name`` in ``gx/great_expectations.yml`` (``gx_project.build``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.store import validation_results_store
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

RUN_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # RunIdentifier.to_tuple's, always UTC


class ValidationResultsStore(validation_results_store.ValidationResultsStore):
    """GX's ``ValidationResultsStore`` whose ``tuple_to_key`` reads GX's run-time format directly.

    It keeps GX's class name on purpose: a context config without a store of class_name
    ``ValidationResultsStore`` gets GX's default one under the same store name, silently
    replacing this one (``DataContextConfig._init_stores``).
    """

    def tuple_to_key(self, tuple_: tuple[str, ...]):
        # (suite name parts..., run name, run time, batch id); the fixed-length form has one part
        if tuple_ == self._store_backend.STORE_BACKEND_ID_KEY or len(tuple_) < 4:
            return super().tuple_to_key(tuple_)
        try:
            run_time = datetime.strptime(tuple_[-2], RUN_TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return super().tuple_to_key(tuple_)
        return ValidationResultIdentifier(
            ExpectationSuiteIdentifier.from_tuple(tuple_[:-3]),
            RunIdentifier(tuple_[-3], run_time),
            tuple_[-1],
        )
