"""Every setting of the project, read from the environment in one place.

The spec's constants keep their names (``DQ_LOOKBACK_HOURS`` ...). Everything else comes from
``ORDER_TRACKING_*`` environment variables with the defaults of DESIGN.md section 2; the embedded
default is a set of SQLite files under ``.local/`` so that ``make demo`` needs no server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from order_tracking.errors import UserError

# --- the spec's constants ------------------------------------------------------------------
DQ_LOOKBACK_HOURS = 24
EXTRACTION_WINDOW_SECS = 2 * 60 * 60
EXTRACTION_BUFFER_SECS = 5 * 60
# None means "discover every hist_uni_tracking_spath_<YYYY>_h<1|2> table by name"; an explicit
# list (env ORDER_TRACKING_HIST_UTS_TABLES, comma separated) overrides discovery.
HIST_UTS_TABLES: tuple[str, ...] | None = None

# --- Test 0 evidence and the health page (issue 13) -----------------------------------------
EXTRACTION_CYCLE_SECS = 15 * 60  # the extraction runs every 15 minutes, on the clock
LOST_ROWS_LIMIT = 50  # missing row keys listed per Test 0 result (the total is always given)
HEALTH_NIGHTS = 30  # nights shown on the Data Docs health page

# --- exception types (the spec's names) ----------------------------------------------------
UTI_UTS_TIME_MISMATCH = "UTI_UTS_TIME_MISMATCH"
ORDER_MISSING_SPATH = "ORDER_MISSING_SPATH"
REACTIVATED_ORDER_MISSING_ECS = "REACTIVATED_ORDER_MISSING_ECS"
EXCEPTION_TYPES = (UTI_UTS_TIME_MISMATCH, ORDER_MISSING_SPATH, REACTIVATED_ORDER_MISSING_ECS)

DEFAULT_ALERT_EMAIL = "jasleen.tung@uniuni.com"

# Under ORDER_TRACKING_GX_STORE_URL: <prefix>/validations/ (GX results), <prefix>/data_docs/ (the site).
VALIDATIONS_PREFIX = "validations"
DATA_DOCS_PREFIX = "data_docs"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".local"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UserError(f"{name}={raw!r} is not a whole number >= {minimum}")
    return value


def _identifier(name: str, value: str, *, fold: bool) -> str:
    """A schema name, checked; ``fold`` lower-cases it (warehouse names, see below).

    Schema names end up in SQL identifiers and SQLite file names: keep them plain. Redshift folds
    identifiers to lower case (quoted ones too, by default), so the warehouse schemas are folded
    here and compare equal everywhere. MySQL/MariaDB database names are case-sensitive on Linux:
    the source schema is used exactly as configured (SQLAlchemy quotes a mixed-case name).
    """
    if not value.isascii() or not value.replace("_", "").isalnum() or not value[0].isalpha():
        raise UserError(f"{name}={value!r} is not a valid schema name (letters, digits, _)")
    return value.lower() if fold else value


def _env_secs(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UserError(f"{name}={raw!r} is not a number of seconds >= 0")
    return value


# --- timeouts (issue 11: a server that accepts and never answers must not hang a 3am run) -------
# Connecting takes milliseconds when the server is there: 30 s waits out a failover, not longer.
CONNECT_TIMEOUT_SECS = 30.0
# The longest one socket read may wait (PyMySQL): Test 0's source counts read for seconds.
READ_TIMEOUT_SECS = 600.0
# The longest one warehouse statement may run; the checks take seconds on a night's window.
STATEMENT_TIMEOUT_SECS = 1800.0
# VACUUM of a big mart table may take hours on Redshift; it gets its own, longer limit.
VACUUM_STATEMENT_TIMEOUT_SECS = 6 * 3600.0
# How long an embedded SQLite run waits for another run's write lock.
SQLITE_BUSY_TIMEOUT_SECS = 60.0


@dataclass(frozen=True)
class Timeouts:
    """Limits applied to every connection (``db.engine_url``); 0 means no limit for statements."""

    connect_secs: float = CONNECT_TIMEOUT_SECS
    read_secs: float = READ_TIMEOUT_SECS
    statement_secs: float = STATEMENT_TIMEOUT_SECS
    vacuum_statement_secs: float = VACUUM_STATEMENT_TIMEOUT_SECS
    sqlite_busy_secs: float = SQLITE_BUSY_TIMEOUT_SECS

    @classmethod
    def from_env(cls) -> Timeouts:
        return cls(
            connect_secs=_env_secs("ORDER_TRACKING_CONNECT_TIMEOUT_SECS", CONNECT_TIMEOUT_SECS),
            read_secs=_env_secs("ORDER_TRACKING_READ_TIMEOUT_SECS", READ_TIMEOUT_SECS),
            statement_secs=_env_secs("ORDER_TRACKING_STATEMENT_TIMEOUT_SECS", STATEMENT_TIMEOUT_SECS),
            vacuum_statement_secs=_env_secs(
                "ORDER_TRACKING_VACUUM_STATEMENT_TIMEOUT_SECS", VACUUM_STATEMENT_TIMEOUT_SECS
            ),
            sqlite_busy_secs=_env_secs("ORDER_TRACKING_SQLITE_BUSY_TIMEOUT_SECS", SQLITE_BUSY_TIMEOUT_SECS),
        )


# S3 bucket naming rules (3-63 characters: lower-case letters, digits, dots and hyphens).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """Where the GX validation results and the Data Docs site live when several workers share them."""

    bucket: str
    prefix: str = ""  # without leading or trailing "/"; "" is the bucket's root

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under this location's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def parse_s3_url(name: str, value: str) -> S3Location:
    """``s3://bucket/prefix`` -> S3Location; anything else is a one-line error naming ``name``."""
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc:
        raise UserError(f"{name}={value!r} is not an s3://bucket/prefix URL")
    if not _BUCKET_RE.match(parts.netloc) or ".." in parts.netloc:
        raise UserError(f"{name}={value!r}: {parts.netloc!r} is not a valid S3 bucket name")
    return S3Location(parts.netloc, parts.path.strip("/"))


def _endpoint_url(name: str) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{name}={raw!r} is not an http(s):// URL")
    return raw.rstrip("/")


@dataclass(frozen=True)
class Settings:
    warehouse_url: str
    source_url: str
    source_schema: str = "kuaisong"
    mart_schema: str = "settlement_public"
    ods_schema: str = "settlement_ods"
    hist_uts_tables: tuple[str, ...] | None = HIST_UTS_TABLES
    dq_lookback_hours: int = DQ_LOOKBACK_HOURS
    extraction_window_secs: int = EXTRACTION_WINDOW_SECS
    extraction_buffer_secs: int = EXTRACTION_BUFFER_SECS
    alert_email: str = DEFAULT_ALERT_EMAIL
    gx_root: Path = field(default=PROJECT_ROOT / "gx")
    # Unset: validation results and Data Docs stay under gx_root/uncommitted (one machine).
    gx_store: S3Location | None = None
    s3_endpoint_url: str | None = None  # an S3-compatible store (MinIO, a test server); unset = AWS
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def from_env(cls, warehouse_url: str | None = None, source_url: str | None = None) -> Settings:
        """Settings from ``ORDER_TRACKING_*`` variables; explicit arguments (CLI flags) win."""
        hist = os.environ.get("ORDER_TRACKING_HIST_UTS_TABLES", "").strip()
        store = os.environ.get("ORDER_TRACKING_GX_STORE_URL", "").strip()
        return cls(
            warehouse_url=warehouse_url
            or _env("ORDER_TRACKING_WAREHOUSE_URL", default_sqlite_url("warehouse")),
            source_url=source_url or _env("ORDER_TRACKING_SOURCE_URL", default_sqlite_url("source")),
            source_schema=_identifier(
                "ORDER_TRACKING_SOURCE_SCHEMA", _env("ORDER_TRACKING_SOURCE_SCHEMA", "kuaisong"), fold=False
            ),
            mart_schema=_identifier(
                "ORDER_TRACKING_MART_SCHEMA",
                _env("ORDER_TRACKING_MART_SCHEMA", "settlement_public"),
                fold=True,
            ),
            ods_schema=_identifier(
                "ORDER_TRACKING_ODS_SCHEMA", _env("ORDER_TRACKING_ODS_SCHEMA", "settlement_ods"), fold=True
            ),
            hist_uts_tables=tuple(t.strip() for t in hist.split(",") if t.strip()) if hist else None,
            dq_lookback_hours=_env_int("ORDER_TRACKING_DQ_LOOKBACK_HOURS", DQ_LOOKBACK_HOURS, minimum=1),
            extraction_window_secs=_env_int(
                "ORDER_TRACKING_EXTRACTION_WINDOW_SECS", EXTRACTION_WINDOW_SECS, minimum=1
            ),
            extraction_buffer_secs=_env_int("ORDER_TRACKING_EXTRACTION_BUFFER_SECS", EXTRACTION_BUFFER_SECS),
            alert_email=_env("ORDER_TRACKING_ALERT_EMAIL", DEFAULT_ALERT_EMAIL),
            gx_root=Path(_env("ORDER_TRACKING_GX_ROOT", str(PROJECT_ROOT / "gx"))),
            gx_store=parse_s3_url("ORDER_TRACKING_GX_STORE_URL", store) if store else None,
            s3_endpoint_url=_endpoint_url("ORDER_TRACKING_S3_ENDPOINT_URL"),
            timeouts=Timeouts.from_env(),
        )

    @property
    def warehouse_schemas(self) -> tuple[str, str]:
        return (self.mart_schema, self.ods_schema)

    @property
    def data_docs_index(self) -> Path:
        """The Data Docs home page that GX's local_site builds (gx/great_expectations.yml)."""
        return self.gx_root / "uncommitted" / "data_docs" / "local_site" / "index.html"

    @property
    def data_docs_location(self) -> str:
        """Where the Data Docs home page is: the local file, or its object in the shared bucket."""
        if self.gx_store is None:
            return str(self.data_docs_index)
        return f"s3://{self.gx_store.bucket}/{self.gx_store.key(DATA_DOCS_PREFIX, 'index.html')}"


def default_sqlite_url(role: str) -> str:
    """The embedded default: ``.local/<role>.db`` plus one ATTACHed file per schema."""
    return f"sqlite:///{LOCAL_DIR / (role + '.db')}"


# --- the alert email (outside Airflow) and its links ------------------------------------------
# Kept apart from ``Settings`` (branch morning): what the email needs, read when it is sent.
DEFAULT_SMTP_TIMEOUT_SECS = 30  # connect, and every read: a silent server must not hold the run


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise UserError(f"{name}={raw!r} is not 0/1")


@dataclass(frozen=True)
class AlertSettings:
    """``ORDER_TRACKING_SMTP_*`` (no host: no email), the recipients and the Data Docs base URL."""

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_secs: float = DEFAULT_SMTP_TIMEOUT_SECS
    sender: str = "order-tracking-dq@localhost"
    recipients: tuple[str, ...] = (DEFAULT_ALERT_EMAIL,)
    # Where the Data Docs site is served (e.g. an S3 website or an nginx); unset: file paths.
    data_docs_base_url: str | None = None

    @classmethod
    def from_env(cls) -> AlertSettings:
        timeout = os.environ.get("ORDER_TRACKING_SMTP_TIMEOUT_SECS", "").strip()
        try:
            timeout_secs = float(timeout) if timeout else DEFAULT_SMTP_TIMEOUT_SECS
        except ValueError:
            timeout_secs = -1.0
        if timeout_secs <= 0:
            raise UserError(f"ORDER_TRACKING_SMTP_TIMEOUT_SECS={timeout!r} is not a number of seconds > 0")
        to = _env("ORDER_TRACKING_ALERT_EMAIL", DEFAULT_ALERT_EMAIL)
        return cls(
            smtp_host=os.environ.get("ORDER_TRACKING_SMTP_HOST", "").strip(),
            smtp_port=_env_int("ORDER_TRACKING_SMTP_PORT", 25),
            smtp_user=os.environ.get("ORDER_TRACKING_SMTP_USER") or None,
            smtp_password=os.environ.get("ORDER_TRACKING_SMTP_PASSWORD") or None,
            smtp_starttls=_env_bool("ORDER_TRACKING_SMTP_STARTTLS"),
            smtp_ssl=_env_bool("ORDER_TRACKING_SMTP_SSL"),
            smtp_timeout_secs=timeout_secs,
            sender=_env("ORDER_TRACKING_EMAIL_FROM", "order-tracking-dq@localhost"),
            recipients=tuple(a.strip() for a in to.split(",") if a.strip()),
            data_docs_base_url=os.environ.get("ORDER_TRACKING_DATA_DOCS_BASE_URL", "").strip() or None,
        )
