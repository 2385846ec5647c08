"""The exceptions store: ``settlement_ods.order_tracking_exceptions`` (docs/design.md section 4).

Contract:

- at most one unresolved row per (order_id, exception_type); re-detection moves ``last_seen_at``
  (and refreshes ``notes``) instead of inserting a duplicate;
- a resolved row is never touched again: a resolved exception that recurs opens a new row;
- all rows of one check are written in ONE transaction, set-based, in the warehouse
  (UPDATE ... FROM and INSERT ... SELECT from a staged temporary table);
- in ``monitor`` and the DQ tasks the rule runs once per check in all: validation staged every
  finding (:func:`stage`, ``expectations_custom/staging.py``) and the write reads that table
  (:func:`record_staged`); outside them:
- the rule runs at most once per write: when validation already fetched every finding
  (``rules.SAMPLE_SIZE`` or fewer) those rows are staged as they are (:func:`record_rows`) and the
  rule is not run again; otherwise the rule runs once into the staged table
  (:func:`record_findings`, CREATE TEMPORARY TABLE ... AS): the findings are never fetched into
  Python, so memory stays flat whatever their number;
- the exceptions table is locked only for the UPDATE / DELETE / INSERT from the staged rows,
  never while the rule runs (Redshift's LOCK blocks readers too);
- rows whose ``order_id`` is NULL cannot be keyed: they are left out (validation counts them);
- two runs writing at once stay correct: the table is locked before the first read of it, so
  writers serialize (``order_tracking.locked_write``, which also reruns Redshift error 1023).
  Redshift has no unique constraint to fall back on; PostgreSQL/SQLite also carry a partial
  unique index (schema.py) as a second line of defence.

The DAG's ``check_unresolved_exceptions`` task calls :func:`check_unresolved`; the CLI's
``exceptions`` and ``resolve`` commands call :func:`list_exceptions`, :func:`summary_by_type`
and :func:`resolve`.
"""

from __future__ import annotations

from order_tracking.checks.exceptions_store.common import (
    BY_MAX,
    NOTES_MAX,
    RecordResult,
    UnresolvedExceptionsError,
    check_exception_type,
    require_table,
)
from order_tracking.checks.exceptions_store.reading import (
    ExceptionRow,
    TypeSummary,
    check_unresolved,
    list_exceptions,
    now_passing_summary,
    summary_by_type,
    unresolved_summary,
)
from order_tracking.checks.exceptions_store.resolving import (
    check_text,
    resolve,
)
from order_tracking.checks.exceptions_store.writing import (
    STAGED_FINDINGS,
    STAGED_NOTES_WIDTH,
    Finding,
    analyze_staged,
    drop_staged,
    locked_transaction,
    record_findings,
    record_rows,
    record_staged,
    stage,
    write_staged,
    write_statements,
)
from order_tracking.locked_write import lock_statement

__all__ = [
    "BY_MAX",
    "NOTES_MAX",
    "STAGED_FINDINGS",
    "STAGED_NOTES_WIDTH",
    "ExceptionRow",
    "Finding",
    "RecordResult",
    "TypeSummary",
    "UnresolvedExceptionsError",
    "analyze_staged",
    "check_exception_type",
    "check_text",
    "check_unresolved",
    "drop_staged",
    "list_exceptions",
    "lock_statement",
    "locked_transaction",
    "now_passing_summary",
    "record_findings",
    "record_rows",
    "record_staged",
    "require_table",
    "resolve",
    "stage",
    "summary_by_type",
    "unresolved_summary",
    "write_staged",
    "write_statements",
]
