"""What went wrong with the GX stores during one checkpoint run, noted instead of raised.

GX stores a validation result before any action runs (``ValidationDefinition.run``), and the Data
Docs action runs before ours (``Checkpoint._sort_actions``): a store error raised there costs the
check its findings. Inside :func:`store_faults_noted` (``run_check`` and the Airflow task bind it),
the results store and the Data Docs action note the error here and GX goes on, so the exceptions
action still writes; the caller then reports the run as an error (exit 3, a failed task), with
one line naming the store, and links no page that was not written.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass

from expectations_custom.scoped import bound


@dataclass
class StoreFaults:
    """One line per store that failed; ``None``: that store did its job (or was not used)."""

    results: str | None = None  # the validation result was not stored
    data_docs: str | None = None  # the pages (and the index) were not built or not uploaded

    @property
    def any(self) -> str | None:
        """The first line to report: the results store's, else the site's."""
        return self.results or self.data_docs


_FAULTS: ContextVar[StoreFaults | None] = ContextVar("order_tracking_store_faults", default=None)


def store_faults_noted() -> AbstractContextManager[StoreFaults]:
    """Inside, a store error of the results store or the Data Docs build is noted, not raised."""
    return bound(_FAULTS, StoreFaults())


def noted_faults() -> StoreFaults | None:
    """The enclosing block's faults; ``None`` outside one (errors are raised, as GX does)."""
    return _FAULTS.get()
