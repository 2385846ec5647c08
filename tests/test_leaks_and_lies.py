"""Issue 28, "smaller leaks and lies": through the real CLI, with the shared GX store on a real
S3 server (moto, ``tests/test_s3_store.py``'s fixtures) where S3 is involved.

- credentials pasted into ORDER_TRACKING_S3_ENDPOINT_URL reached the email's page links;
- ``-v`` printed ~2,500 DEBUG lines of GX and botocore, the SigV4 ``Authorization`` header among them;
- a failed Data Docs upload still printed ``Data Docs: s3://.../index.html``;
- "run init-db" for a warehouse URL naming the wrong database did not say which database was checked.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import boto3
import pytest
import sqlalchemy as sa

from order_tracking import synthetic
from order_tracking.errors import UserError
from order_tracking.settings import Settings
from tests import test_s3_store
from tests.conftest import run_cli, seed_dataset
from tests.test_alert_email import parts
from tests.test_s3_store import PREFIX

AS_OF = datetime(2026, 11, 25, 3, 0, 0)

# The moto S3 server and a bucket configured as the shared GX store (one server for this module).
s3_endpoint = test_s3_store.s3_endpoint
aws_env = test_s3_store.aws_env
bucket = test_s3_store.bucket


def _with_userinfo(endpoint: str, userinfo: str) -> str:
    scheme, rest = endpoint.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"


@pytest.fixture
def s3_spath(gx_copy, sqlite_urls, bucket: str) -> str:
    """SQLite data with open ORDER_MISSING_SPATH findings; results and Data Docs in ``bucket``."""
    seed_dataset(synthetic.SeedConfig(as_of=AS_OF, orders=1000, seed=7))
    return bucket


def test_credentials_in_the_s3_endpoint_never_reach_the_email_or_the_output(
    s3_spath, aws_env, smtp_sink, monkeypatch
):
    # An S3-compatible server whose access key and secret were pasted into the endpoint URL.
    endpoint = _with_userinfo(aws_env, "AKIAEXAMPLEKEY:Sup3rSecretValue")
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the open findings
    assert len(smtp_sink.messages) == 1
    _, text, html = parts(smtp_sink.messages[0]["data"])
    page = f"{aws_env}/{s3_spath}/{PREFIX}/data_docs/validations/order_tracking_missing_spath/"
    for body in (text, html):
        assert page in body  # the link still leads to the page, on the server without the userinfo
    for shown in (text, html, proc.stdout, proc.stderr):
        assert "Sup3rSecretValue" not in shown and "AKIAEXAMPLEKEY" not in shown


def test_verbose_is_our_own_debug_lines_never_the_libraries(s3_spath):
    proc = run_cli("-v", "monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    # "<date> <time> LEVEL logger: message" (cli.main's format)
    logged = re.findall(r"^\S+ \S+ (DEBUG|INFO) ([\w.]+): ", proc.stderr, re.M)
    assert logged, "-v shows none of our progress lines"
    others = {
        name for _, name in logged if name.split(".")[0] not in ("order_tracking", "expectations_custom")
    }
    assert not others, f"library DEBUG/INFO lines under -v: {sorted(others)}"
    assert "Authorization" not in proc.stderr and "testing-secret" not in proc.stderr
    assert len(proc.stderr.splitlines()) < 200, len(proc.stderr.splitlines())


def test_failed_data_docs_upload_is_an_error_not_a_link(s3_spath, aws_env, smtp_sink, monkeypatch):
    # The bucket refuses every write under the site's prefix: the upload of the pages fails, while
    # reading and listing (the store check, the results) still work.
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{s3_spath}/{PREFIX}/data_docs/*",
    }
    s3 = boto3.client("s3", endpoint_url=aws_env)
    s3.put_bucket_policy(Bucket=s3_spath, Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    monkeypatch.setenv("ORDER_TRACKING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ORDER_TRACKING_SMTP_PORT", str(smtp_sink.port))
    proc = run_cli("monitor", "--as-of", AS_OF.isoformat(), "--checks", "missing_spath")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Data Docs: s3://" not in proc.stdout  # no link to a page that was never uploaded
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error in data_docs: Data Docs upload failed: GX store s3://{s3_spath}/")
    assert "access denied" in errors[0]
    # The findings were written all the same, and the email says what failed, linking no page.
    assert "unresolved exceptions: 4 (ORDER_MISSING_SPATH=4)" in proc.stdout
    _, text, _ = parts(smtp_sink.messages[0]["data"])
    assert "Data Docs upload failed" in text and "ORDER_MISSING_SPATH" in text
    assert "Page: " not in text and "/data_docs/validations/" not in text


def test_missing_tables_name_the_database_that_was_checked(own_pg, schemas, monkeypatch):
    # A URL naming a database that holds no warehouse tables (here: a new, empty one), with a
    # password (the server trusts local connections: any password is accepted).
    url = sa.make_url(own_pg).set(password="Zz9secret")
    monkeypatch.setenv("ORDER_TRACKING_WAREHOUSE_URL", url.render_as_string(hide_password=False))
    shown = url.render_as_string(hide_password=True)
    for command in (["exceptions"], ["monitor", "--as-of", AS_OF.isoformat()]):
        proc = run_cli(*command)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert proc.stderr.strip() == (
            f"error: table {schemas.ods}.order_tracking_exceptions does not exist in warehouse database "
            f"{url.database!r} ({shown}); run `python -m order_tracking init-db` first, "
            "or point the warehouse URL at the database that has it"
        )
        assert "Zz9secret" not in proc.stdout + proc.stderr


def test_s3_endpoint_credentials_are_dropped_where_the_setting_is_read(monkeypatch):
    monkeypatch.setenv(
        "ORDER_TRACKING_S3_ENDPOINT_URL", "http://AKIAEXAMPLEKEY:Sup3rSecretValue@127.0.0.1:9000/"
    )
    assert Settings.from_env().s3_endpoint_url == "http://127.0.0.1:9000"  # boto3 never used them
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", "AKIAEXAMPLEKEY:Sup3rSecretValue@minio:9000")
    with pytest.raises(UserError) as caught:
        Settings.from_env()
    assert str(caught.value) == "ORDER_TRACKING_S3_ENDPOINT_URL='***@minio:9000' is not an http(s):// URL"
