"""Every setting of the project, read from the environment in one place.

The spec's constants keep their names (``DQ_LOOKBACK_HOURS`` ...). Everything else comes from
``ORDER_TRACKING_*`` environment variables with the defaults of docs/design.md section 2; the embedded
default is a set of SQLite files under ``.local/`` so that ``make demo`` needs no server.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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

# --- retention of GX validation results and Data Docs pages (issue 25) ----------------------
KEEP_DAYS = 90  # results and their pages older than this are pruned (``prune``, end of ``monitor``)
MAX_KEEP_DAYS = 10 * 365  # ten years: far past any audit need, and inside datetime's range
# --- source verdicts and healed exceptions (issue 23) --------------------------------------
# Findings of Tests 1 and 2 looked up in the MySQL source per type and run; the rest: "unknown".
SOURCE_CHECK_LIMIT = 2000
MAX_SOURCE_CHECK_LIMIT = 1_000_000  # a million ids is 1,000 source queries: far past any night

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


# --- numbers from the environment: each one range-checked, its error naming the range ----------
# A value outside these reached the drivers and the date arithmetic (issue 28): ``inf`` was an
# OverflowError traceback (exit 1), 3000000 s an invalid statement_timeout at connect, 1e20 hours
# "date value out of range".
# The longest timeout, a week, fits every driver and server: PostgreSQL's statement_timeout is an
# int of milliseconds (at most 2147483647, 24.8 days), PyMySQL's connect_timeout at most a year,
# SQLite's busy timeout an int of milliseconds, and a socket timeout a C timeval.
MAX_TIMEOUT_SECS = 7 * 24 * 3600
# The longest window back from as_of: ten years keeps ``as_of - window`` far inside datetime's
# years 1-9999 and the servers' timestamp ranges.
MAX_WINDOW_HOURS = 10 * 365 * 24
# The Test 0 buffer (extraction lag) is minutes; a week is already far past any meaning.
MAX_BUFFER_SECS = 7 * 24 * 3600


def _shown(raw: str) -> str:
    """The bad value as the error quotes it: a pasted 5,000-digit number stays one short line."""
    return raw if len(raw) <= 40 else raw[:37] + "..."


def _env_int(
    name: str, default: int, *, minimum: int, maximum: int, what: str = "whole number", span: str = ""
) -> int:
    """A whole number from ``name``, ``minimum`` to ``maximum``; the error describes the allowed
    values as ``what`` (with its unit) and ``span`` (the maximum in words)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:  # also "1e20", "2.5" and numbers of more than 4300 digits
        value = minimum - 1
    if not minimum <= value <= maximum:
        words = f" ({span})" if span else ""
        raise UserError(f"{name}={_shown(raw)!r} is not a {what} from {minimum} to {maximum}{words}")
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


def _env_secs(name: str, default: float, *, zero: bool = True) -> float:
    """A timeout in seconds from ``name``, up to MAX_TIMEOUT_SECS; ``zero``: 0 is allowed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)  # "inf", "nan" and "1e400" (inf) parse: the range check refuses them
    except ValueError:
        value = math.nan
    low = value >= 0 if zero else value > 0
    if not (low and value <= MAX_TIMEOUT_SECS):  # False for nan
        allowed = "from 0 to" if zero else "greater than 0 and at most"
        raise UserError(
            f"{name}={_shown(raw)!r} is not a number of seconds {allowed} {MAX_TIMEOUT_SECS} (7 days)"
        )
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
            connect_secs=_env_secs("ORDER_TRACKING_CONNECT_TIMEOUT_SECS", CONNECT_TIMEOUT_SECS, zero=False),
            read_secs=_env_secs("ORDER_TRACKING_READ_TIMEOUT_SECS", READ_TIMEOUT_SECS, zero=False),
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
    """An http(s) address (the S3 endpoint, the Data Docs base URL) without any ``user:password@``.

    boto3 signs every request with the AWS credential chain and ignores a user and password in
    the endpoint URL; kept, a key pasted there was copied into every Data Docs link of the email
    (issue 28). Dropped here, it cannot be printed, linked or logged anywhere.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = "***@" + raw.rsplit("@", 1)[1] if "@" in raw else raw
        raise UserError(f"{name}={shown!r} is not an http(s):// URL")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host)).rstrip("/")


def _env_pct(name: str) -> float:
    """A percentage from ``name``, 0 to 100; unset is 0 (no threshold: the step always runs)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:  # False for nan
        raise UserError(f"{name}={_shown(raw)!r} is not a percentage from 0 to 100")
    return value


@dataclass(frozen=True)
class MaintenanceSettings:
    """The vacuum plan's thresholds and statement options (issue 24; README "Maintenance").

    A threshold of 0 means "always" (the spec); otherwise a step whose figure is below it is
    skipped, and a step whose figure cannot be read runs. The AWS Analyze & Vacuum Utility's
    values are 5, 5 and 10.
    """

    min_deleted_pct: float = 0.0  # VACUUM DELETE ONLY: deleted rows, % of tbl_rows
    min_unsorted_pct: float = 0.0  # VACUUM SORT ONLY: svv_table_info.unsorted
    min_stats_off_pct: float = 0.0  # ANALYZE: svv_table_info.stats_off
    predicate_columns: bool = False  # Redshift: ANALYZE t PREDICATE COLUMNS
    boost: bool = False  # Redshift: VACUUM ... BOOST

    @classmethod
    def from_env(cls) -> MaintenanceSettings:
        return cls(
            min_deleted_pct=_env_pct("ORDER_TRACKING_VACUUM_MIN_DELETED_PCT"),
            min_unsorted_pct=_env_pct("ORDER_TRACKING_VACUUM_MIN_UNSORTED_PCT"),
            min_stats_off_pct=_env_pct("ORDER_TRACKING_ANALYZE_MIN_STATS_OFF_PCT"),
            predicate_columns=_env_bool("ORDER_TRACKING_ANALYZE_PREDICATE_COLUMNS"),
            boost=_env_bool("ORDER_TRACKING_VACUUM_BOOST"),
        )


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
    # Validation results and Data Docs pages older than this many days are pruned.
    keep_days: int = KEEP_DAYS
    # The alert email and its links (defined below; read with the rest, at the entry point).
    alert: AlertSettings = field(default_factory=lambda: AlertSettings())
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    # Orders looked up in the source per exception type and run (0: none, every verdict unknown).
    source_check_limit: int = SOURCE_CHECK_LIMIT
    # Open exceptions whose orders pass every rule of their type again are resolved by the run.
    auto_resolve: bool = False

    @classmethod
    def from_env(cls, warehouse_url: str | None = None, source_url: str | None = None) -> Settings:
        """Settings from ``ORDER_TRACKING_*`` variables; explicit arguments (CLI flags) win."""
        hist = os.environ.get("ORDER_TRACKING_HIST_UTS_TABLES", "").strip()
        source_url = source_url or _env("ORDER_TRACKING_SOURCE_URL", default_sqlite_url("source"))
        store = os.environ.get("ORDER_TRACKING_GX_STORE_URL", "").strip()
        return cls(
            warehouse_url=warehouse_url
            or _env("ORDER_TRACKING_WAREHOUSE_URL", default_sqlite_url("warehouse")),
            source_url=source_url,
            source_schema=_identifier(*_source_schema(source_url), fold=False),
            mart_schema=_identifier(
                "ORDER_TRACKING_MART_SCHEMA",
                _env("ORDER_TRACKING_MART_SCHEMA", "settlement_public"),
                fold=True,
            ),
            ods_schema=_identifier(
                "ORDER_TRACKING_ODS_SCHEMA", _env("ORDER_TRACKING_ODS_SCHEMA", "settlement_ods"), fold=True
            ),
            hist_uts_tables=tuple(t.strip() for t in hist.split(",") if t.strip()) if hist else None,
            dq_lookback_hours=_env_int(
                "ORDER_TRACKING_DQ_LOOKBACK_HOURS",
                DQ_LOOKBACK_HOURS,
                minimum=1,
                maximum=MAX_WINDOW_HOURS,
                what="whole number of hours",
                span="10 years",
            ),
            extraction_window_secs=_env_int(
                "ORDER_TRACKING_EXTRACTION_WINDOW_SECS",
                EXTRACTION_WINDOW_SECS,
                minimum=1,
                maximum=MAX_WINDOW_HOURS * 3600,
                what="whole number of seconds",
                span="10 years",
            ),
            extraction_buffer_secs=_env_int(
                "ORDER_TRACKING_EXTRACTION_BUFFER_SECS",
                EXTRACTION_BUFFER_SECS,
                minimum=0,
                maximum=MAX_BUFFER_SECS,
                what="whole number of seconds",
                span="7 days",
            ),
            alert_email=_env("ORDER_TRACKING_ALERT_EMAIL", DEFAULT_ALERT_EMAIL),
            gx_root=Path(_env("ORDER_TRACKING_GX_ROOT", str(PROJECT_ROOT / "gx"))),
            gx_store=parse_s3_url("ORDER_TRACKING_GX_STORE_URL", store) if store else None,
            s3_endpoint_url=_endpoint_url("ORDER_TRACKING_S3_ENDPOINT_URL"),
            timeouts=Timeouts.from_env(),
            keep_days=_env_int(
                "ORDER_TRACKING_KEEP_DAYS",
                KEEP_DAYS,
                minimum=1,
                maximum=MAX_KEEP_DAYS,
                what="whole number of days",
                span="10 years",
            ),
            alert=AlertSettings.from_env(),
            maintenance=MaintenanceSettings.from_env(),
            source_check_limit=_env_int(
                "ORDER_TRACKING_SOURCE_CHECK_LIMIT",
                SOURCE_CHECK_LIMIT,
                minimum=0,
                maximum=MAX_SOURCE_CHECK_LIMIT,
                what="whole number of orders",
            ),
            auto_resolve=_env_bool("ORDER_TRACKING_AUTO_RESOLVE"),
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


# scheme://[user[:password]@]host[:port][/database][?query]: only a URL of this plain shape names
# its database here; a mis-encoded password is reported (with its hint) where the engine is made.
_PLAIN_URL_RE = re.compile(r"^[\w+.-]+://(?:[^/?#@]*@)?[^/?#@]*(?:/(?P<db>[^/?#@]*))?(?:\?[^#@]*)?$")


def _source_schema(source_url: str) -> tuple[str, str]:
    """The MySQL source database: ORDER_TRACKING_SOURCE_SCHEMA, else the database the source URL
    names (``mysql://…/nc_src``), else ``kuaisong``. The two disagreeing is refused: reading
    ``kuaisong.*`` through a URL that says ``nc_src`` would check the wrong data."""
    configured = os.environ.get("ORDER_TRACKING_SOURCE_SCHEMA", "").strip()
    match = None if source_url.startswith("sqlite") else _PLAIN_URL_RE.match(source_url)
    in_url = (match.group("db") or None) if match else None  # SQLite: a file path, not a schema
    if configured and in_url and configured != in_url:
        raise UserError(
            f"ORDER_TRACKING_SOURCE_SCHEMA={configured!r} disagrees with the source URL's database "
            f"{in_url!r}: set one of them, or make them the same"
        )
    if configured or not in_url:
        return "ORDER_TRACKING_SOURCE_SCHEMA", configured or "kuaisong"
    return "the source URL's database", in_url


def default_sqlite_url(role: str) -> str:
    """The embedded default: ``.local/<role>.db`` plus one ATTACHed file per schema."""
    return f"sqlite:///{LOCAL_DIR / (role + '.db')}"


# --- the alert email (outside Airflow) and its links ------------------------------------------
# Read with the rest by ``Settings.from_env`` (``settings.alert``), at the entry point.
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
        timeout_secs = _env_secs("ORDER_TRACKING_SMTP_TIMEOUT_SECS", DEFAULT_SMTP_TIMEOUT_SECS, zero=False)
        to = _env("ORDER_TRACKING_ALERT_EMAIL", DEFAULT_ALERT_EMAIL)
        return cls(
            smtp_host=os.environ.get("ORDER_TRACKING_SMTP_HOST", "").strip(),
            smtp_port=_env_int("ORDER_TRACKING_SMTP_PORT", 25, minimum=1, maximum=65535, what="port number"),
            smtp_user=os.environ.get("ORDER_TRACKING_SMTP_USER") or None,
            smtp_password=os.environ.get("ORDER_TRACKING_SMTP_PASSWORD") or None,
            smtp_starttls=_env_bool("ORDER_TRACKING_SMTP_STARTTLS"),
            smtp_ssl=_env_bool("ORDER_TRACKING_SMTP_SSL"),
            smtp_timeout_secs=timeout_secs,
            sender=_env("ORDER_TRACKING_EMAIL_FROM", "order-tracking-dq@localhost"),
            recipients=tuple(a.strip() for a in to.split(",") if a.strip()),
            # An http(s) address; a user:password in it is dropped (never in an email's links).
            data_docs_base_url=_endpoint_url("ORDER_TRACKING_DATA_DOCS_BASE_URL"),
        )


# --- the DAGs' retries on transient errors (read when a DAG file is parsed) ------------------
MAX_DAG_RETRIES = 10
MAX_RETRY_DELAY_SECS = 24 * 3600


@dataclass(frozen=True)
class DagRetries:
    """``ORDER_TRACKING_DAG_RETRIES`` / ``ORDER_TRACKING_DAG_RETRY_DELAY_SECS``: how often and how
    far apart a task retries a transient error (a lost worker, a refused connection). A bad value
    is a DAG import error naming the variable, shown in the Airflow UI."""

    retries: int
    retry_delay_secs: int

    @classmethod
    def from_env(cls, retries: int, retry_delay_secs: int) -> DagRetries:
        """The DAG's defaults (``retries``, ``retry_delay_secs``) unless the environment sets them."""
        return cls(
            retries=_env_int("ORDER_TRACKING_DAG_RETRIES", retries, minimum=0, maximum=MAX_DAG_RETRIES),
            retry_delay_secs=_env_int(
                "ORDER_TRACKING_DAG_RETRY_DELAY_SECS",
                retry_delay_secs,
                minimum=1,
                maximum=MAX_RETRY_DELAY_SECS,
                what="number of seconds",
                span="1 day",
            ),
        )
