"""Test 2 — orders missing from spath (exception type ``ORDER_MISSING_SPATH``)."""

from __future__ import annotations

from typing import ClassVar

from expectations_custom.base import OrderTrackingExpectation, settings_tables
from order_tracking import schema
from order_tracking.checks import rules
from order_tracking.checks.rules import RuleQuery
from order_tracking.settings import DQ_LOOKBACK_HOURS, ORDER_MISSING_SPATH, Settings


class ExpectNoOrderMissingSpath(OrderTrackingExpectation):
    """Every order updated in the window has at least one tracking path event somewhere.

    Looks in ``mart_uni_tracking_spath`` and in every history table
    ``hist_uni_tracking_spath_<YYYY>_h<1|2>``. History tables are discovered by name, so the
    half-year table created on 1 Jan / 1 Jul needs no change; ``hist_uts_tables`` (or the setting
    ``ORDER_TRACKING_HIST_UTS_TABLES``) overrides discovery with an explicit list.
    """

    hist_uts_tables: list[str] | None = None

    exception_type: ClassVar[str] = ORDER_MISSING_SPATH
    check_name: ClassVar[str] = "missing_spath"

    def scoped_rule(
        self, conn, settings: Settings, scope: rules.Scope, hist: list[str] | None = None
    ) -> RuleQuery:
        tables = settings_tables(settings)
        if hist is not None:  # the history tables validation read: no second discovery
            hist_uts = [tables.hist_by_name(n) for n in hist if n.startswith(schema.HIST_UTS_PREFIX)]
            return rules.order_missing_spath(tables, scope, hist_uts)
        explicit = self.hist_uts_tables if self.hist_uts_tables is not None else settings.hist_uts_tables
        return rules.order_missing_spath(tables, scope, rules.hist_uts_tables(conn, tables, explicit))

    @classmethod
    def explain(cls, kwargs: dict) -> str:
        return (
            "Test 2 (ORDER_MISSING_SPATH): every order whose update_time falls in the "
            f"ORDER_TRACKING_DQ_LOOKBACK_HOURS (default {DQ_LOOKBACK_HOURS}) hours before as_of"
            " must have at "
            "least one row in mart_uni_tracking_spath or in a hist_uni_tracking_spath_* table."
        )
