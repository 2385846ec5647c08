"""Whether a step is needed: its figure against its threshold (issue 24 section 2).

The figures are those the AWS Analyze & Vacuum Utility reads: deleted rows as a share of all rows
(``tbl_rows``, deleted ones included), ``unsorted`` and ``stats_off`` from ``svv_table_info``
(PostgreSQL: dead tuples, and rows changed since the last ANALYZE). A threshold of 0 means the
step always runs (the spec); a figure that cannot be read runs the step too.
"""

from __future__ import annotations

from dataclasses import dataclass

from order_tracking.maintenance.metrics import Metrics
from order_tracking.maintenance.plan import ANALYZE, VACUUM_DELETE_ONLY, VACUUM_SORT_ONLY
from order_tracking.settings import MaintenanceSettings

# operation -> (figure's name, the setting that holds its threshold)
FIGURES = {
    VACUUM_DELETE_ONLY: ("deleted", "ORDER_TRACKING_VACUUM_MIN_DELETED_PCT"),
    VACUUM_SORT_ONLY: ("unsorted", "ORDER_TRACKING_VACUUM_MIN_UNSORTED_PCT"),
    ANALYZE: ("stats_off", "ORDER_TRACKING_ANALYZE_MIN_STATS_OFF_PCT"),
}


@dataclass(frozen=True)
class Decision:
    """Run the step or not, and the figure that decided it (for the log and the dry run)."""

    run: bool
    reason: str


def deleted_pct(metrics: Metrics | None) -> float | None:
    """Deleted-not-reclaimed rows as a % of all stored rows (Redshift's tbl_rows)."""
    if metrics is None or metrics.rows is None or metrics.ghost_rows is None:
        return None
    total = metrics.rows + metrics.ghost_rows
    return 100.0 * metrics.ghost_rows / total if total else 0.0


def figure(operation: str, metrics: Metrics | None) -> float | None:
    if operation == VACUUM_DELETE_ONLY:
        return deleted_pct(metrics)
    if metrics is None:
        return None
    return metrics.unsorted_pct if operation == VACUUM_SORT_ONLY else metrics.stats_off


def threshold(operation: str, options: MaintenanceSettings) -> float:
    return {
        VACUUM_DELETE_ONLY: options.min_deleted_pct,
        VACUUM_SORT_ONLY: options.min_unsorted_pct,
        ANALYZE: options.min_stats_off_pct,
    }[operation]


def _pct(value: float) -> str:
    return f"{value:g}"


def decide(operation: str, metrics: Metrics | None, options: MaintenanceSettings) -> Decision:
    """Whether ``operation`` should run given the table's figures."""
    name, setting = FIGURES[operation]
    limit = threshold(operation, options)
    if limit <= 0:
        return Decision(True, f"runs: no threshold ({setting}=0, always)")
    value = figure(operation, metrics)
    if value is None:
        return Decision(True, f"runs: {name} could not be read, so {setting}={_pct(limit)} % cannot skip it")
    if value < limit:
        return Decision(False, f"{name} {value:.1f} % is below {setting}={_pct(limit)} %")
    return Decision(True, f"runs: {name} {value:.1f} % is at or above {setting}={_pct(limit)} %")


def describe(metrics: Metrics | None) -> str:
    """The figures read for one table, as one line: what the dry run shows."""
    if metrics is None:
        return "figures not read"
    parts = []
    deleted = deleted_pct(metrics)
    if deleted is not None:
        total = metrics.rows + metrics.ghost_rows
        parts.append(f"deleted {deleted:.1f} % ({metrics.ghost_rows} of {total} rows)")
    elif metrics.rows is not None:
        parts.append(f"{metrics.rows} rows")
    for label, value in (("unsorted", metrics.unsorted_pct), ("stats_off", metrics.stats_off)):
        if value is not None:
            parts.append(f"{label} {value:.1f} %")
    return ", ".join(parts) or "no figures"
