"""Test 0 — extraction count parity, MySQL source vs Redshift raw tables."""

from __future__ import annotations

import logging
from typing import ClassVar

import sqlalchemy as sa
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.render import LegacyDiagnosticRendererType
from great_expectations.render.components import RenderedStringTemplateContent, RenderedTableContent
from great_expectations.render.renderer.renderer import renderer

from expectations_custom.base import OrderTrackingExpectation, parse_as_of, settings_tables
from expectations_custom.rule_rows import RULE_ROWS
from expectations_custom.run_settings import run_settings
from order_tracking import db
from order_tracking.checks import extraction_sql, lost_rows
from order_tracking.checks.rules import RuleQuery, Window
from order_tracking.settings import Settings

log = logging.getLogger(__name__)


RETENTION_KEY = "raw_retention"


class RawRetentionError(Exception):
    """The window is older than what the raw tables keep: Test 0 cannot be checked for it."""


class ExpectExtractionCountsMatchSource(OrderTrackingExpectation):
    """No raw table holds fewer rows than the MySQL source for the closed 2-hour window.

    Window ``[as_of - window - buffer, as_of - buffer)`` on add_time (ecs), update_time (uti) and
    pathTime (uts). Source counts are measured on MySQL before validation and passed in as the
    ``source_counts`` parameter; the raw counts are taken here, in the warehouse. More raw rows
    than source rows is normal for uti (an order seen in several 15-minute cycles). A shortfall
    is an infrastructure alarm: it writes no exception rows, the caller raises.
    """

    source_counts: dict | SuiteParameterDict

    check_name: ClassVar[str] = "extraction_count"

    def window(self, settings: Settings) -> Window:
        # The same settings as the MySQL side (monitoring.measure_source_counts): both counts
        # must cover one window, or clean data raises a false alarm.
        return Window.extraction(
            parse_as_of(self.as_of), settings.extraction_window_secs, settings.extraction_buffer_secs
        )

    def validation_query(self, conn, settings: Settings) -> tuple[RuleQuery, sa.Select]:
        # Every table's counts, short or not (the health page charts them night by night);
        # _validate keeps only the short ones as the failing rows.
        return self.rule(conn, settings), self._counts_select(settings)

    def rule(self, conn, settings: Settings) -> RuleQuery:
        tables = settings_tables(settings)
        select = extraction_sql.extraction_shortfall(tables, self.window(settings), self._source_counts())
        names = tuple(f"{t.schema}.{t.name}" for t in (tables.raw_ecs, tables.raw_uti, tables.raw_uts))
        return RuleQuery("EXTRACTION_COUNT", select, names)

    def _source_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in dict(self.source_counts).items()}

    def _counts_select(self, settings: Settings) -> sa.Select:
        tables = settings_tables(settings)
        return extraction_sql.extraction_counts(tables, self.window(settings), self._source_counts())

    def _validate(self, metrics: dict, runtime_configuration=None, execution_engine=None):
        rule_rows = metrics[RULE_ROWS] or {}
        rows = rule_rows.get("rows") or []
        counts = [
            {
                "table": r["table_name"],
                "source_count": int(r["source_count"]),
                "raw_count": int(r["raw_count"]),
            }
            for r in rows
        ]
        short = [r for r in rows if int(r["raw_count"]) < int(r["source_count"])]
        short = [{**r, "failing_count": len(short)} for r in short]
        result = super()._validate(
            {**metrics, RULE_ROWS: {**rule_rows, "rows": short}}, runtime_configuration, execution_engine
        )
        details = result["result"]["details"]
        details["counts"] = counts
        if short:
            lost = self._lost_rows(execution_engine, [r["table_name"] for r in short])
            if RETENTION_KEY in lost:
                # A window the raw tables no longer hold cannot be checked: an error (exit 3),
                # never an alarm listing every source row as lost. GX records the raise as
                # the result's error, as for a missing table.
                raise RawRetentionError(lost[RETENTION_KEY])
            details.update(lost)
        return result

    def _lost_rows(self, execution_engine, short_tables: list[str]) -> dict:
        """Which cycles lost which rows (or ``{RETENTION_KEY: why}`` when the raw tables no longer
        hold the window); a failure here is reported, never loses the alarm."""
        settings = run_settings()
        source = db.create_engine(
            settings.source_url, [settings.source_schema], role="source", timeouts=settings.timeouts
        )
        try:
            with source.connect() as src, execution_engine.engine.connect() as wh:
                tables, window = settings_tables(settings), self.window(settings)
                retention = lost_rows.raw_retention(src, wh, tables, window)
                if retention is not None:
                    return {RETENTION_KEY: retention}
                return lost_rows.report(src, wh, tables, window, short_tables)
        except Exception as exc:
            log.warning("Test 0: the lost-row report failed", exc_info=True)
            return {
                "lost_rows_error": f"lost-row report failed: {type(exc).__name__}: {db.short_reason(exc)}"
            }
        finally:
            source.dispose()

    @classmethod
    def counted_noun(cls) -> str:
        return "raw table short of the source"

    @classmethod
    def explain(cls, kwargs: dict) -> str:
        counts = kwargs.get("source_counts")
        text = (
            "Test 0 (extraction count): in the closed window [as_of - 2h5m, as_of - 5m), each of "
            "ecs_order_info_raw, uni_tracking_info_raw and uni_tracking_spath_raw must hold at least "
            "as many rows as its MySQL source table (kuaisong)."
        )
        if isinstance(counts, dict):
            text += " Source counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + "."
        return text

    @classmethod
    @renderer(renderer_type=LegacyDiagnosticRendererType.UNEXPECTED_TABLE)
    def _diagnostic_unexpected_table_renderer(
        cls, configuration=None, result=None, runtime_configuration=None, **kwargs
    ):
        """The base page (window, tables, short tables), then which cycle lost which rows."""
        blocks = (
            super()._diagnostic_unexpected_table_renderer(
                configuration=configuration,
                result=result,
                runtime_configuration=runtime_configuration,
                **kwargs,
            )
            or []
        )
        details = ((result.result or {}).get("details") or {}) if result is not None else {}
        return blocks + cycle_blocks(details)


def _text_block(text: str) -> RenderedStringTemplateContent:
    return RenderedStringTemplateContent(
        content_block_type="string_template",
        string_template={"template": text.replace("$", "$$"), "params": {}},
    )


def _table_block(header: list[str], rows: list[list[str]]) -> RenderedTableContent:
    return RenderedTableContent(
        content_block_type="table",
        table=rows,
        header_row=header,
        styling={"body": {"classes": ["table-bordered", "table-sm", "mt-3"]}},
    )


def cycle_blocks(details: dict) -> list:
    """Data Docs blocks for ``cycles`` / ``missing_rows`` / ``missing_total`` (lost_rows)."""
    blocks: list = []
    if details.get("lost_rows_error"):
        blocks.append(_text_block(details["lost_rows_error"]))
    cycles = details.get("cycles") or []
    if cycles:
        blocks.append(
            _text_block(
                "Rows per 15-minute extraction cycle; SHORT marks a cycle whose raw table holds "
                "fewer rows than the source:"
            )
        )
        rows = [
            [
                c["table"],
                c["cycle_start"],
                str(c["source_count"]),
                str(c["raw_count"]),
                "SHORT" if c["raw_count"] < c["source_count"] else "",
            ]
            for c in cycles
        ]
        blocks.append(_table_block(["table", "cycle start (UTC)", "source", "raw", ""], rows))
    missing = details.get("missing_rows") or []
    if missing or "missing_total" in details:
        total = details.get("missing_total", len(missing))
        blocks.append(
            _text_block(
                f"Source rows with no raw copy in the short cycles: {total}"
                + (f" (first {len(missing)} listed)" if total > len(missing) else "")
                + ". Key: order_id for ecs_order_info and uni_tracking_info, the source id for "
                "uni_tracking_spath."
            )
        )
        rows = [[m["table"], str(m["key"]), str(m["order_id"]), str(m["time"])] for m in missing]
        if rows:
            blocks.append(_table_block(["table", "key", "order_id", "time (UTC)"], rows))
    return blocks
