"""GX validation results and Data Docs in one S3 bucket, shared by several workers.

Against a real S3 server: moto in server mode, started on 127.0.0.1 on a free port by the
``s3_endpoint`` fixture (a child process, stopped by its PID). Two ``monitor`` runs from two
copies of ``gx/`` stand in for two Airflow workers; the pages are then fetched from the bucket
over HTTP by headless Chromium with no network, as a bucket website or CloudFront would serve them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from order_tracking.errors import StoreUnavailable, UserError
from order_tracking.settings import Settings
from tests.conftest import ROOT, exception_rows, run_cli
from tests.test_data_docs_offline import CHROMIUM_FLAGS

# The same closed network as the offline test, except the local S3 server that serves the site.
NO_NETWORK_BUT_LOCALHOST = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" if f.startswith("--host-resolver-rules") else f
    for f in CHROMIUM_FLAGS
]

AS_OF_WORKER_1 = "2026-11-25T03:00:00"
AS_OF_WORKER_2 = "2026-11-25T03:30:00"
PREFIX = "dq/order-tracking"
AWS_CONN_ID = "order_tracking_aws"  # airflow_tasks.AWS_CONN_ID (not imported: it loads Airflow here)
SUITES = [
    "order_tracking_extraction_count",
    "order_tracking_uti_uts_alignment",
    "order_tracking_missing_spath",
    "order_tracking_reactivated_missing_ecs",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (its own process), for this module's tests."""
    port = _free_port()
    # Its request log goes to a file: a pipe nobody reads fills up (64 KB, a few runs' requests)
    # and the server then blocks on its next log line, every client waiting out its timeouts.
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed after the server stops)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                raise RuntimeError(f"moto server did not start: {log.read().decode()[-2000:]}") from None
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str) -> str:
    """Throwaway credentials through the standard chain; no developer's ~/.aws, no instance metadata."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return s3_endpoint


@pytest.fixture
def bucket(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on the local server, configured as the shared GX store."""
    name = f"dq-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket=name)
    monkeypatch.setenv("ORDER_TRACKING_GX_STORE_URL", f"s3://{name}/{PREFIX}")
    monkeypatch.setenv("ORDER_TRACKING_S3_ENDPOINT_URL", aws_env)
    return name


def _worker(tmp_path: Path, name: str) -> Path:
    """One worker's working copy of the committed GX project."""
    target = tmp_path / name / "gx"
    shutil.copytree(ROOT / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def _seed(tmp_path: Path) -> None:
    seed = run_cli(
        "seed",
        "--orders",
        "2000",
        "--as-of",
        AS_OF_WORKER_1,
        "--manifest",
        str(tmp_path / "m.json"),
        "--quiet",
    )
    assert seed.returncode == 0, seed.stderr


def _objects(endpoint: str, bucket: str) -> dict[str, dict]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o for o in page.get("Contents", [])})
    return found


def _text(endpoint: str, bucket: str, key: str) -> str:
    obj = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key=key)
    return obj["Body"].read().decode("utf-8")


def test_two_workers_share_one_site_that_renders_offline(
    tmp_path: Path, sqlite_urls, bucket: str, aws_env: str
):
    _seed(tmp_path)
    workers = [_worker(tmp_path, "worker1"), _worker(tmp_path, "worker2")]
    yml_before = (ROOT / "gx" / "great_expectations.yml").read_bytes()
    for gx_root, as_of in zip(workers, (AS_OF_WORKER_1, AS_OF_WORKER_2), strict=True):
        run = run_cli("monitor", "--as-of", as_of, env={"ORDER_TRACKING_GX_ROOT": str(gx_root)})
        assert run.returncode in (1, 2), run.stdout + run.stderr  # the seeded anomalies are found
        assert f"Data Docs: s3://{bucket}/{PREFIX}/data_docs/index.html" in run.stdout
        assert "ERROR" not in run.stdout and "error in" not in run.stdout, run.stdout

    objects = _objects(aws_env, bucket)
    results = [k for k in objects if k.startswith(f"{PREFIX}/validations/") and k.endswith(".json")]
    pages = [k for k in objects if k.startswith(f"{PREFIX}/data_docs/validations/") and k.endswith(".html")]
    assert len(results) == 8 and len(pages) == 8, sorted(objects)  # 2 workers x 4 checks
    index = _text(aws_env, bucket, f"{PREFIX}/data_docs/index.html")
    for run_name in ("as_of_20261125T030000", "as_of_20261125T033000"):
        assert index.count(run_name) >= 4, run_name  # both workers' runs, each with its 4 checks
    for suite in SUITES:
        assert suite in index
    assert (
        f"{PREFIX}/data_docs/health.html" in objects and 'href="health.html"' in index
    )  # linked page is there
    # Nothing went to the workers' disks, and no bucket, endpoint or key reached gx/.
    for gx_root in workers:
        assert not list((gx_root / "uncommitted").rglob("*.json")) and not list(gx_root.rglob("*.html"))
        assert (gx_root / "great_expectations.yml").read_bytes() == yml_before
        for f in gx_root.rglob("*"):
            if f.is_file():
                assert not re.search(rb"testing-secret|127\.0\.0\.1|" + bucket.encode(), f.read_bytes()), f
    assert exception_rows(Settings.from_env())  # the findings were recorded as usual

    # The vendored CSS/JS is in the bucket, uploaded once: the second worker found the same bytes.
    versions = objects[f"{PREFIX}/data_docs/static/vendor/VERSIONS.txt"]
    index_time = objects[f"{PREFIX}/data_docs/index.html"]["LastModified"]
    assert versions["LastModified"] < index_time
    # GX's own static assets (4 MB) likewise, then stamped (expectations_custom.data_docs.site_builder).
    gx_css = objects[f"{PREFIX}/data_docs/static/styles/data_docs_default_styles.css"]
    stamp = objects[f"{PREFIX}/data_docs/static/order_tracking_assets.txt"]
    assert gx_css["LastModified"] <= stamp["LastModified"] < index_time
    assert not [
        p for p in pages if re.search(r"(https?:)?//(cdn|unpkg|code\.jquery)", _text(aws_env, bucket, p))
    ]

    # A validation page, fetched from the bucket over HTTP by a browser with no network at all.
    page_key = next(p for p in pages if "order_tracking_reactivated_missing_ecs" in p)
    probe_key = page_key.rsplit("/", 1)[0] + "/probe.html"  # same folder: same relative links
    report = (
        "<script>document.body.setAttribute('data-probe', [getComputedStyle(document.body).margin, "
        "getComputedStyle(document.body).fontFamily, typeof jQuery, typeof jQuery.fn.bootstrapTable, "
        "typeof vegaEmbed].join('|'));</script></body>"
    )
    s3 = boto3.client("s3", endpoint_url=aws_env)
    s3.put_object(
        Bucket=bucket,
        Key=probe_key,
        Body=_text(aws_env, bucket, page_key).replace("</body>", report).encode(),
        ContentType="text/html; charset=utf-8",
    )
    # Served as a website bucket (or CloudFront) serves it: anonymous reads of the site's prefix.
    public_read = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}/data_docs/*",
    }
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [public_read]})
    )
    proc = subprocess.run(
        [
            "chromium",
            *NO_NETWORK_BUT_LOCALHOST,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            "--virtual-time-budget=3000",
            f"{aws_env}/{bucket}/{probe_key}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert match, proc.stdout[-2000:]
    margin, font, jquery, table_plugin, vega = match.group(1).split("|")
    assert margin == "0px" and font.startswith("-apple-system")  # bootstrap 4.3.1 was applied
    assert (jquery, table_plugin, vega) == ("function", "function", "function")
    assert 'class="bootstrap-table bootstrap4"' in proc.stdout
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line and "favicon" not in line]
    assert console == []


def test_unusable_store_is_one_line_and_exit_3_but_findings_are_recorded(
    tmp_path: Path, sqlite_urls, bucket: str, monkeypatch: pytest.MonkeyPatch
):
    _seed(tmp_path)
    faults = {
        "missing bucket": (
            {"ORDER_TRACKING_GX_STORE_URL": f"s3://{bucket}-gone/{PREFIX}"},
            f"bucket '{bucket}-gone' does not exist",
        ),
        "wrong endpoint": (
            {"ORDER_TRACKING_S3_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"},
            "cannot reach the S3 endpoint http://127.0.0.1:",
        ),
    }
    for fault, (env, expected) in faults.items():
        gx_root = _worker(tmp_path, fault.replace(" ", "_"))
        run = run_cli(
            "monitor",
            "--as-of",
            AS_OF_WORKER_1,
            "--checks",
            "missing_spath",  # one check is enough to show its findings are still recorded
            env={**env, "ORDER_TRACKING_GX_ROOT": str(gx_root)},
        )

        assert run.returncode == 3, run.stdout + run.stderr
        errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("error")]
        assert len(errors) == 1 and errors[0].startswith("error in gx_store: GX store s3://"), errors
        assert expected in errors[0], fault
        assert "Traceback" not in run.stderr and "testing-secret" not in run.stdout + run.stderr
        # The checks still ran and wrote their findings; their pages went to the local folder.
        assert "unresolved exceptions: 4 (ORDER_MISSING_SPATH=4)" in run.stdout, run.stdout
        assert (gx_root / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()
    assert len(exception_rows(Settings.from_env())) == 4


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ORDER_TRACKING_GX_STORE_URL", "https://bucket/prefix", "is not an s3://bucket/prefix URL"),
        ("ORDER_TRACKING_GX_STORE_URL", "s3://Bad_Bucket/x", "is not a valid S3 bucket name"),
        ("ORDER_TRACKING_S3_ENDPOINT_URL", "localhost:9000", "is not an http(s):// URL"),
    ],
)
def test_bad_store_settings_are_one_line_naming_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=re.escape(f"{name}={value!r}")) as err:
        Settings.from_env()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_store_url_parts_and_the_unchanged_default(monkeypatch):
    assert Settings.from_env().gx_store is None  # unset: the local folder, as before
    monkeypatch.setenv("ORDER_TRACKING_GX_STORE_URL", "s3://dq-docs/nightly/order-tracking/")
    settings = Settings.from_env()
    assert (settings.gx_store.bucket, settings.gx_store.prefix) == ("dq-docs", "nightly/order-tracking")
    assert settings.data_docs_location == "s3://dq-docs/nightly/order-tracking/data_docs/index.html"


def test_an_airflow_aws_connection_supplies_the_credentials(
    tmp_path: Path, bucket: str, aws_env: str, monkeypatch: pytest.MonkeyPatch
):
    """In an Airflow task the ``order_tracking_aws`` connection is used when there is one: a task
    process with no AWS_* variables at all reaches the bucket through it (airflow_tasks calls
    ``use_airflow_connection`` before it reads the settings)."""
    from order_tracking.stores import s3 as s3_store

    code = (
        "import os, sys\n"
        "from order_tracking.stores import aws_connection\n"
        "from order_tracking.stores import s3 as s3_store\n"
        "from order_tracking.settings import Settings\n"
        "assert 'AWS_ACCESS_KEY_ID' not in os.environ\n"
        "assert aws_connection.use_airflow_connection(sys.argv[1])\n"
        "settings = Settings.from_env()\n"
        "s3_store.check_access(settings.gx_store, settings.s3_endpoint_url)\n"
        "print('ok', settings.s3_endpoint_url)\n"
    )
    conn = {
        "conn_type": "aws",
        "login": "AKIAEXAMPLE",
        "password": "from-the-connection",
        "extra": {"region_name": "us-east-1", "endpoint_url": aws_env},
    }
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_EC2_METADATA_DISABLED"
    }
    env.pop("ORDER_TRACKING_S3_ENDPOINT_URL")
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        **{f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": json.dumps(conn)},
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", code, AWS_CONN_ID],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == f"ok {aws_env}"

    # Without a connection and without credentials anywhere: one line saying so.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    s3_store.client.cache_clear()
    with pytest.raises(StoreUnavailable, match="no AWS credentials"):
        s3_store.check_access(Settings.from_env().gx_store, aws_env)
    s3_store.client.cache_clear()
