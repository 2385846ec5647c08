"""Time as the project reads and writes it: naive UTC, whole seconds, from ISO 8601 input."""

from __future__ import annotations

from datetime import UTC, datetime

from order_tracking.errors import UserError


def parse_timestamp(value: str, name: str = "--as-of") -> datetime:
    """ISO-8601 to naive UTC (an offset is converted, a naive value is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{name} {value!r} is not a timestamp; use ISO 8601, e.g. 2026-11-25T03:00:00"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def utc_now() -> datetime:
    """Now as naive UTC, whole seconds (the exceptions table and the logs keep seconds)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
