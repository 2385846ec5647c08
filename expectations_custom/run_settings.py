"""The run's one ``Settings``, handed to the GX expectations, actions and stores it runs.

GX builds expectations, actions and site builders from configuration, so the entry point (the
CLI's ``monitor``, an Airflow task) cannot pass them arguments. It binds the settings it built
from its flags, connections and environment for the length of the run instead, and every GX-side
component reads them here: none reads the environment on its own, so a ``--warehouse-url`` flag
reaches every write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from expectations_custom.scoped import bound
from order_tracking.errors import UserError
from order_tracking.settings import Settings

_SETTINGS: ContextVar[Settings | None] = ContextVar("order_tracking_run_settings", default=None)


@contextmanager
def settings_bound(settings: Settings) -> Iterator[Settings]:
    """``run_settings()`` returns ``settings`` inside the block."""
    with bound(_SETTINGS, settings):
        yield settings


def run_settings() -> Settings:
    """The settings of the run in progress; a clear error outside one (never the environment)."""
    settings = _SETTINGS.get()
    if settings is None:
        raise UserError(
            "no settings bound for this GX run: run the checkpoints through order_tracking "
            "(`monitor`, the DAG's operator) or inside expectations_custom.run_settings.settings_bound()"
        )
    return settings
