"""Test 0 — extraction count parity, MySQL source vs Redshift raw tables."""

from __future__ import annotations

from typing import ClassVar

from great_expectations.core.suite_parameters import SuiteParameterDict

from expectations_custom.base import OrderTrackingExpectation, parse_as_of, settings_tables
from order_tracking import rules
from order_tracking.rules import RuleQuery, Window
from order_tracking.settings import Settings


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

    def validation_select(self, conn, settings: Settings):
        shortfall = self.rule(conn, settings).select.subquery("shortfall")
        import sqlalchemy as sa

        return sa.select(*shortfall.c, sa.func.count().over().label("failing_count"))

    def rule(self, conn, settings: Settings) -> RuleQuery:
        tables = settings_tables(settings)
        counts = {k: int(v) for k, v in dict(self.source_counts).items()}
        select = rules.extraction_shortfall(tables, self.window(settings), counts)
        names = tuple(f"{t.schema}.{t.name}" for t in (tables.raw_ecs, tables.raw_uti, tables.raw_uts))
        return RuleQuery("EXTRACTION_COUNT", select, names)

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
