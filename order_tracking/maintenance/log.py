"""The maintenance log: one row per step in ``order_tracking_maintenance_log``, its own transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from order_tracking import schema
from order_tracking.locked_write import locked_write
from order_tracking.maintenance.execute import (
    Outcome,
    naive_utc_now,
)
from order_tracking.maintenance.metrics import Metrics
from order_tracking.settings import Settings

# --- the maintenance log ---------------------------------------------------------------------------


def require_log_table(engine: Engine, settings: Settings) -> sa.Table:
    """The log table; a clear error pointing at ``init-db`` if it is missing (never created here)."""
    table = schema.build_tables(settings).maintenance_log
    schema.require_table(engine, table)
    return table


def _clip(text: str | None, limit: int = 1024) -> str | None:
    return None if text is None else text[:limit]


def write_log(engine: Engine, table: sa.Table, run_id: str, outcome: Outcome) -> None:
    """One row per step, in its own ordinary transaction (the VACUUM itself is long committed)."""
    before, after = outcome.before or Metrics(), outcome.after or Metrics()
    error = "; ".join(([outcome.error] if outcome.error else []) + outcome.notes) or None
    values = {
        "run_id": run_id,
        "task_name": outcome.task,
        "table_name": outcome.table,
        "operation": outcome.operation,
        "attempts": outcome.attempts,
        "sql_text": _clip(outcome.sql),
        "started_at": outcome.started_at or naive_utc_now(),
        "finished_at": outcome.finished_at,
        "status": outcome.status,
        "rows_before": before.rows,
        "rows_after": after.rows,
        "ghost_rows_before": before.ghost_rows,
        "ghost_rows_after": after.ghost_rows,
        "unsorted_pct_before": before.unsorted_pct,
        "unsorted_pct_after": after.unsorted_pct,
        "stats_off_before": before.stats_off,
        "stats_off_after": after.stats_off,
        "size_before": before.size_bytes,
        "size_after": after.size_bytes,
        "error": _clip(error),
    }
    # inline(): no key pre-fetch. The log_id is the table's IDENTITY; without inline() SQLAlchemy
    # runs ``select nextval(...)`` first (implicit_returning=False), and Redshift has no sequences.
    # Locked like every writer (locked_write): Redshift error 1023 is retried, bounded.
    locked_write(
        engine,
        [table],
        lambda conn: conn.execute(sa.insert(table).inline().values(**values)),
        what=f"maintenance log row for {outcome.operation} {outcome.table}",
    )
