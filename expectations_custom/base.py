"""What the four rule expectations share: one pass over the warehouse, a sample, plain-words docs.

GX 1.x only supports custom SQL expectations as subclasses of ``UnexpectedRowsExpectation``.
The stock class asks for two metrics (``.row_count`` and ``.table``), i.e. runs its query twice.
Here the query is the rule from ``order_tracking.checks.rules`` wrapped so that every returned row also
carries ``COUNT(*) OVER ()``; one metric is requested (``rule_rows.RULE_ROWS``), so validation
costs one scan, and the result carries the failing count plus a sample with the evidence.

The SQL is compiled when GX computes that metric, for the execution engine's dialect (SQLite,
PostgreSQL, Redshift) with the run's ``as_of`` inlined; ``unexpected_rows_query`` in the suite
JSON is only the human description shown in Data Docs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from great_expectations.compatibility import pydantic
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.render import LegacyDiagnosticRendererType, LegacyRendererType
from great_expectations.render.components import (
    RenderedStringTemplateContent,
    RenderedTableContent,
)
from great_expectations.render.renderer.renderer import renderer
from great_expectations.validator.metric_configuration import MetricConfiguration

from expectations_custom.rule_rows import RULE_ROWS
from expectations_custom.run_settings import run_settings
from order_tracking import schema
from order_tracking.alerts import follow_up_text
from order_tracking.alerts.content import SAMPLE_IN_EMAIL
from order_tracking.alerts.next_steps import NextStep, next_step
from order_tracking.checks import gx_results
from order_tracking.checks.rules import RuleQuery, Scope, Window
from order_tracking.errors import UserError
from order_tracking.settings import Settings

_TOTALS = frozenset({"failing_count", "skipped_null_order_ids"})  # on every row, not columns
DESCRIBED_IN_CODE = "built at validation time by order_tracking.checks.rules (see the description above)"


def parse_as_of(value: Any) -> datetime:
    """``as_of`` arrives as an ISO string (expectation parameter) or a datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            from datetime import UTC

            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    raise ValueError(f"as_of must be an ISO timestamp, got {value!r} (pass expectation_parameters)")


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):  # a DATE column: date.isoformat() takes no separator (issue 28)
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        # A whole number of seconds (diff_seconds is microseconds / 1e6 as a float) reads
        # "-3600", not "-3600.0"; a fraction keeps its shortest exact form ("0.25").
        return int(value)
    return value


def complete_findings(keyed_rows: Sequence[dict], count: int) -> list[list] | None:
    """``[[order_id, notes], ...]`` if the fetched rows are every failing order, else ``None``.

    Validation fetches up to ``rules.SAMPLE_SIZE`` orders (one row each); when ``count`` fits,
    the result carries them all and the write pass stages exactly these rows.
    """
    if count == 0 or count > len(keyed_rows):
        return None
    return [[int(row["order_id"]), row.get("notes")] for row in keyed_rows]


class OrderTrackingExpectation(UnexpectedRowsExpectation):
    """Base of the rule expectations. Subclasses implement ``rule`` and ``explain``."""

    as_of: str | datetime | SuiteParameterDict = pydantic.Field(
        description="End of the checked window (UTC); pass it as {'$PARAMETER': 'as_of'}."
    )
    unexpected_rows_query: str | SuiteParameterDict = DESCRIBED_IN_CODE
    sample_size: int = 20

    # One metric: the wrapped rule returns its count with its rows (see module docstring).
    metric_dependencies: ClassVar[tuple[str, ...]] = (RULE_ROWS,)
    success_keys: ClassVar[tuple[str, ...]] = ("unexpected_rows_query", "as_of")
    exception_type: ClassVar[str | None] = None  # the exceptions-table type, if any
    check_name: ClassVar[str] = ""

    @pydantic.validator("unexpected_rows_query")
    def _validate_query(cls, query: Any) -> Any:
        # The parent insists on a {batch} placeholder and prints a warning otherwise; our SQL is
        # generated from the rule module, not typed into the suite.
        return query

    # --- to implement -------------------------------------------------------------------------
    def scoped_rule(self, conn, settings: Settings, scope: Scope, hist: list[str] | None = None) -> RuleQuery:
        """The rule over ``scope``: the run's window, or given orders (``rules.OrderIds``: the
        re-check of open exceptions, issue 23). One builder, so both run the same SQL. ``hist``:
        the history table names to use (those validation read) instead of discovering them."""
        raise NotImplementedError

    @staticmethod
    def hist_read(result) -> list[str]:
        """The history tables a validation result says its rule read (``details["tables"]``)."""
        names = ((result.result or {}).get("details") or {}).get("tables") or []
        return [n.rsplit(".", 1)[-1] for n in names if schema.HIST_RE.match(n.rsplit(".", 1)[-1])]

    def rule(self, conn, settings: Settings) -> RuleQuery:
        return self.scoped_rule(conn, settings, self.window(settings))

    def validation_query(self, conn, settings: Settings) -> tuple[RuleQuery, sa.Select]:
        """The rule and the one query validation runs: failing rows with ``failing_count``."""
        rule = self.rule(conn, settings)
        return rule, rule.sample_with_count()

    def window(self, settings: Settings) -> Window:
        # The setting is the one source of the lookback (a value stored in the suite would
        # silently win over ORDER_TRACKING_DQ_LOOKBACK_HOURS, issue 11).
        return Window.lookback(parse_as_of(self.as_of), settings.dq_lookback_hours)

    @classmethod
    def explain(cls, kwargs: dict) -> str:
        raise NotImplementedError

    # --- GX hooks -----------------------------------------------------------------------------
    def get_validation_dependencies(self, execution_engine=None, runtime_configuration=None):
        deps = super().get_validation_dependencies(
            execution_engine=execution_engine, runtime_configuration=runtime_configuration
        )
        stock = deps.get_metric_configuration(RULE_ROWS)
        # Cheap on purpose (GX calls this twice per validation): the metric builds the SQL.
        config = self.configuration
        value_kwargs = {"expectation_type": config.type, "expectation_kwargs": dict(config.kwargs)}
        deps.set_metric_configuration(
            RULE_ROWS,
            MetricConfiguration(
                metric_name=RULE_ROWS,
                metric_domain_kwargs=stock.metric_domain_kwargs,
                metric_value_kwargs=value_kwargs,
            ),
        )
        return deps

    def _validate(self, metrics: dict, runtime_configuration=None, execution_engine=None):
        rule_rows = metrics[RULE_ROWS] or {}
        rows = rule_rows.get("rows") or []
        count = int(rows[0].get("failing_count") or 0) if rows else 0
        skipped = int(rows[0].get("skipped_null_order_ids") or 0) if rows else 0
        keyed = rows
        if self.exception_type is not None:  # rows keyed by order_id; the NULL group sorts last
            keyed = [row for row in rows if row.get("order_id") is not None]
        columns = [k for k in (rows[0].keys() if rows else ()) if k not in _TOTALS]
        sample = [{k: jsonable(row[k]) for k in columns} for row in keyed[: self.sample_size]]
        window = self.window(run_settings())
        tables_read = list(rule_rows.get("tables") or [])
        return {
            "success": count == 0,
            "result": {
                "observed_value": count,
                "details": {
                    "check": self.check_name,
                    "exception_type": self.exception_type,
                    "window_start": jsonable(window.start),
                    "window_end": jsonable(window.end),
                    "tables": tables_read,
                    "sample_columns": columns,  # stored JSON sorts dict keys; keep the SQL order
                    "sample": sample,
                    "skipped_null_order_ids": skipped,
                    # Every failing order with its notes when validation fetched them all: the
                    # write pass records exactly these and never runs the rule again.
                    "findings": complete_findings(keyed, count) if self.exception_type else None,
                },
            },
        }

    # --- Data Docs ----------------------------------------------------------------------------
    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(cls, configuration=None, result=None, runtime_configuration=None, **kwargs):
        kw = dict(configuration.kwargs) if configuration else {}
        if result is not None and result.expectation_config is not None:
            kw = dict(result.expectation_config.kwargs)
        text = cls.explain(kw)
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={"template": text.replace("$", "$$"), "params": {}},
            )
        ]

    @classmethod
    @renderer(renderer_type=LegacyDiagnosticRendererType.OBSERVED_VALUE)
    def _diagnostic_observed_value_renderer(
        cls, configuration=None, result=None, runtime_configuration=None, **kwargs
    ):
        if result is None or result.result is None:
            return "--"
        count = result.result.get("observed_value")
        if count is None:
            return "--"
        noun = cls.counted_noun()
        return f"{count} {noun}{'' if count == 1 else 's'}"

    @classmethod
    def counted_noun(cls) -> str:
        return "failing order"

    @classmethod
    def next_step_for(cls, result, sample: list[dict]) -> NextStep | None:
        """The spec's Action and the exact command for this failed result (None for an error)."""
        if gx_results.result_error(result):
            return None
        kwargs = result.expectation_config.kwargs if result.expectation_config else {}
        as_of = kwargs.get("as_of") if isinstance(kwargs.get("as_of"), str) else None
        ids = [row["order_id"] for row in sample[:SAMPLE_IN_EMAIL] if "order_id" in row]
        total = (result.result or {}).get("observed_value")
        try:  # the page names the configured source database (rendered inside a run)
            source_schema = run_settings().source_schema
        except UserError:  # rendered outside a run (e.g. a manual GX rebuild): the spec's name
            source_schema = "kuaisong"
        return next_step(cls.exception_type or cls.check_name, ids, as_of, total, source_schema)

    @classmethod
    @renderer(renderer_type=LegacyDiagnosticRendererType.UNEXPECTED_TABLE)
    def _diagnostic_unexpected_table_renderer(
        cls, configuration=None, result=None, runtime_configuration=None, **kwargs
    ):
        if result is None or not result.result:
            return None
        details = result.result.get("details") or {}
        sample = details.get("sample") or []
        # The prescriptive renderer only sees the configuration; the window and tables of this
        # run are in the result, so they are shown here, for passing runs too.
        facts = []
        if details.get("window_start"):
            facts.append(f"Window (UTC): {details['window_start']} .. {details['window_end']}.")
        if details.get("tables"):
            facts.append("Tables: " + ", ".join(details["tables"]) + ".")
        if sample:
            total = result.result.get("observed_value") or len(sample)
            facts.append(f"Sample: {len(sample)} of {total}, lowest order ids first.")
        blocks: list = [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={"template": " ".join(facts).replace("$", "$$"), "params": {}},
            )
        ]
        # Issue 23: the source verdicts and the healed open exceptions, worded as in the email.
        blocks += [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={"tag": "div", "template": line.replace("$", "$$"), "params": {}},
            )
            for line in follow_up_text.lines(details.get("follow_up"))
        ]
        step = None if result.success else cls.next_step_for(result, sample)
        if step is not None:
            # What to do about it, worded as in the alert email (order_tracking.alerts.content).
            blocks.append(
                RenderedStringTemplateContent(
                    content_block_type="string_template",
                    string_template={
                        "tag": "div",  # its own paragraph, not run on after the facts above
                        "template": "Next step: $action\nFix: $command ($note)",
                        "params": {"action": step.action, "command": step.command, "note": step.command_note},
                        "styling": {"classes": ["mt-2"], "params": {"command": {"tag": "code"}}},
                    },
                )
            )
        if not sample:
            return blocks
        header = details.get("sample_columns") or list(sample[0].keys())
        return [
            *blocks,
            RenderedTableContent(
                content_block_type="table",
                table=[[str(row.get(h)) for h in header] for row in sample],
                header_row=header,
                styling={"body": {"classes": ["table-bordered", "table-sm", "mt-3"]}},
            ),
        ]


@functools.lru_cache(maxsize=16)
def settings_tables(settings: Settings) -> schema.Tables:
    """Table metadata for ``settings`` (frozen, hashable), built once per process.

    Every validation builds its rule two or three times (GX asks for the metric dependencies on
    two expectation instances); building the ~20 tables each time was a third of our Python cost
    per validation. The metadata depends on the settings only, never on the database.
    """
    return schema.build_tables(settings)
