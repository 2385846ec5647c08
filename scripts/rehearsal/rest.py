"""The REST API the Airflow UI uses (``/api/v2``): trigger a run, clear task instances."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from rehearsal.state import RehearsalState


class Rest(RehearsalState):
    """Calls to the api-server as the UI makes them (simple auth manager, every user an admin)."""

    _token: str | None = None

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON) of ``method path`` on ``/api/v2``; errors are returned, not raised."""
        base = f"http://127.0.0.1:{self.api_port}"
        if self._token is None:
            with urllib.request.urlopen(f"{base}/auth/token", timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        request = urllib.request.Request(
            f"{base}/api/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")[:500]

    def unpause(self, dag_id: str) -> None:
        """The UI's pause toggle (no Airflow import: seconds faster than `airflow dags unpause`)."""
        status, answer = self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        if status != 200:
            raise RuntimeError(f"unpausing {dag_id} failed: HTTP {status} {answer}")

    def trigger_from_ui(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> tuple[int, Any]:
        """What the trigger form posts: no logical date, the form's params as ``conf``."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", body)

    def clear_run(self, dag_id: str, run_id: str, dry_run: bool = False) -> tuple[int, Any]:
        """README's rerun recipe for any run, with or without a logical date: clear by run id."""
        body = {"dag_run_id": run_id, "dry_run": dry_run, "only_failed": False, "reset_dag_runs": True}
        return self.api("POST", f"/dags/{dag_id}/clearTaskInstances", body)
