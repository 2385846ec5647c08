"""The processes the rehearsal starts: CLI commands, Airflow CLI batches, servers; all stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

from rehearsal.config import PY, ROOT
from rehearsal.state import RehearsalState

_CLI_BATCH = """
import json, sys
from airflow import configuration  # first, as in airflow/__main__.py
from airflow.cli import cli_parser
from airflow.configuration import write_default_airflow_configuration_if_needed

write_default_airflow_configuration_if_needed()
parser = cli_parser.get_parser()
for argv in json.loads(sys.argv[1]):
    args = parser.parse_args(argv)
    args.func(args)
"""


class Processes(RehearsalState):
    """Every process is tracked in ``procs`` so that ``stop_all`` can stop it by PID."""

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A short-lived command, tracked like the servers so that cleanup can stop it by PID."""
        proc = subprocess.Popen(
            list(args),
            env=env or self.airflow_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs[f"cli-{proc.pid}"] = proc
        return proc

    def finish(self, proc: subprocess.Popen, timeout: float = 240) -> str:
        """Wait for a ``spawn``ed command; its stdout, or RuntimeError with its stderr."""
        out, err = proc.communicate(timeout=timeout)
        self.procs.pop(f"cli-{proc.pid}", None)
        if proc.returncode != 0:
            command = " ".join(map(str, proc.args))[-300:]
            raise RuntimeError(f"{command} failed ({proc.returncode}): {err[-1500:]}")
        return out

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
        """``spawn`` then ``finish``."""
        return self.finish(self.spawn(*args, env=env), timeout)

    def airflow_cli(self, *commands: tuple[str, ...]) -> subprocess.Popen:
        """`airflow <command>` for each command, in order, in one process: the same CLI functions
        that the `airflow` script calls, but Airflow is imported once (5-15 s per call otherwise)."""
        return self.spawn(PY, "-c", _CLI_BATCH, json.dumps([list(c) for c in commands]))

    def run_cli(self, *commands: tuple[str, ...]) -> str:
        """``airflow_cli`` then ``finish``."""
        return self.finish(self.airflow_cli(*commands))

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """A server in its own process group, its output in ``<home>/<name>.log``."""
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            list(args),
            env=env or self.airflow_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: its workers are stopped with it
        )
        self.procs[name] = proc
        self.say(f"started {name} (pid {proc.pid})")

    def stop_all(self) -> None:
        """SIGTERM to every tracked process, then SIGKILL to each one's process group (its workers)."""
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} (pid {proc.pid}) ignored SIGTERM: killing its process group", flush=True)
            # the group's leader is our child (start_new_session): its pid is the group id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
