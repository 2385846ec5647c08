"""The in-process measurements: raw SQL, GX's stock expectation, our validation and ``monitor``."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from benchmarking.config import AS_OF, CHECKS


class RuleScans:
    """How many statements ran each check's rule, counted from the SQL every engine sends.

    Every rule starts from ``mart_uni_tracking_info``'s window (``update_time > start``), so a
    statement holding it is one scan of the rule; the follow-up's look-ups by order id (the
    re-check of open exceptions, the warehouse figures; issue 23) are not counted here. ``monitor``
    stages each check's findings once (``CREATE TEMPORARY TABLE ... AS`` the rule) and both
    validation and the write read the staged rows, so each check should count 1 whatever the
    number of findings (issue 24 section 5; it was 2 above ``rules.SAMPLE_SIZE``). Checks are told
    apart by ``run_check``: each call opens the next count (``per_check`` lists them in run order).
    A SQLAlchemy event on the ``Engine`` class sees GX's engine as well as ours.
    """

    def __init__(self, marker: str = "mart_uni_tracking_info") -> None:
        self.marker = marker
        self.per_check: list[int] = []

    def __enter__(self) -> RuleScans:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        from order_tracking.checks import run as monitoring

        self._run_check = monitoring.run_check
        monitoring.run_check = self._counted(monitoring.run_check)
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        from order_tracking.checks import run as monitoring

        event.remove(Engine, "before_cursor_execute", self._seen)
        monitoring.run_check = self._run_check

    def _counted(self, run_check: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.per_check.append(0)
            return run_check(*args, **kwargs)

        return counted

    def _seen(self, conn, cursor, statement: str, parameters, context, executemany) -> None:
        if f"{self.marker}.update_time >" in statement and self.per_check:
            self.per_check[-1] += 1


def timed(fn: Callable[[], object]) -> float:
    """Seconds that ``fn()`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Bench:
    """Everything the in-process measurements share: settings, engine, GX context, rule SQL."""

    # Any: order_tracking's Settings, which this script imports only where it is used
    def __init__(self, settings: Any) -> None:
        from order_tracking import db, schema
        from order_tracking.checks import gx_project

        self.settings = settings
        self.tables = schema.build_tables(settings)
        self.engine = db.create_engine(settings.warehouse_url, settings.warehouse_schemas, "warehouse")
        t = time.perf_counter()
        self.context = gx_project.load(settings)
        self.load_s = time.perf_counter() - t
        self.as_of_param = {"as_of": AS_OF.isoformat()}
        self.rule_scans: list[int] = []  # per check, from the last full() at AS_OF
        self.refresh_rules()
        # The stock class prints a warning that the query lacks {batch} (it names its own tables).
        with contextlib.redirect_stdout(io.StringIO()):
            self.stock = self._stock_checkpoints()

    def refresh_rules(self) -> None:
        """The three rules as run on the current tables (history tables are discovered)."""
        from order_tracking.checks import rules

        window = rules.Window.lookback(AS_OF, self.settings.dq_lookback_hours)
        with self.engine.connect() as conn:
            hist_uts = rules.hist_uts_tables(conn, self.tables, None)
            hist_ecs = rules.hist_ecs_tables(conn, self.tables)
        self.hist_tables = [*hist_uts, *hist_ecs]
        self.rules = [
            rules.uti_uts_time_mismatch(self.tables, window),
            rules.order_missing_spath(self.tables, window, hist_uts),
            rules.reactivated_order_missing_ecs(self.tables, window, hist_ecs),
        ]
        self.raw_sql = [rules.compile_sql(r.count(), self.engine.dialect) for r in self.rules]

    def _stock_checkpoints(self) -> list[Any]:
        """One checkpoint per rule with GX's own UnexpectedRowsExpectation, in a throwaway context."""
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from order_tracking.checks import rules

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_sql(name="bench", connection_string=self.settings.warehouse_url)
        batch = source.add_query_asset(name="window", query="SELECT 1 AS batch_marker")
        batch_definition = batch.add_batch_definition_whole_table("all")
        checkpoints = []
        for rule in self.rules:
            name = f"stock_{rule.exception_type.lower()}"
            # The rule's rows as literal SQL; GX wraps it in COUNT(*) and in a 200-row fetch.
            sql = rules.compile_sql(rule.select, self.engine.dialect)
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            suite.add_expectation(gxe.UnexpectedRowsExpectation(unexpected_rows_query=sql))
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
            )
            checkpoints.append(
                context.checkpoints.add(
                    gx.Checkpoint(
                        name=name, validation_definitions=[vd], result_format={"result_format": "SUMMARY"}
                    )
                )
            )
        return checkpoints

    # each returns per-check seconds
    def raw(self) -> list[float]:
        """The three rule queries as plain ``SELECT COUNT(*)``."""
        import sqlalchemy as sa

        out = []
        with self.engine.connect() as conn:
            for sql in self.raw_sql:
                out.append(timed(lambda sql=sql: conn.execute(sa.text(sql)).scalar()))
        return out

    def stock_run(self) -> list[float]:
        """The three rules through GX's stock ``UnexpectedRowsExpectation``."""
        with contextlib.redirect_stdout(io.StringIO()):
            return [timed(lambda cp=cp: cp.run()) for cp in self.stock]

    def validate(self) -> list[float]:
        """Our three validation definitions, validation only."""
        from expectations_custom.run_settings import settings_bound
        from order_tracking.checks import gx_project, gx_results

        out = []
        for check in CHECKS:
            name = gx_project.CHECKS[check].suite

            def run(name=name):
                # Our expectations read the run's settings (bound, as monitor and the DQ tasks do);
                # an error (top level or per metric) must stop the benchmark, never time as fast.
                with settings_bound(self.settings):
                    result = self.context.validation_definitions.get(name).run(
                        expectation_parameters=self.as_of_param
                    )
                for r in result.results:
                    error = gx_results.result_error(r)
                    if error:
                        raise RuntimeError(f"{name}: {error}")

            out.append(timed(run))
        return out

    def full(self, as_of: datetime = AS_OF) -> list[float]:
        """``monitoring.run_checks`` as ``monitor`` runs it; one figure, the three checks together."""
        from order_tracking.checks import gx_project
        from order_tracking.checks import run as monitoring

        loaded = gx_project.load
        gx_project.load = lambda _settings: self.context  # loaded once, outside the timing
        try:
            with RuleScans() as scans:
                start = time.perf_counter()
                report = monitoring.run_checks(self.settings, as_of, CHECKS)
                elapsed = time.perf_counter() - start
        finally:
            gx_project.load = loaded
        if as_of == AS_OF:
            self.rule_scans = scans.per_check
        errors = [f"{o.check}: {o.message}" for o in report.outcomes if o.status == "error"]
        if errors:
            raise SystemExit("monitor failed during the benchmark: " + "; ".join(errors))
        return [elapsed]
