"""Test 1 — UTI / UTS time alignment (exception type ``UTI_UTS_TIME_MISMATCH``)."""

from __future__ import annotations

from typing import ClassVar

from expectations_custom.base import OrderTrackingExpectation, settings_tables
from order_tracking.checks import rules
from order_tracking.checks.rules import RuleQuery
from order_tracking.settings import DQ_LOOKBACK_HOURS, UTI_UTS_TIME_MISMATCH, Settings


class ExpectNoUtiUtsTimeMismatch(OrderTrackingExpectation):
    """Every order updated in the window has ``update_time`` equal to ``MAX(pathtime)``.

    Compares ``mart_uni_tracking_info.update_time`` with the latest ``pathtime`` of the same
    order in ``mart_uni_tracking_spath``. Orders with no mart spath row are left to Test 2.
    Causes: backdated update_time, a missed uti or uts extraction cycle, uti/uts sync drift.
    """

    exception_type: ClassVar[str] = UTI_UTS_TIME_MISMATCH
    check_name: ClassVar[str] = "uti_uts_alignment"

    def scoped_rule(
        self, conn, settings: Settings, scope: rules.Scope, hist: list[str] | None = None
    ) -> RuleQuery:
        return rules.uti_uts_time_mismatch(settings_tables(settings), scope)

    @classmethod
    def explain(cls, kwargs: dict) -> str:
        return (
            "Test 1 (UTI_UTS_TIME_MISMATCH): for every order whose update_time falls in the "
            f"ORDER_TRACKING_DQ_LOOKBACK_HOURS (default {DQ_LOOKBACK_HOURS}) hours before as_of"
            ", update_time in "
            "mart_uni_tracking_info must equal MAX(pathtime) in mart_uni_tracking_spath."
        )
