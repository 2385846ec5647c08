"""What a DAG run tells a task: the checked window's end (``as_of``), backfill or not, the GX run name."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from order_tracking.clock import utc_now

AS_OF_PARAM = "as_of"


def _naive_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second)


def requested_as_of(context: Mapping[str, Any]) -> datetime | None:
    """The run's ``as_of`` param (trigger form / ``--conf``) as naive UTC; None when empty."""
    from order_tracking.clock import parse_timestamp
    from order_tracking.errors import UserError

    params = context.get("params") or {}
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    raw = params.get(AS_OF_PARAM) or conf.get(AS_OF_PARAM)
    if raw is None or not str(raw).strip():
        return None
    try:
        return parse_timestamp(str(raw), f"param {AS_OF_PARAM}")
    except UserError as exc:
        raise AirflowFailException(str(exc)) from None


def run_as_of(context: Mapping[str, Any]) -> datetime:
    """The checked window's end: the ``as_of`` param, else ``data_interval_end``, else the
    logical date, else the run's ``run_after`` (a run triggered without a logical date: the
    same for its four tests, whenever each starts), else now (UTC)."""
    explicit = requested_as_of(context)
    if explicit is not None:
        return explicit
    for key in ("data_interval_end", "logical_date"):
        value = _naive_utc(context.get(key))
        if value is not None:
            return value
    run_after = _naive_utc(getattr(context.get("dag_run"), "run_after", None))
    return run_after if run_after is not None else wall_clock_now()


def is_backfill(context: Mapping[str, Any]) -> bool:
    """A run made by `airflow backfill create` (it re-checks a past night)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return getattr(run_type, "value", run_type) == "backfill"


def data_docs_run_name(run_id: str | None, as_of: datetime) -> str:
    """The GX run name of a DQ task: the Airflow run id and as_of, in characters that stay the same
    in a file path and a URL (run ids hold ':' and '+', which Data Docs links would percent-encode)."""
    safe = re.sub(r"[^\w.-]+", "_", run_id or "airflow").strip("_")
    return f"{safe}__as_of_{as_of:%Y%m%dT%H%M%S}"


def wall_clock_now() -> datetime:
    return utc_now()


def quiet_gx_logging() -> None:
    """GX logs ~200 INFO lines per checkpoint ("Skipping registering function ... closure"):
    keep its warnings and errors, so that a task log shows our lines and the reason at a glance."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
