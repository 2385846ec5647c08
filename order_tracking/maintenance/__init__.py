"""Table maintenance (DAG 2): the spec's VACUUM/ANALYZE plan, run with evidence, retries and a log.

- ``plan``: the steps and the statement each becomes per warehouse dialect;
- ``execute``: one statement, alone and bounded, and the ``Outcome`` of a step;
- ``metrics`` / ``privileges`` / ``evidence``: whether a step did anything;
- ``log``: the maintenance log table;
- ``run``: a task or the whole plan (what the DAG and the CLI call);
- ``report``: the plan and the results as the CLI prints them.
"""

from __future__ import annotations

from order_tracking.maintenance.execute import FAILED, OK, PLANNED, SKIPPED, UNKNOWN, Outcome, RetryPolicy
from order_tracking.maintenance.plan import PLAN, resolve_tasks
from order_tracking.maintenance.run import (
    failures,
    plan_outcomes,
    raise_for_failures,
    run_plan,
    run_task,
    unknowns,
    unlogged,
    unlogged_line,
)

__all__ = [
    "FAILED",
    "OK",
    "PLAN",
    "PLANNED",
    "SKIPPED",
    "UNKNOWN",
    "Outcome",
    "RetryPolicy",
    "failures",
    "plan_outcomes",
    "raise_for_failures",
    "resolve_tasks",
    "run_plan",
    "run_task",
    "unknowns",
    "unlogged",
    "unlogged_line",
]
