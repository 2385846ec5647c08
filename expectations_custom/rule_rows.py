"""The one metric the rule expectations ask GX for: the rows of their validation query.

GX asks an expectation for its metric dependencies twice per validation, on two copies of it
(to build the metric graph, then to pick the metric values for ``_validate``), and a metric is
known by its kwargs. With the rule's SQL in those kwargs, both calls discovered the history
tables and compiled the rule: the biggest share of our Python cost per check. Here the kwargs
only name the expectation and its parameters; the SQL is built once, when GX computes the metric.

Within ``staging.findings_staged`` the metric stages the findings instead (one scan for validation
and the write, whatever their number; see ``expectations_custom/staging.py``).
"""

from __future__ import annotations

from typing import Any

from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider

from expectations_custom.run_settings import run_settings
from expectations_custom.staging import current_staging
from order_tracking.checks.rules import compile_sql

RULE_ROWS = "order_tracking_rule.rows"


class RuleRows(QueryMetricProvider):
    """``{"rows": [...], "tables": [...]}``: what the expectation's validation query returned
    (at most ``MAX_RESULT_RECORDS`` rows) and the tables its rule read (for Data Docs)."""

    metric_name = RULE_ROWS
    value_keys = ("expectation_type", "expectation_kwargs")

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict:
        expectation = ExpectationConfiguration(
            type=metric_value_kwargs["expectation_type"], kwargs=metric_value_kwargs["expectation_kwargs"]
        ).to_domain_obj()
        staging = current_staging()
        if staging is not None and expectation.exception_type:
            # monitor / the DQ task: the one scan stages every finding, for validation and the write.
            rule = staging.rule_of(expectation, run_settings())
            return {"rows": staging.stage(rule), "tables": list(rule.tables_read)}
        engine = execution_engine.engine
        with engine.connect() as conn:
            rule, select = expectation.validation_query(conn, run_settings())
        rows = cls._get_sqlalchemy_records_from_substituted_batch_subquery(
            substituted_batch_subquery=compile_sql(select, engine.dialect),
            execution_engine=execution_engine,
        )
        return {"rows": rows, "tables": list(rule.tables_read)}
