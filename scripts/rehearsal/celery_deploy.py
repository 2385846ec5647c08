"""The Celery deployment: Redis broker, results in the metadata DB, a moto S3 server, two workers.

Each worker gets its own AIRFLOW_HOME, log folder and GX project copy, as on two machines; they
share only the databases, Redis, the bucket, and the settings every process needs (README,
"Running on more than one worker").
"""

from __future__ import annotations

import secrets
import shutil
import time
import urllib.request

import boto3
from cryptography.fernet import Fernet

from rehearsal.config import AIRFLOW, PG, PY, ROOT, free_port
from rehearsal.deploy import Deployment

REDIS_URL = "redis://127.0.0.1:6379/0"
WORKERS = ("worker-a", "worker-b")
S3_PREFIX = "order-tracking"
# Fake credentials for the moto server: boto3 signs with them, moto accepts any.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class CeleryDeployment(Deployment):
    """The LocalExecutor deployment, with the CeleryExecutor and the S3 stores instead."""

    smtp_flags = ()  # airflow-setup chooses from the port: a loopback sink gets no TLS (F4)

    def __init__(self) -> None:
        super().__init__(with_backfill=False)
        suffix = self.meta_db.rsplit("_", 1)[-1]
        self.queue = f"rehearsal_{suffix}"  # its own Celery queue on the shared Redis
        self.bucket = f"dq-rehearsal-{suffix}"
        self.s3_port = free_port()
        # Shared by every process, as a multi-machine deployment must (README).
        self.jwt_secret = secrets.token_urlsafe(32)
        self.fernet_key = Fernet.generate_key().decode()

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def airflow_env(self) -> dict[str, str]:
        """Every process: the executor, the broker, the result backend, the bucket, quick retries."""
        env = super().airflow_env()
        env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CELERY__BROKER_URL=REDIS_URL,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{PG}/{self.meta_db}",  # +psycopg2: not psycopg 3
            AIRFLOW__OPERATORS__DEFAULT_QUEUE=self.queue,
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__CORE__FERNET_KEY=self.fernet_key,
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",  # the REST calls need no login
            # A killed worker's task is noticed within ~30 s (default 5 min) and retried 5 s later.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
            AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="90",
            ORDER_TRACKING_DAG_RETRY_DELAY_SECS="5",
            ORDER_TRACKING_GX_STORE_URL=f"s3://{self.bucket}/{S3_PREFIX}",
            ORDER_TRACKING_S3_ENDPOINT_URL=self.s3_endpoint,
            **AWS_ENV,
        )
        return env

    def worker_env(self, name: str) -> dict[str, str]:
        """One worker: the shared settings, and its own home, logs, GX folder and hostname."""
        own = self.home / name
        env = self.airflow_env()
        env.update(
            AIRFLOW_HOME=str(own / "airflow"),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(own / "logs"),
            ORDER_TRACKING_GX_ROOT=str(own / "gx"),
            AIRFLOW__CORE__HOSTNAME_CALLABLE="rehearsal.worker_host.hostname",
            REHEARSAL_WORKER_HOSTNAME=name,
            PYTHONPATH=f"{ROOT}:{ROOT / 'scripts'}",
        )
        return env

    def start_workers(self) -> None:
        """Both workers, each with a fresh copy of the committed GX project in its own folder."""
        for name in WORKERS:
            own = self.home / name
            own.mkdir()
            shutil.copytree(ROOT / "gx", own / "gx", ignore=shutil.ignore_patterns("uncommitted"))
            self.start_worker(name)

    def start_worker(self, name: str) -> None:
        """`airflow celery worker` with its own Celery hostname, two slots, on this rehearsal's queue.
        Its log server is off (two on one machine would share port 8793): the checks read its folder."""
        self.start(
            name, AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "2",
            "--queues", self.queue, "--skip-serve-logs", "--without-mingle", "--without-gossip",
            env=self.worker_env(name),
        )  # fmt: skip

    def log_folders(self) -> list:
        return [self.home / name / "logs" for name in WORKERS]

    def s3(self):
        return boto3.client("s3", endpoint_url=self.s3_endpoint, **_boto_kwargs())

    def deploy(self) -> dict:
        """The moto server and its bucket, the LocalExecutor deployment's steps, then two workers."""
        self.start("moto", PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port))
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.s3_endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the moto S3 server did not start within 60 s") from None
                time.sleep(0.5)
        self.s3().create_bucket(Bucket=self.bucket)
        self.say(f"moto S3 server on {self.s3_endpoint}, bucket {self.bucket}; Celery queue {self.queue}")
        manifest = super().deploy()
        deadline = time.monotonic() + 120
        for name in WORKERS:
            while "ready." not in (self.home / f"{name}.log").read_text(errors="replace"):
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Celery {name} did not start: see {self.home / (name + '.log')}")
                time.sleep(1)
        self.say("both Celery workers ready")
        return manifest

    def cleanup(self) -> None:
        """The LocalExecutor cleanup, and this rehearsal's queue on the shared Redis."""
        try:
            import redis

            redis.Redis.from_url(REDIS_URL).delete(self.queue)
        except Exception as exc:  # Redis down: nothing of ours is left there to remove
            print(f"Redis queue {self.queue} not removed: {exc}")
        super().cleanup()


def _boto_kwargs() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }
