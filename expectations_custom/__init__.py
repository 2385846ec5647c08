"""GX extensions of the project: the four rule expectations and the checkpoint actions.

Import this package before a GX context loads: GX silently drops expectations and actions whose
classes are not registered (docs/design.md section 5). ``EXPECTATIONS`` maps the CLI check names to the
classes, in the spec's order.
"""

from expectations_custom.actions import (
    OrderTrackingDataDocsAction,
    OrderTrackingEmailAction,
    RecordExceptionsAction,
)
from expectations_custom.expect_extraction_counts_match_source import ExpectExtractionCountsMatchSource
from expectations_custom.expect_no_order_missing_spath import ExpectNoOrderMissingSpath
from expectations_custom.expect_no_reactivated_order_missing_ecs import ExpectNoReactivatedOrderMissingEcs
from expectations_custom.expect_no_uti_uts_time_mismatch import ExpectNoUtiUtsTimeMismatch

EXPECTATIONS = {
    cls.check_name: cls
    for cls in (
        ExpectExtractionCountsMatchSource,
        ExpectNoUtiUtsTimeMismatch,
        ExpectNoOrderMissingSpath,
        ExpectNoReactivatedOrderMissingEcs,
    )
}

__all__ = [
    "EXPECTATIONS",
    "ExpectExtractionCountsMatchSource",
    "ExpectNoOrderMissingSpath",
    "ExpectNoReactivatedOrderMissingEcs",
    "ExpectNoUtiUtsTimeMismatch",
    "OrderTrackingDataDocsAction",
    "OrderTrackingEmailAction",
    "RecordExceptionsAction",
]
