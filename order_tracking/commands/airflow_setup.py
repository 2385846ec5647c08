"""``airflow-setup``: create or update what the two DAGs need in Airflow, idempotently.

The connections ``order_tracking_redshift`` and ``order_tracking_mysql`` (type ``generic`` plus the
extra ``{"drivername": ...}``: the pinned environment has no amazon/mysql/postgres provider, and
``airflow connections add --conn-type redshift`` would be stored as ``generic`` with no driver),
``smtp_default`` with the SSL/STARTTLS extras that match the port, the one-slot pool
``redshift_vacuum`` and the alert-address Variable. Written through Airflow's own models in this
process (the same calls as ``airflow connections``/``pools``/``variables``), so it needs the
Airflow environment (``AIRFLOW_HOME``, the metadata DB) of the deployment. Prints what it did,
never a password.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sqlalchemy.engine import URL, make_url

from order_tracking.errors import UserError

SMTP_SECURITY = {
    # port -> (disable_ssl, disable_tls): the SMTP provider uses implicit SSL unless disable_ssl,
    # then STARTTLS unless disable_tls (docs/design.md section 7).
    "ssl": (False, True),  # 465
    "starttls": (True, False),  # 587
    "none": (True, True),  # 25, or a local sink
}
DEFAULT_SECURITY_BY_PORT = {465: "ssl", 587: "starttls", 25: "none"}


def default_security(host: str, port: int) -> str:
    """The security the port implies (README "Running in Airflow"): 465 implicit SSL, 587 STARTTLS,
    25 neither; any other port on a loopback host is a local sink (neither: a sink such as aiosmtpd
    offers no STARTTLS, and STARTTLS there lost the alert, issue 25 F4); elsewhere STARTTLS, so that
    an unknown relay never gets a password in clear text."""
    if port in DEFAULT_SECURITY_BY_PORT:
        return DEFAULT_SECURITY_BY_PORT[port]
    loopback = host.lower() == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")
    return "none" if loopback else "starttls"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "airflow-setup",
        help="create/update the Airflow connections, pool and alert Variable the DAGs need",
        description="Idempotent. Warehouse and source come from the global --warehouse-url / "
        "--source-url or $ORDER_TRACKING_WAREHOUSE_URL / $ORDER_TRACKING_SOURCE_URL (SQLAlchemy URLs; "
        "prefer the environment for passwords); a connection with no URL given is left alone. SMTP "
        "from --smtp-url or $ORDER_TRACKING_SMTP_URL (smtp://user:pw@host:587), or --smtp-host/--smtp-port/"
        "--smtp-user with the password in $ORDER_TRACKING_SMTP_PASSWORD. Run it where the `airflow` "
        "command works (same AIRFLOW_HOME / metadata DB).",
    )
    p.add_argument("--smtp-url", default=None, metavar="URL", help="smtp://[user[:pw]@]host[:port]")
    p.add_argument("--smtp-host", default=None, metavar="HOST")
    p.add_argument("--smtp-port", type=int, default=None, metavar="N", help="default 587")
    p.add_argument("--smtp-user", default=None, metavar="USER")
    p.add_argument(
        "--smtp-security",
        choices=sorted(SMTP_SECURITY),
        default=None,
        help="ssl (implicit, port 465), starttls (587), none (25, or any port on 127.0.0.1/localhost: "
        "a local sink); default from the port (other ports elsewhere: starttls)",
    )
    p.add_argument("--smtp-from", default=None, metavar="ADDR", help="sender address (from_email)")
    p.add_argument(
        "--alert-email",
        default=None,
        metavar="ADDRS",
        help="recipients (comma separated) stored in Variable order_tracking_alert_email; "
        "default $ORDER_TRACKING_ALERT_EMAIL; not given = Variable left alone",
    )
    p.set_defaults(func=run)


# --- what to write --------------------------------------------------------------------------------


def database_connection(url: str, role: str) -> dict[str, Any]:
    """Connection fields for a SQLAlchemy URL (the driver and query go to the extra)."""
    from order_tracking import db

    parsed = db.parse_url(url, role)
    extra: dict[str, Any] = {"drivername": parsed.drivername}
    if parsed.query:
        extra["query"] = dict(parsed.query)
    return {
        "conn_type": "generic",
        "host": parsed.host,
        "port": parsed.port,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
        "extra": extra,
    }


def smtp_connection(args: argparse.Namespace) -> dict[str, Any] | None:
    url = args.smtp_url or os.environ.get("ORDER_TRACKING_SMTP_URL", "").strip() or None
    if url:
        try:
            parsed = make_url(url)
        except Exception:
            raise UserError("--smtp-url is not a URL like smtp://user:pw@host:587") from None
        if parsed.drivername not in ("smtp", "smtps"):
            raise UserError(f"--smtp-url must start with smtp:// or smtps://, not {parsed.drivername}://")
        host, port, user, password = parsed.host, parsed.port, parsed.username, parsed.password
        if parsed.drivername == "smtps" and not args.smtp_security:
            args.smtp_security = "ssl"
    elif args.smtp_host:
        host, port, user = args.smtp_host, args.smtp_port, args.smtp_user
        password = os.environ.get("ORDER_TRACKING_SMTP_PASSWORD") or None
    else:
        return None
    if not host:
        raise UserError("the SMTP URL has no host")
    port = port or args.smtp_port or 587
    security = args.smtp_security or default_security(host, port)
    disable_ssl, disable_tls = SMTP_SECURITY[security]
    extra: dict[str, Any] = {"disable_ssl": disable_ssl, "disable_tls": disable_tls}
    if args.smtp_from:
        extra["from_email"] = args.smtp_from
    return {
        "conn_type": "smtp",
        "host": host,
        "port": port,
        "login": user,
        "password": password,
        "schema": None,
        "extra": extra,
    }


def describe(conn_id: str, fields: dict[str, Any]) -> str:
    """One line about a connection, password masked."""
    extra = dict(fields["extra"])
    shown = URL.create(
        str(extra.get("drivername") or fields["conn_type"]),
        username=fields["login"],
        password=fields["password"],
        host=fields["host"],
        port=fields["port"],
        database=fields["schema"],
    ).render_as_string(hide_password=True)
    extra.pop("drivername", None)
    return f"{conn_id} ({fields['conn_type']}, {shown}{', extra ' + json.dumps(extra) if extra else ''})"


# --- writing through Airflow's models --------------------------------------------------------------


def upsert_connection(session: Any, conn_id: str, fields: dict[str, Any]) -> str:
    from airflow.models import Connection

    existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
    extra = json.dumps(fields["extra"], sort_keys=True)
    if existing is None:
        session.add(
            Connection(conn_id=conn_id, **{k: v for k, v in fields.items() if k != "extra"}, extra=extra)
        )
        return "created"
    current = {k: getattr(existing, k) for k in ("conn_type", "host", "port", "login", "password", "schema")}
    current_extra = existing.extra_dejson
    wanted = {k: v for k, v in fields.items() if k != "extra"}
    if current == wanted and current_extra == fields["extra"]:
        return "unchanged"
    for key, value in wanted.items():
        setattr(existing, key, value)
    existing.extra = extra
    return "updated"


def upsert_pool(session: Any, name: str, slots: int, description: str) -> str:
    from airflow.models.pool import Pool

    pool = session.query(Pool).filter(Pool.pool == name).one_or_none()
    if pool is None:
        session.add(Pool(pool=name, slots=slots, description=description, include_deferred=False))
        return "created"
    if pool.slots == slots and pool.description == description:
        return "unchanged"
    pool.slots, pool.description = slots, description
    return "updated"


def upsert_variable(session: Any, key: str, value: str) -> str:
    from airflow.models import Variable

    existing = session.query(Variable).filter(Variable.key == key).one_or_none()
    if existing is None:
        session.add(Variable(key=key, val=value))
        return "created"
    if existing.val == value:
        return "unchanged"
    existing.set_val(value)
    return "updated"


def run(args: argparse.Namespace) -> int:
    from order_tracking.alerts.notifier import ALERT_VARIABLE
    from order_tracking.orchestration.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID
    from order_tracking.orchestration.vacuum_task import VACUUM_POOL, VACUUM_POOL_DESCRIPTION

    connections: dict[str, dict[str, Any] | None] = {}
    for conn_id, flag, env, role in (
        (WAREHOUSE_CONN_ID, args.warehouse_url, "ORDER_TRACKING_WAREHOUSE_URL", "warehouse"),
        (SOURCE_CONN_ID, args.source_url, "ORDER_TRACKING_SOURCE_URL", "source"),
    ):
        url = flag or os.environ.get(env, "").strip() or None
        connections[conn_id] = database_connection(url, role) if url else None
    connections["smtp_default"] = smtp_connection(args)
    alert = args.alert_email or os.environ.get("ORDER_TRACKING_ALERT_EMAIL", "").strip() or None

    try:
        from airflow.utils.session import create_session

        with create_session() as session:
            lines = []
            for conn_id, fields in connections.items():
                if fields is None:
                    lines.append(f"connection {conn_id}: not given, left as it is")
                    continue
                action = upsert_connection(session, conn_id, fields)
                lines.append(f"connection {describe(conn_id, fields)}: {action}")
            action = upsert_pool(session, VACUUM_POOL, 1, VACUUM_POOL_DESCRIPTION)
            lines.append(f"pool {VACUUM_POOL} (1 slot): {action}")
            if alert:
                action = upsert_variable(session, ALERT_VARIABLE, alert)
                lines.append(f"variable {ALERT_VARIABLE} = {alert}: {action}")
            else:
                lines.append(f"variable {ALERT_VARIABLE}: not given, left as it is")
    except UserError:
        raise
    except Exception as exc:
        from order_tracking import db

        raise UserError(
            f"cannot write to the Airflow metadata DB ({type(exc).__name__}: {db.short_reason(exc)}); "
            "run `airflow db migrate` first, with the deployment's AIRFLOW_HOME"
        ) from None
    for line in lines:
        print(line)
    return 0
