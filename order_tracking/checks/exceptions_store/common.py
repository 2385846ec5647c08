"""What the exceptions store's parts share: column limits, the write result, the gate's error."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from order_tracking import schema
from order_tracking import settings as settings_mod
from order_tracking.errors import UserError
from order_tracking.schema import Tables

NOTES_MAX = 1024  # the width of notes / resolution_notes in schema.py
BY_MAX = 128  # the width of resolved_by in schema.py


@dataclass(frozen=True)
class RecordResult:
    """What one check wrote: ``found`` distinct orders = ``new`` rows + ``already_open`` rows."""

    exception_type: str
    found: int
    new: int
    already_open: int


class UnresolvedExceptionsError(Exception):
    """Raised by :func:`check_unresolved` when unresolved exceptions remain; carries the summary."""

    def __init__(self, summary: dict[str, int]) -> None:
        self.summary = dict(summary)
        self.total = sum(summary.values())
        parts = ", ".join(f"{t}={n}" for t, n in summary.items())
        super().__init__(f"{self.total} unresolved exception{'s' if self.total != 1 else ''}: {parts}")


"""What the exceptions store's parts share: column limits, the write result, the gate's error."""

# --- helpers --------------------------------------------------------------------------------


def check_exception_type(exception_type: str) -> None:
    if exception_type not in settings_mod.EXCEPTION_TYPES:
        raise UserError(
            f"unknown exception type {exception_type!r}; valid types: "
            + ", ".join(settings_mod.EXCEPTION_TYPES)
        )


def require_table(engine: Engine, tables: Tables) -> None:
    """Fail in one line, pointing at ``init-db``, when the exceptions table does not exist."""
    schema.require_table(engine, tables.exceptions)
