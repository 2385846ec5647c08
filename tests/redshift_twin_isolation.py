"""The Redshift twin's isolation: SERIALIZABLE, and PostgreSQL's 40001 told as Redshift's 1023.

Redshift runs every transaction at serializable isolation and cancels one side of a conflict
with error 1023. The twin's sessions run at SERIALIZABLE (``default_transaction_isolation`` in the
twin URL's options), and where PostgreSQL then raises serialization_failure (SQLSTATE 40001),
:func:`as_redshift_error` (a ``handle_error`` listener on twin engines) raises what Redshift raises
instead: :class:`RedshiftSerializableViolation`, SQLSTATE XX000, in Redshift's words. The
product's retry (``order_tracking.locked_write``) must therefore match on what Redshift says.

Planned conflicts: with ``REDSHIFT_TWIN_CONFLICTS`` set to a JSON object ``{"<regex>": n}``, the
first ``n`` statements of each process that match ``<regex>`` are replaced by one that makes
PostgreSQL itself raise 40001 (then mapped as above). That is Redshift cancelling our side
because another session (the ETL, another run) conflicted; locked writers never conflict with
each other, so tests that must see a retry plan one.
"""

from __future__ import annotations

import json
import os
import re

import psycopg2.errors
import sqlalchemy as sa

CONFLICTS_ENV = "REDSHIFT_TWIN_CONFLICTS"
ISOLATION_OPTION = "-cdefault_transaction_isolation=serializable"

# PostgreSQL raises serialization_failure itself: the statement a planned conflict runs instead.
RAISE_40001 = (
    "DO $$ BEGIN RAISE EXCEPTION 'could not serialize access due to read/write dependencies among "
    "transactions' USING ERRCODE = 'serialization_failure'; END $$"
)


class RedshiftSerializableViolation(psycopg2.errors.InternalError_):
    """Redshift's error 1023, raised where PostgreSQL raised serialization_failure (40001).

    Redshift reports it as an internal error (psycopg2 ``InternalError``) whose text is the code
    and a DETAIL line (Amazon Redshift Database Developer Guide, "Troubleshooting serializable
    isolation errors": ``ERROR:1023 DETAIL: Serializable isolation violation on table ...``). It
    carries no pgcode 40001: only its text says what it is.
    """


def violation_text(pid: int) -> str:
    """Error 1023 as Redshift words it (table and transaction ids are the twin's stand-ins: 0)."""
    return (
        "ERROR:  1023\nDETAIL:  Serializable isolation violation on table - 0, transactions forming "
        f"the cycle are: 0, 0 (pid:{pid})\n"
    )


_raised: dict[str, int] = {}  # planned conflicts this process raised so far, by pattern


def planned_conflict(sql: str) -> bool:
    """Whether ``sql`` is one of the first ``n`` statements matching a planned conflict's pattern."""
    plan = os.environ.get(CONFLICTS_ENV)
    if not plan:
        return False
    for pattern, times in json.loads(plan).items():
        if re.search(pattern, sql, re.IGNORECASE) and _raised.get(pattern, 0) < int(times):
            _raised[pattern] = _raised.get(pattern, 0) + 1
            return True
    return False


def as_redshift_error(ctx: sa.engine.ExceptionContext, marker: str) -> BaseException | None:
    """PostgreSQL's 40001 on a twin engine (``application_name=marker``) as Redshift's 1023."""
    orig = ctx.original_exception
    if not isinstance(orig, psycopg2.errors.SerializationFailure):
        return None
    if ctx.engine is None or ctx.engine.url.query.get("application_name") != marker:
        return None
    pid = ctx.connection.connection.dbapi_connection.info.backend_pid if ctx.connection is not None else 0
    redshift = RedshiftSerializableViolation(violation_text(pid))
    return sa.exc.DBAPIError.instance(
        ctx.statement, ctx.parameters, redshift, psycopg2.Error, dialect=ctx.dialect
    )
