"""Test 3 — reactivated orders missing from ecs (exception type ``REACTIVATED_ORDER_MISSING_ECS``)."""

from __future__ import annotations

from typing import ClassVar

from expectations_custom.base import OrderTrackingExpectation, settings_tables
from order_tracking import schema
from order_tracking.checks import rules
from order_tracking.checks.rules import RuleQuery
from order_tracking.settings import DQ_LOOKBACK_HOURS, REACTIVATED_ORDER_MISSING_ECS, Settings


class ExpectNoReactivatedOrderMissingEcs(OrderTrackingExpectation):
    """Every order updated in the window has its creation row in ``mart_ecs_order_info``.

    The usual cause: the order was dormant for more than six months, its ecs row was archived to
    ``hist_ecs_order_info_<YYYY>_h<1|2>``, then it was reactivated; mart_ecs never re-extracts old
    add_time rows. The finding names the history table that holds the row
    (``python -m order_tracking repair-reactivated`` moves it back).
    """

    exception_type: ClassVar[str] = REACTIVATED_ORDER_MISSING_ECS
    check_name: ClassVar[str] = "reactivated_missing_ecs"

    def scoped_rule(
        self, conn, settings: Settings, scope: rules.Scope, hist: list[str] | None = None
    ) -> RuleQuery:
        tables = settings_tables(settings)
        if hist is not None:  # the history tables validation read: no second discovery
            hist_ecs = [tables.hist_by_name(n) for n in hist if n.startswith(schema.HIST_ECS_PREFIX)]
            return rules.reactivated_order_missing_ecs(tables, scope, hist_ecs)
        return rules.reactivated_order_missing_ecs(tables, scope, rules.hist_ecs_tables(conn, tables))

    @classmethod
    def explain(cls, kwargs: dict) -> str:
        return (
            "Test 3 (REACTIVATED_ORDER_MISSING_ECS): every order whose update_time falls in the "
            f"ORDER_TRACKING_DQ_LOOKBACK_HOURS (default {DQ_LOOKBACK_HOURS}) hours before as_of"
            " must have a row in "
            "mart_ecs_order_info; the finding names the hist_ecs_order_info_* table holding it."
        )
