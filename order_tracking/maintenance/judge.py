"""Judging a VACUUM/ANALYZE step from its evidence: (status, reason), strongest evidence first.

Pure functions: ``evidence`` gathers the figures, history rows and rights, these decide. A step is
"ok" or "failed" only on evidence, "skipped" when Redshift says it skipped it, else "unknown" with
what would tell (issue 24 section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from order_tracking.maintenance.execute import FAILED, OK, SKIPPED, UNKNOWN
from order_tracking.maintenance.metrics import Metrics
from order_tracking.maintenance.plan import ANALYZE, VACUUM_DELETE_ONLY, VACUUM_SORT_ONLY
from order_tracking.maintenance.privileges import VacuumRights

# Redshift VACUUM's default threshold: it skips a table whose rows are at least 95 % sorted
# (SORT ONLY) or not marked for deletion (DELETE ONLY).
VACUUM_THRESHOLD_PCT = 95
# Redshift ANALYZE skips a table whose rows changed by less than analyze_threshold_percent (10 %).
ANALYZE_THRESHOLD_PCT = 10
# sys_vacuum_history.vacuum_type of each step: only a row of the step's own kind proves it.
HISTORY_KIND = {VACUUM_DELETE_ONLY: "delete", VACUUM_SORT_ONLY: "sort"}


@dataclass(frozen=True)
class SvvAccess:
    """What ``svv_table_info`` showed for a table with no row in it (``Metrics`` is None/empty).

    ``readable``: False when it shows the user no table at all (visible only to superusers unless
    granted); ``table_visible``: the user may SELECT the table; ``holds_rows``: the table has rows.
    """

    readable: bool | None = None
    table_visible: bool | None = None
    holds_rows: bool | None = None


def svv_grant(user: str | None) -> str:
    return f"GRANT SELECT ON svv_table_info TO {user or '<vacuum user>'};"


def unreadable_reason(user: str | None) -> str:
    return (
        f"svv_table_info shows {user} no table at all: it is visible only to superusers unless granted; "
        f"run: {svv_grant(user)}"
    )


def privilege_noop(operation: str, rights: VacuumRights) -> str:
    return (
        f"{operation} skips tables it may not maintain without an error (a privilege no-op): "
        f"{rights.who_may}; fix: {rights.fix}"
    )


def _status(row: dict) -> str:
    return str(row.get("status") or "").strip()


def _reduced(before: Metrics | None, after: Metrics | None, figure: str) -> bool:
    b, a = getattr(before, figure, None), getattr(after, figure, None)
    return b is not None and a is not None and a < b


def _no_figures(svv: SvvAccess | None, rights: VacuumRights, what: str) -> tuple[str, str | None]:
    """The verdict when svv_table_info gave no figures for the table."""
    if svv is not None and svv.readable is False:
        return UNKNOWN, f"{what} and no figures to judge by: {unreadable_reason(rights.user)}"
    if svv is not None and svv.table_visible is False:
        return UNKNOWN, (
            f"{what} and no figures to judge by: {rights.user} may not SELECT the table, so "
            "svv_table_info hides it (GRANT SELECT to see it)"
        )
    if svv is not None and svv.holds_rows is False:
        return OK, "not in svv_table_info and the table holds no rows: the table is empty, nothing to do"
    return UNKNOWN, f"{what} and no figures to judge by: svv_table_info gave no figures"


def judge_redshift_vacuum(
    operation: str,
    before: Metrics | None,
    after: Metrics | None,
    history: list[dict],
    rights: VacuumRights,
    svv: SvvAccess | None = None,
) -> tuple[str, str | None]:
    """(status, reason) of a Redshift VACUUM.

    - only a ``sys_vacuum_history`` row of this step's own kind, not automatic and started after
      the step began (``history`` holds only such rows) proves it: 'Complete' ok, 'Failed' failed,
      'Skipped' skipped;
    - figures that moved the right way are proof it ran;
    - a user who may not vacuum the table gets a silent no-op: failed;
    - no figures prove nothing: unknown, with what would show them (the GRANT);
    - VACUUM skips a table already past its 95 % threshold: ok, with the figure;
    - otherwise unknown, never a guess.
    """
    kind = HISTORY_KIND.get(operation, "")
    own = [h for h in history if str(h.get("vacuum_type") or "").strip().lower().startswith(kind)]
    for status, verdict in (("fail", FAILED), ("complete", OK), ("skip", SKIPPED)):
        rows = [h for h in own if _status(h).lower().startswith(status)]
        if rows and verdict == OK:
            return OK, None
        if rows:
            why = "" if verdict == FAILED else (
                f": Redshift found nothing past VACUUM's {VACUUM_THRESHOLD_PCT} % threshold to do"
            )  # fmt: skip
            return verdict, f"sys_vacuum_history reports {_status(rows[-1])!r} for this {operation}{why}"
    if own:
        return UNKNOWN, f"sys_vacuum_history shows this {operation} as {_status(own[-1])!r}: not finished"
    figure = "unsorted_pct" if operation == VACUUM_SORT_ONLY else "ghost_rows"
    if _reduced(before, after, figure):
        return OK, None
    if rights.may_vacuum is False:
        noop = privilege_noop(operation, rights)
        return FAILED, f"no sys_vacuum_history row, no drop in the figures: {noop}"
    rows = None if before is None else before.rows
    value = None if before is None else getattr(before, figure)
    if rows is None or value is None:
        return _no_figures(svv, rights, "no sys_vacuum_history row")
    share = float(value)
    if figure == "ghost_rows":
        share = 100.0 * value / (rows + value) if rows + value else 0.0
    if share <= 100 - VACUUM_THRESHOLD_PCT:
        limit = VACUUM_THRESHOLD_PCT
        return OK, f"nothing past VACUUM's {limit} % threshold ({share:.1f} %): Redshift skipped it"
    who = "the user may vacuum it" if rights.may_vacuum else "the table's owner could not be read"
    return UNKNOWN, (
        f"no sys_vacuum_history row and {figure.replace('_', ' ')} did not drop ({share:.1f} %) although "
        f"{who}: no evidence that VACUUM ran; check sys_vacuum_history by hand"
    )


def judge_redshift_analyze(
    before: Metrics | None,
    after: Metrics | None,
    rights: VacuumRights,
    svv: SvvAccess | None = None,
    history: list[dict] | None = None,
) -> tuple[str, str | None]:
    """(status, reason) of a Redshift ANALYZE: a ``sys_analyze_history`` row of this step where
    readable (Full / PredicateColumn ok, Skipped skipped), else the privilege and ``stats_off``
    before/after."""
    for row in reversed(history or []):
        status = _status(row)
        if status.lower() in ("full", "predicatecolumn"):
            return OK, None
        if status.lower() == "skipped":
            return SKIPPED, (
                "sys_analyze_history reports 'Skipped' for this ANALYZE: fewer rows changed than "
                "analyze_threshold_percent"
            )
    if rights.may_vacuum is False:
        return FAILED, privilege_noop(ANALYZE, rights)
    b = None if before is None else before.stats_off
    a = None if after is None else after.stats_off
    if b is None or a is None:
        return _no_figures(svv, rights, "no stats_off before and after")
    if a < b or a == 0:
        return OK, None
    if b <= ANALYZE_THRESHOLD_PCT:
        return OK, (
            f"stats_off {b:.1f} % is within analyze_threshold_percent ({ANALYZE_THRESHOLD_PCT} %): "
            "Redshift skipped it"
        )
    return UNKNOWN, f"stats_off did not drop ({b:.1f} % -> {a:.1f} %): no evidence that ANALYZE ran"


def judge_postgres(
    operation: str, before: Metrics | None, after: Metrics, moved: bool, attribute: str
) -> tuple[str, str | None]:
    """(status, reason) of a PostgreSQL VACUUM/ANALYZE run by a user allowed to run it."""
    if not moved:
        return UNKNOWN, f"{operation} reported success but {attribute} did not change within the wait"
    if operation == ANALYZE or before is None or not before.ghost_rows:
        return OK, None
    if after.ghost_rows is not None and after.ghost_rows >= before.ghost_rows:
        return FAILED, (
            f"VACUUM ran but reclaimed no dead rows ({before.ghost_rows} -> {after.ghost_rows}): a "
            "transaction older than the deletes still needs them (see pg_stat_activity.backend_xmin); "
            "they are reclaimed by the first VACUUM after it ends"
        )
    return OK, None
