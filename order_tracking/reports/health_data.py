"""What the Data Docs health page shows, for the last ``HEALTH_NIGHTS`` nights, as plain records.

Three sources, each read with a bound that follows the number of nights, not the history kept:

- the GX validation results store: per night and check, the newest good result (findings of
  Tests 1-3, Test 0's source and raw counts per table). A night is the date of the run's
  ``as_of``; results are loaded newest first per night and check (chosen from the store's keys)
  until one is not an error, at most ``READS_PER_SLOT``; the errored runs passed over are listed
  in ``errors``, so a later run that errored never hides the good result before it.
- the exceptions table: per night, the exceptions still open at the end of that day, by whole
  days since ``detected_at``: 0-1, 2-7, 8-30, >30. One aggregate query over the rows open at some
  time in the period, grouped by detection and resolution date.
- the maintenance log: every VACUUM step of the period with ghost rows and unsorted % before
  and after.

Every record is a flat dict, ready for a vega-lite ``data.values``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from order_tracking import db
from order_tracking.checks.gx_results import result_error
from order_tracking.maintenance.plan import VACUUM_OPERATIONS
from order_tracking.schema import Tables
from order_tracking.settings import HEALTH_NIGHTS

log = logging.getLogger(__name__)

DAY = 86_400
AGE_BUCKETS = ("0-1 days", "2-7 days", "8-30 days", ">30 days")  # upper bounds: 2, 8, 31 days
SUITE_PREFIX = "order_tracking_"
RUN_NAME_PREFIX = "as_of_"  # monitoring.run_check names runs as_of_<YYYYmmddTHHMMSS>
RUN_NAME_STAMP = re.compile(r"\d{8}T\d{6}")
# Results read per night and check, newest first, looking for one that is not an error: the
# bound keeps the page's cost following the number of nights, not the retries of a bad night.
READS_PER_SLOT = 8


@dataclass
class HealthData:
    first_night: date
    last_night: date
    generated_at: datetime
    findings: list[dict] = field(default_factory=list)  # night, type, found
    open_by_age: list[dict] = field(default_factory=list)  # night, age, type, open
    extraction: list[dict] = field(default_factory=list)  # night, table, side, rows
    vacuum: list[dict] = field(default_factory=list)  # table, at, operation, measure, when, value
    errors: list[dict] = field(default_factory=list)  # night, check, run_time, error, good_result_shown
    problems: list[str] = field(default_factory=list)  # a source that could not be read

    @property
    def nights(self) -> list[date]:
        return [
            self.first_night + timedelta(days=i) for i in range((self.last_night - self.first_night).days + 1)
        ]

    def as_dict(self) -> dict:
        return {
            "first_night": self.first_night.isoformat(),
            "last_night": self.last_night.isoformat(),
            "generated_at": self.generated_at.isoformat(sep=" ", timespec="seconds"),
            "findings": self.findings,
            "open_by_age": self.open_by_age,
            "extraction": self.extraction,
            "vacuum": self.vacuum,
            "errors": self.errors,
            "problems": self.problems,
        }


def period(now: datetime, nights: int = HEALTH_NIGHTS) -> tuple[date, date]:
    last = now.date()
    return last - timedelta(days=nights - 1), last


# --- validation results ------------------------------------------------------------------------


def night_of(key) -> date:
    """The night a stored result belongs to: its ``as_of`` (our run names), else its run date."""
    name = key.run_id.run_name or ""
    stamp = name.removeprefix(RUN_NAME_PREFIX)
    if name.startswith(RUN_NAME_PREFIX) and RUN_NAME_STAMP.fullmatch(stamp):
        try:  # fromisoformat: strptime looks the locale up on every call, for every stored key
            return datetime.fromisoformat(stamp).date()
        except ValueError:
            pass
    return key.run_id.run_time.date()


def from_validation_results(store, first: date, last: date) -> tuple[list[dict], list[dict], list[dict]]:
    """``(findings, extraction, errors)`` from the newest good result per night and check.

    The night and the order of the runs are read from the store's keys, so only the results
    charted are loaded: newest first per night and check, until one is not an error (at most
    ``READS_PER_SLOT``; GX reads a stored result in a few ms). A later run that errored (a lost
    connection, a dropped table) says nothing about the night's data: it is listed in ``errors``
    and the good result before it is still charted.
    """
    runs: dict[tuple[date, str], list] = {}
    for key in store.list_keys():
        if key.run_id.run_time is None:
            continue
        night = night_of(key)
        if not first <= night <= last:
            continue
        check = key.expectation_suite_identifier.name.removeprefix(SUITE_PREFIX)
        runs.setdefault((night, check), []).append(key)
    findings, extraction, errors = [], [], []
    for (night, check), keys in sorted(runs.items(), key=lambda item: item[0]):
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        passed_over = []
        evr = None
        for key in keys[:READS_PER_SLOT]:
            try:
                candidate = store.get(key).results[0]
            except Exception:
                log.warning("health page: cannot read validation result %s", key, exc_info=True)
                continue
            error = result_error(candidate)
            if error is None:
                evr = candidate
                break
            passed_over.append({"run_time": _run_time(key), "error": error})
        errors += [
            {"night": night.isoformat(), "check": check, **e, "good_result_shown": evr is not None}
            for e in passed_over
        ]
        if evr is None:
            continue  # no run of that night could check: no figure to chart
        result = evr.result or {}
        details = result.get("details") or {}
        if check == "extraction_count":
            # "counts" has every table; older results only carry the short ones in the sample.
            rows = details.get("counts") or [
                {"table": r["table_name"], "source_count": r["source_count"], "raw_count": r["raw_count"]}
                for r in details.get("sample") or []
            ]
            for r in rows:
                for side in ("source", "raw"):
                    extraction.append(
                        {
                            "night": night.isoformat(),
                            "table": r["table"],
                            "side": side,
                            "rows": int(r[f"{side}_count"]),
                        }
                    )
        elif details.get("exception_type"):
            findings.append(
                {
                    "night": night.isoformat(),
                    "type": details["exception_type"],
                    "found": int(result.get("observed_value") or 0),
                }
            )
    return findings, extraction, errors


def _run_time(key) -> str:
    """When the run started, UTC, to the second (GX keys carry an aware or a naive UTC time)."""
    at = key.run_id.run_time
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")


# --- exceptions table --------------------------------------------------------------------------


class day_of(FunctionElement):
    """The calendar date of a timestamp (SQLite's CAST(... AS DATE) would give the year)."""

    type = sa.Date()
    inherit_cache = True


@compiles(day_of)
def _day_of_default(element, compiler, **kw):
    return f"CAST({compiler.process(next(iter(element.clauses)), **kw)} AS DATE)"


@compiles(day_of, "sqlite")
def _day_of_sqlite(element, compiler, **kw):
    return f"date({compiler.process(next(iter(element.clauses)), **kw)})"


def open_days_select(tables: Tables, first: date, last: date) -> sa.Select:
    """``(detected, resolved, exception_type, n)``: the rows open at some time in the period,
    grouped by their detection and resolution dates. One scan; the result has at most one row per
    (day, day, type), whatever the number of exceptions, and is spread over the nights in Python.
    """
    ex = tables.exceptions
    start = datetime.combine(first, datetime.min.time())
    end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    rows = (
        sa.select(
            day_of(ex.c.detected_at).label("detected"),
            day_of(ex.c.resolved_at).label("resolved"),
            ex.c.exception_type,
        )
        .where(ex.c.detected_at < end, sa.or_(ex.c.resolved_at.is_(None), ex.c.resolved_at >= start))
        .subquery("open_rows")
    )
    return sa.select(
        rows.c.detected, rows.c.resolved, rows.c.exception_type, sa.func.count().label("n")
    ).group_by(rows.c.detected, rows.c.resolved, rows.c.exception_type)


def age_bucket(days: int) -> str:
    """0-1, 2-7, 8-30, >30 whole days since the exception was first detected."""
    if days <= 1:
        return AGE_BUCKETS[0]
    if days <= 7:
        return AGE_BUCKETS[1]
    return AGE_BUCKETS[2] if days <= 30 else AGE_BUCKETS[3]


def _as_date(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def from_exceptions(conn: Connection, tables: Tables, first: date, last: date) -> list[dict]:
    """Per night, the exceptions still open at its end (resolved on a later day), by age and type."""
    counts: dict[tuple[str, str, str], int] = {}
    nights = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    for r in conn.execute(open_days_select(tables, first, last)):
        detected, resolved = _as_date(r.detected), _as_date(r.resolved)
        for night in nights:
            if detected <= night and (resolved is None or resolved > night):
                slot = (night.isoformat(), age_bucket((night - detected).days), r.exception_type)
                counts[slot] = counts.get(slot, 0) + int(r.n)
    return [{"night": n, "age": a, "type": t, "open": c} for (n, a, t), c in sorted(counts.items())]


# --- maintenance log ---------------------------------------------------------------------------


def vacuum_select(tables: Tables, since: datetime, limit: int = HEALTH_NIGHTS * 16) -> sa.Select:
    log_t = tables.maintenance_log
    return (
        sa.select(
            log_t.c.table_name,
            log_t.c.operation,
            log_t.c.started_at,
            log_t.c.status,
            log_t.c.ghost_rows_before,
            log_t.c.ghost_rows_after,
            log_t.c.unsorted_pct_before,
            log_t.c.unsorted_pct_after,
        )
        .where(log_t.c.started_at >= since, log_t.c.operation.in_(VACUUM_OPERATIONS))
        .order_by(log_t.c.started_at.desc())
        .limit(limit)
    )


def from_maintenance_log(conn: Connection, tables: Tables, first: date) -> list[dict]:
    since = datetime.combine(first, datetime.min.time())
    out = []
    for r in conn.execute(vacuum_select(tables, since)):
        at = r.started_at if isinstance(r.started_at, datetime) else datetime.fromisoformat(str(r.started_at))
        for measure, column in (("ghost rows", "ghost_rows"), ("unsorted %", "unsorted_pct")):
            for when in ("before", "after"):
                value = getattr(r, f"{column}_{when}")
                if value is None:
                    continue
                out.append(
                    {
                        "table": r.table_name,
                        "at": at.isoformat(sep=" ", timespec="seconds"),
                        "operation": r.operation,
                        "status": r.status,
                        "measure": measure,
                        "when": when,
                        "value": float(value),
                    }
                )
    out.sort(key=lambda v: (v["table"], v["at"]))
    return out


def collect(store, engine: sa.Engine | None, tables: Tables, now: datetime) -> HealthData:
    """Everything the page shows; a source that fails is named in ``problems``, the rest still shown."""
    first, last = period(now)
    data = HealthData(first, last, now)
    try:
        data.findings, data.extraction, data.errors = from_validation_results(store, first, last)
    except Exception as exc:
        log.warning("health page: validation results not read", exc_info=True)
        data.problems.append(f"validation results not read: {db.short_reason(exc)}")
    if engine is None:
        return data
    try:
        with engine.connect() as conn:
            data.open_by_age = from_exceptions(conn, tables, first, last)
    except Exception as exc:
        log.warning("health page: exceptions table not read", exc_info=True)
        data.problems.append(f"exceptions table not read: {db.short_reason(exc)}")
    try:
        with engine.connect() as conn:
            data.vacuum = from_maintenance_log(conn, tables, first)
    except Exception as exc:
        log.warning("health page: maintenance log not read", exc_info=True)
        data.problems.append(f"maintenance log not read: {db.short_reason(exc)}")
    return data
