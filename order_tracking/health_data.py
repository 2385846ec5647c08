"""What the Data Docs health page shows, for the last ``HEALTH_NIGHTS`` nights, as plain records.

Three sources, each read with a bound that follows the number of nights, not the history kept:

- the GX validation results store: per night and check, the newest result (findings of Tests 1-3,
  Test 0's source and raw counts per table). A night is the date of the result's window end.
  Only keys whose run time falls in the period are loaded, at most ``MAX_RESULTS``.
- the exceptions table: per night, the exceptions open at the end of that night (or now, for
  today) by age since ``detected_at``: 0-1, 2-7, 8-30, >30 days. One aggregate query over the rows
  open at some time in the period; the nights are a small UNION ALL of constants.
- the maintenance log: every VACUUM step of the period with ghost rows and unsorted % before
  and after.

Every record is a flat dict, ready for a vega-lite ``data.values``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from order_tracking import db
from order_tracking.maintenance_sql import VACUUM_OPERATIONS
from order_tracking.rules import seconds_between
from order_tracking.schema import Tables
from order_tracking.settings import HEALTH_NIGHTS

log = logging.getLogger(__name__)

DAY = 86_400
AGE_BUCKETS = ("0-1 days", "2-7 days", "8-30 days", ">30 days")  # upper bounds: 2, 8, 31 days
SUITE_PREFIX = "order_tracking_"
MAX_RESULTS = HEALTH_NIGHTS * 4 * 6  # 4 checks, up to 6 runs a night: a hard cap on results read


@dataclass
class HealthData:
    first_night: date
    last_night: date
    generated_at: datetime
    findings: list[dict] = field(default_factory=list)  # night, type, found
    open_by_age: list[dict] = field(default_factory=list)  # night, age, type, open
    extraction: list[dict] = field(default_factory=list)  # night, table, side, rows
    vacuum: list[dict] = field(default_factory=list)  # table, at, operation, measure, when, value
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
            "problems": self.problems,
        }


def period(now: datetime, nights: int = HEALTH_NIGHTS) -> tuple[date, date]:
    last = now.date()
    return last - timedelta(days=nights - 1), last


# --- validation results ------------------------------------------------------------------------


def from_validation_results(store, first: date, last: date) -> tuple[list[dict], list[dict]]:
    """``(findings, extraction)`` records from the newest result per night and check."""
    since = datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=1)
    keys = []
    for key in store.list_keys():
        run_time = key.run_id.run_time
        if run_time is not None and (run_time if run_time.tzinfo else run_time.replace(tzinfo=UTC)) >= since:
            keys.append(key)
    keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
    newest: dict[tuple[date, str], dict] = {}
    for key in keys[:MAX_RESULTS]:
        check = key.expectation_suite_identifier.name.removeprefix(SUITE_PREFIX)
        try:
            evr = store.get(key).results[0]
        except Exception:
            log.warning("health page: cannot read validation result %s", key, exc_info=True)
            continue
        if evr.exception_info and evr.exception_info.get("raised_exception"):
            continue  # the check could not run that time: no figure to chart
        details = (evr.result or {}).get("details") or {}
        end = details.get("window_end")
        if not end:
            continue
        night = datetime.fromisoformat(str(end)).date()
        if first <= night <= last and (night, check) not in newest:  # keys are newest first
            newest[(night, check)] = {"details": details, "found": (evr.result or {}).get("observed_value")}
    findings, extraction = [], []
    for (night, check), res in sorted(newest.items()):
        details = res["details"]
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
                    "found": int(res["found"] or 0),
                }
            )
    return findings, extraction


# --- exceptions table --------------------------------------------------------------------------


def _snapshots(first: date, last: date, now: datetime) -> list[datetime]:
    """When each night is looked at: the end of its day, or now for today."""
    out = []
    for i in range((last - first).days + 1):
        end = datetime.combine(first + timedelta(days=i + 1), datetime.min.time())
        out.append(min(end, now))
    return out


def open_by_age_select(tables: Tables, snapshots: list[datetime]) -> sa.Select:
    """``(n, age, exception_type, open)``: exceptions open at ``snapshots[n]``, by age bucket."""
    ex = tables.exceptions
    nights = sa.union_all(
        *(
            sa.select(sa.literal(n, sa.Integer).label("n"), sa.literal(at, sa.DateTime).label("at"))
            for n, at in enumerate(snapshots)
        )
    ).subquery("nights")
    age = seconds_between(nights.c.at, ex.c.detected_at)
    bucket = sa.case(
        (age < 2 * DAY, sa.literal(AGE_BUCKETS[0])),
        (age < 8 * DAY, sa.literal(AGE_BUCKETS[1])),
        (age < 31 * DAY, sa.literal(AGE_BUCKETS[2])),
        else_=sa.literal(AGE_BUCKETS[3]),
    )
    open_rows = (
        sa.select(nights.c.n, bucket.label("age"), ex.c.exception_type)
        .select_from(nights)
        .join(
            ex,
            sa.and_(
                ex.c.detected_at <= nights.c.at,
                sa.or_(ex.c.resolved_at.is_(None), ex.c.resolved_at > nights.c.at),
            ),
        )
        # The period's bound on the table itself: rows open at some time in the period.
        .where(
            ex.c.detected_at <= snapshots[-1],
            sa.or_(ex.c.resolved_at.is_(None), ex.c.resolved_at > snapshots[0]),
        )
        .subquery("open_rows")
    )
    return sa.select(
        open_rows.c.n, open_rows.c.age, open_rows.c.exception_type, sa.func.count().label("open")
    ).group_by(open_rows.c.n, open_rows.c.age, open_rows.c.exception_type)


def from_exceptions(conn: Connection, tables: Tables, first: date, last: date, now: datetime) -> list[dict]:
    snapshots = _snapshots(first, last, now)
    return [
        {
            "night": (first + timedelta(days=int(r.n))).isoformat(),
            "age": r.age,
            "type": r.exception_type,
            "open": int(r.open),
        }
        for r in conn.execute(open_by_age_select(tables, snapshots))
    ]


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
        data.findings, data.extraction = from_validation_results(store, first, last)
    except Exception as exc:
        log.warning("health page: validation results not read", exc_info=True)
        data.problems.append(f"validation results not read: {db.short_reason(exc)}")
    if engine is None:
        return data
    try:
        with engine.connect() as conn:
            data.open_by_age = from_exceptions(conn, tables, first, last, now)
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
