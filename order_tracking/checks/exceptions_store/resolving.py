"""Resolving open exceptions after a fix: who, why, never a resolved row again."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from order_tracking.checks.exceptions_store.common import BY_MAX, NOTES_MAX, check_exception_type
from order_tracking.clock import utc_now
from order_tracking.errors import UserError
from order_tracking.locked_write import locked_write
from order_tracking.schema import Tables

log = logging.getLogger(__name__)

# --- resolving ------------------------------------------------------------------------------


def resolve(
    engine: Engine,
    tables: Tables,
    *,
    order_ids: Sequence[int] | None,
    exception_type: str | None,
    all_of_type: bool,
    by: str,
    notes: str,
    now: datetime | None = None,
) -> int:
    """Close open exceptions (resolved_at IS NULL only) in one transaction; return how many.

    The transaction locks the exceptions table before it reads (``locked_write``: the order every
    writer uses; Redshift error 1023 is retried, bounded, then one line).

    Either ``order_ids`` (every one must have an open row, else nothing changes) or
    ``all_of_type`` with ``exception_type``. Already-resolved rows are never touched, so a
    repeated call finds nothing open and fails instead of rewriting history.
    """
    by = check_text("--by", by, BY_MAX, "say who resolves the exceptions")
    notes = check_text("--notes", notes, NOTES_MAX, "say why the exceptions are resolved")
    if exception_type is not None:
        check_exception_type(exception_type)
    ids = sorted(set(order_ids or ()))
    if all_of_type and ids:
        raise UserError("give either --order-id or --all-of-type, not both")
    if all_of_type and exception_type is None:
        raise UserError("--all-of-type needs --type")
    if not all_of_type and not ids:
        raise UserError("give at least one --order-id, or --all-of-type with --type")

    ex = tables.exceptions
    cond = [ex.c.resolved_at.is_(None)]
    if exception_type is not None:
        cond.append(ex.c.exception_type == exception_type)
    if ids:
        cond.append(ex.c.order_id.in_(ids))
    what = f"open {exception_type} exceptions" if exception_type else "open exceptions"
    values = {"resolved_at": now or utc_now(), "resolved_by": by, "resolution_notes": notes}

    def close(conn: Connection) -> int:
        # Under the lock, taken before this first read: a concurrent monitor write waits for it.
        if ids:
            # The ids were typed by a person: refuse all if one is wrong, naming it.
            found = {r[0] for r in conn.execute(sa.select(ex.c.order_id).where(*cond).distinct())}
            missing = [i for i in ids if i not in found]
            if missing:
                raise UserError(f"no {what} for order_id {', '.join(map(str, missing))}; nothing was changed")
        closed = conn.execute(ex.update().where(*cond).values(**values)).rowcount
        if closed == 0:
            raise UserError(f"no {what} to resolve; nothing was changed")
        return closed

    closed = locked_write(engine, [ex], close, what=f"resolve {what}")
    log.info("closed %d %s (by %s)", closed, what, by)
    return closed


def check_text(flag: str, value: str | None, limit: int, purpose: str) -> str:
    """``value`` stripped, or a :class:`UserError` when it is empty or too long for its column.

    The limit is in UTF-8 bytes: Redshift's VARCHAR(n) counts bytes, not characters, so 128
    characters of "é" (256 bytes) would fail the write there (PostgreSQL would accept them).
    """
    value = (value or "").strip()
    if not value:
        raise UserError(f"{flag} is empty: {purpose}")
    size = len(value.encode("utf-8"))
    if size > limit:
        raise UserError(
            f"{flag} is {size} bytes long in UTF-8 ({len(value)} characters); at most {limit} bytes "
            "(Redshift VARCHAR counts bytes)"
        )
    return value
