"""Values a block of code hands to the GX actions and stores it runs, without module state.

GX builds actions and stores from configuration, so a caller cannot pass them anything directly.
A ``ContextVar`` bound for the length of a block can: ``monitor`` binds where the actions put what
they wrote, the Data Docs pages and the alert email it defers to the end of the run; a Data Docs
build binds the results store's one listing. Unbound (Airflow, a plain checkpoint run), the
actions do their work themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def bound(var: ContextVar[T | None], value: T) -> Iterator[T]:
    """``var`` holds ``value`` inside the block, and what it held before once the block ends."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)
