"""Which task failures retrying cannot fix: they fail at once, and the alert does not wait."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

# Words in a driver/GX error that say "retrying cannot help" (messages of PostgreSQL, MariaDB,
# SQLAlchemy). Connection refused, timeouts and server restarts are not here: they retry.
_CONFIG_ERROR_WORDS = (
    "password authentication failed",
    "access denied",
    "does not exist",
    "doesn't exist",
    "unknown database",
    "no such table",
    "undefinedtable",
    "undefined table",
    "nosuchtable",
    "can't load plugin",
    "is not a valid sqlalchemy url",
    "permission denied",
)


def is_config_error(exc: BaseException | str) -> bool:
    """True when retrying cannot help: a bad URL/driver, a missing table, a refused login."""
    import sqlalchemy as sa

    from order_tracking.errors import UserError

    if isinstance(exc, (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.NoSuchTableError)):
        return True
    if isinstance(exc, sa.exc.ProgrammingError):  # undefined table/column: the SQL cannot work
        return True
    text = str(exc).lower()
    if isinstance(exc, UserError) and not text.startswith("cannot connect"):
        return True  # our own one-line configuration errors (missing GX project, bad setting)
    return any(word in text for word in _CONFIG_ERROR_WORDS)


def fail_fast_on_config_errors(what: str, exc: Exception) -> None:
    """Re-raise a configuration error as ``AirflowFailException`` (no retry); else return."""
    if is_config_error(exc):
        from order_tracking import db

        raise AirflowFailException(f"{what}: configuration error: {db.short_reason(exc)}") from exc
