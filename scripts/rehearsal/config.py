"""What the rehearsal deploys and against what: paths, databases, DAG and task names, budget."""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
AIRFLOW = str(Path(PY).with_name("airflow"))
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
MARIA_URL = "mysql+pymysql://root@127.0.0.1:3306"
MONITORING = "order_tracking_daily_monitoring"
VACUUM = "order_tracking_vacuum"
DQ_TASKS = [
    "dq_extraction_count_check",
    "dq_uti_uts_alignment",
    "dq_missing_spath",
    "dq_reactivated_missing_ecs",
]
VACUUM_TASKS = ["vacuum_mart_uti", "vacuum_mart_uts", "vacuum_mart_ecs_delete", "vacuum_mart_ecs_sort"]
POOL_GUARD = "check_vacuum_pool"
BUDGET_SECS = 360
ORDERS = 2000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ts(value: str) -> datetime:
    """A timestamp from the metadata DB or an XCom, as naive UTC (the night is naive UTC)."""
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
