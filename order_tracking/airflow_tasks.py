"""The names DAG files import, kept at the path the first DAG files used.

The code lives in ``order_tracking.orchestration``; a DAG file written against this path keeps
working. New DAG files import from ``order_tracking.orchestration.*``.
"""

from __future__ import annotations

from order_tracking.orchestration.gate import UNRESOLVED_TASK, check_unresolved_exceptions
from order_tracking.orchestration.operator import DQ_TASKS, OrderTrackingCheckpointOperator
from order_tracking.orchestration.run_context import AS_OF_PARAM
from order_tracking.orchestration.vacuum_task import (
    POOL_GUARD_TASK,
    VACUUM_POOL,
    check_vacuum_pool,
    run_vacuum_task,
)

__all__ = [
    "AS_OF_PARAM",
    "DQ_TASKS",
    "POOL_GUARD_TASK",
    "UNRESOLVED_TASK",
    "VACUUM_POOL",
    "OrderTrackingCheckpointOperator",
    "check_unresolved_exceptions",
    "check_vacuum_pool",
    "run_vacuum_task",
]
