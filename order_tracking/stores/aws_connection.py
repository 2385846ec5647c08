"""Credentials for the shared GX store (s3_store) from an Airflow ``aws`` connection.

Kept apart from ``s3_store`` so that a task reads the connection without importing GX or boto3.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def use_airflow_connection(conn_id: str) -> bool:
    """In an Airflow task: let an ``aws`` connection supply the credentials, if it exists.

    Login = access key id, password = secret access key; extra ``region_name``,
    ``aws_session_token`` and ``endpoint_url`` are honoured. They are put into this task process's
    environment, where boto3's standard chain (and ORDER_TRACKING_S3_ENDPOINT_URL) read them.
    Without the connection (MWAA with an execution role, say) the chain is left as it is.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    extra = conn.extra_dejson or {}
    values = {
        "AWS_ACCESS_KEY_ID": conn.login,
        "AWS_SECRET_ACCESS_KEY": conn.password,
        "AWS_SESSION_TOKEN": extra.get("aws_session_token"),
        "AWS_DEFAULT_REGION": extra.get("region_name"),
        "ORDER_TRACKING_S3_ENDPOINT_URL": extra.get("endpoint_url"),
    }
    for name, value in values.items():
        if value:
            os.environ[name] = str(value)
    log.info("AWS credentials from Airflow connection %s", conn_id)
    return True
