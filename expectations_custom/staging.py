"""One rule scan per check: the findings are staged once, for validation and for the write.

Inside :func:`findings_staged` (``monitor`` and the Airflow DQ tasks bind it around each
checkpoint run), the rule metric does not run the rule's sample query against the warehouse
tables. It stages every failing order once, in a session of its own (``CREATE TEMPORARY TABLE
... AS`` the rule, ``RuleQuery.per_order``), and validation reads its count and sample from
there (``rules.sample_from_staged``). The exceptions action then writes from the same staged
table, in the same session (a temporary table lives in its session only). So each check scans
its tables once, with 10 findings or 1.5M (issue 24 section 5); before, above ``SAMPLE_SIZE``
findings the write ran the rule a second time.

Unbound (a validation definition run alone, the benchmark's "validation only" figure), the metric
runs the one-scan sample query as before, and the action stages on its own when it must.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from expectations_custom.scoped import bound
from order_tracking import db
from order_tracking.checks import exceptions_store
from order_tracking.checks.rules import RuleQuery, sample_from_staged
from order_tracking.locked_write import session
from order_tracking.settings import Settings


@dataclass
class Staging:
    """The session of one checkpoint run and the findings staged in it (one check: one table)."""

    engine: Engine
    stack: ExitStack = field(default_factory=ExitStack)
    conn: Connection | None = None
    staged: dict[str, sa.Table] = field(default_factory=dict)  # exception type -> staged table

    def connection(self) -> Connection:
        """The run's session, opened on first use."""
        if self.conn is None:
            self.conn = self.stack.enter_context(session(self.engine))
        return self.conn

    def rule_of(self, expectation: Any, settings: Settings) -> RuleQuery:
        """``expectation``'s rule, its history tables discovered on this session."""
        conn = self.connection()
        try:
            return expectation.rule(conn, settings)
        finally:
            if conn.in_transaction():
                conn.rollback()  # catalog reads only; the staging opens its own transaction

    def stage(self, rule: RuleQuery) -> list[dict]:
        """Stage every failing order of ``rule`` (the one scan); validation's rows, read from there."""
        conn = self.connection()
        if rule.exception_type in self.staged:  # never two tables of one name in a session
            self.discard(rule.exception_type)
        staged = exceptions_store.stage(conn, rule.per_order(), rule.annotate)
        self.staged[rule.exception_type] = staged
        try:
            return [dict(row) for row in conn.execute(sample_from_staged(staged)).mappings()]
        finally:
            if conn.in_transaction():
                conn.rollback()  # a read: the write's locked transaction must be the next one

    def take(self, exception_type: str) -> sa.Table | None:
        """The staged table of ``exception_type`` for the write, which drops it; None if none."""
        return self.staged.pop(exception_type, None)

    def discard(self, exception_type: str) -> None:
        self.staged.pop(exception_type, None)
        if self.conn is not None:
            exceptions_store.drop_staged(self.conn)

    def close(self) -> None:
        """Drop what no write took (a passing check stages an empty table), close the session."""
        try:
            for exception_type in list(self.staged):
                self.discard(exception_type)
        finally:
            self.stack.close()


_STAGING: ContextVar[Staging | None] = ContextVar("order_tracking_findings_staging", default=None)


def current_staging() -> Staging | None:
    """The bound :class:`Staging`, or None outside :func:`findings_staged`."""
    return _STAGING.get()


@contextmanager
def findings_staged(settings: Settings) -> Iterator[Staging]:
    """Within, each rule check stages its findings once, for validation and the write."""
    engine = db.shared_engine(
        settings.warehouse_url, settings.warehouse_schemas, "warehouse", settings.timeouts
    )
    staging = Staging(engine)
    try:
        with bound(_STAGING, staging):
            yield staging
    finally:
        staging.close()
