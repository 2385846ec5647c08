"""Settings from the Airflow connections (else the environment): the one place the DAGs build them."""

from __future__ import annotations

import dataclasses
import logging

from airflow.sdk.exceptions import AirflowFailException

from order_tracking.settings import Settings

log = logging.getLogger(__name__)


WAREHOUSE_CONN_ID = "order_tracking_redshift"
SOURCE_CONN_ID = "order_tracking_mysql"
AWS_CONN_ID = "order_tracking_aws"  # optional: credentials for ORDER_TRACKING_GX_STORE_URL


# Airflow connection types -> the SQLAlchemy drivers we pin (docs/design.md section 5). Without the
# amazon/mysql/postgres providers Airflow stores such types as "generic": `airflow-setup` then
# writes the driver into the extra {"drivername": ...}, which wins over the type.
DRIVERS = {
    "redshift": "redshift+psycopg2",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


def connection_url(conn_id: str) -> str | None:
    """SQLAlchemy URL of Airflow connection ``conn_id``, or None if no such connection exists.

    Built with ``URL.create`` from the connection's parts, so a password with ``@``, ``/`` or
    ``%`` needs no escaping. The extra ``{"drivername": "..."}`` overrides the driver and the extra
    ``{"query": {...}}`` adds URL query parameters (both written by ``airflow-setup``).
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from sqlalchemy.engine import URL

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    conn_type = (conn.conn_type or "").lower()
    driver = extra.get("drivername") or DRIVERS.get(conn_type)
    if not driver:
        raise AirflowFailException(
            f"Airflow connection {conn_id!r} has type {conn.conn_type!r} and no extra 'drivername': "
            "recreate it with `python -m order_tracking airflow-setup`"
        )
    url = URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=extra.get("query") or {},  # e.g. {"sslmode": "require"}
    )
    return url.render_as_string(hide_password=False)


def settings_for_airflow() -> Settings:
    """Settings for a task: Airflow connections when they exist, else the ``ORDER_TRACKING_*`` env.

    Built once per task and passed down (GX's actions get it through ``settings_bound``); the
    process environment is left as it is. The checkpoints' own email action is switched off (no
    SMTP host): in Airflow the one alert per failed run is the DAG's SmtpNotifier, so no finding
    is mailed twice.
    """
    from order_tracking import db
    from order_tracking.stores import aws_connection

    aws_connection.use_airflow_connection(AWS_CONN_ID)  # else boto3's standard chain (MWAA: execution role)
    warehouse, source = connection_url(WAREHOUSE_CONN_ID), connection_url(SOURCE_CONN_ID)
    settings = Settings.from_env(warehouse_url=warehouse, source_url=source)
    settings = dataclasses.replace(settings, alert=dataclasses.replace(settings.alert, smtp_host=""))
    log.info(
        "warehouse %s (%s), source %s (%s)",
        db.redact(settings.warehouse_url),
        f"connection {WAREHOUSE_CONN_ID}" if warehouse else "environment",
        db.redact(settings.source_url),
        f"connection {SOURCE_CONN_ID}" if source else "environment",
    )
    return settings
