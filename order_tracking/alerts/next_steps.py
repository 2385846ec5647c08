"""The next step of each finding in the alert: the spec's Action in plain words and the exact
command (order ids filled in) that fixes or closes it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from order_tracking.settings import (
    ORDER_MISSING_SPATH,
    REACTIVATED_ORDER_MISSING_ECS,
    UTI_UTS_TIME_MISMATCH,
)

CLI = "python -m order_tracking"
EXTRACTION_CHECK = "extraction_count"


@dataclass(frozen=True)
class NextStep:
    action: str  # the spec's Action, in plain words
    command: str  # the exact command line (order ids filled in)
    command_note: str  # when / how to run it


# --- the actions -----------------------------------------------------------------------------

_ACTIONS = {
    EXTRACTION_CHECK: "Infrastructure alert: rows were lost between MySQL and the Redshift raw tables. "
    "Check the extraction logs and the Redshift COPY errors (stl_load_errors) for the window, "
    "reload the lost rows, then re-check.",
    UTI_UTS_TIME_MISMATCH: "Investigate the extraction logs for the affected order's time window. "
    "Check if a backfill is needed.",
    ORDER_MISSING_SPATH: "Verify in the MySQL source ({source_schema}.uni_tracking_spath). If the data "
    "exists in the source but not in Redshift, a targeted backfill is required.",
    REACTIVATED_ORDER_MISSING_ECS: "Move the order's row from its hist_ecs_order_info_* table back "
    "into mart_ecs_order_info (the spec's manual fix; the note names the table).",
}


def order_id_args(order_ids: Iterable[Any]) -> str:
    return " ".join(f"--order-id {i}" for i in order_ids)


def next_step(
    key: str | None,
    order_ids: Sequence[Any] = (),
    as_of: str | None = None,
    total: int | None = None,
    source_schema: str = "kuaisong",
) -> NextStep | None:
    """The next step for an exception type (or ``extraction_count``), with its exact command.

    ``order_ids`` (the sample) go into the command; when ``total`` says there are more, the note
    tells how to reach them all. ``source_schema``: the configured MySQL database, named in Test 2's.
    """
    if key not in _ACTIONS:
        return None
    action = _ACTIONS[key].format(source_schema=source_schema)
    ids = order_id_args(order_ids) or "--order-id N"
    more = total is not None and total > len(order_ids)
    if key == EXTRACTION_CHECK:
        return NextStep(
            action,
            f"{CLI} monitor --checks extraction_count --as-of {as_of or 'AS_OF'}",
            "re-check the same window once the rows are reloaded",
        )
    if key == REACTIVATED_ORDER_MISSING_ECS:
        note = "prints the statements; add --apply to move the rows and close the exceptions"
        if more:
            note += f" (these are {len(order_ids)} of {total}: `{CLI} exceptions --type {key}` lists all)"
        return NextStep(action, f"{CLI} repair-reactivated {ids} --by YOUR_NAME", note)
    note = "after the fix, close the exceptions"
    if more:
        note += f" (these are {len(order_ids)} of {total}; --all-of-type instead of --order-id closes all)"
    return NextStep(action, f'{CLI} resolve --type {key} {ids} --by YOUR_NAME --notes "backfilled"', note)
