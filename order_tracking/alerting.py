"""The DAGs' failure notifier, kept at the path the first DAG files used.

The code lives in ``order_tracking.alerts.notifier``; a DAG file written against this path keeps
working.
"""

from __future__ import annotations

from order_tracking.alerts.notifier import FailedRunNotifier

__all__ = ["FailedRunNotifier"]
