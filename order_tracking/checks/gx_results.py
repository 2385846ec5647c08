"""Reading GX validation results: is this result an error, and what was the cause?

GX 1.24 reports an expectation that raised at the top of ``exception_info``
(``{"raised_exception": True, "exception_message": ...}``), but a metric whose query failed in
every retry (a missing table, a killed backend) under one key per metric,
``{"MetricConfigurationID(...)": {"raised_exception": True, ...}}`` (docs/design.md section 7), with
``success=False`` and no ``result``. Reading only the top level turns such an error into "0
failing" (or a pass). Every place that classifies results asks ``result_error`` instead.
Imports no GX: results may also arrive as plain dicts (JSON, XCom).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_MESSAGE = 300


def _raised(info: Any) -> str | None:
    if not isinstance(info, Mapping) or not info.get("raised_exception"):
        return None
    text = str(info.get("exception_message") or "").strip()
    return text.splitlines()[0][:MAX_MESSAGE] if text else "the validation raised an exception"


def result_error(evr: Any) -> str | None:
    """The first line of the error behind a validation result, or ``None`` for a real result."""
    info = getattr(evr, "exception_info", None) if not isinstance(evr, Mapping) else evr.get("exception_info")
    if not isinstance(info, Mapping):
        return None
    top = _raised(info)
    if top is not None:
        return top
    for value in info.values():  # per-metric errors, keyed by MetricConfigurationID(...)
        nested = _raised(value)
        if nested is not None:
            return nested
    return None
