"""A client of `aifc service`: create, run and watch distributed client groups from Python.

    svc = aifc.ServiceClient("http://127.0.0.1:8001", token)
    svc.create_group("123", num_clients=8, time_limit=10, num_prompts=20000, request_rate=400)
    svc.wait("123", "ready")
    svc.run("123")
    for event in svc.events("123"):
        print(event["type"], event)
    result = svc.result("123")          # the same Result as run_benchmark's
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

from ._core import AifcError
from ._api import Result, _result_from_document

__all__ = ["ServiceClient", "ServiceError"]

_TERMINAL = ("finished", "failed", "cancelled")


class ServiceError(AifcError):
    """The service refused a call (`status` is the HTTP status, 0 when it could not be reached)
    or a group ended in another state than the one waited for."""

    def __init__(self, message: str, status: int = 0, body: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}


class ServiceClient:
    """Talks to one `aifc service` over its REST API (see its /docs page)."""

    def __init__(self, url: str = "http://127.0.0.1:8001", token: Optional[str] = None, *,
                 timeout_s: float = 60.0):
        """`token` defaults to $AIFC_API_TOKEN; the service prints it at start and keeps it in
        its state directory's `api-token` file."""
        self.url = url.rstrip("/")
        self._token = token if token is not None else os.environ.get("AIFC_API_TOKEN", "")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never shows the token
        return f"<aifc.ServiceClient {self.url}>"

    # --- plumbing ---
    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
                 timeout_s: Optional[float] = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"error": text}
            raise ServiceError(f"{method} {path}: {e.code}: {payload.get('error', text)}", e.code,
                               payload) from None
        except urllib.error.URLError as e:
            raise ServiceError(f"cannot reach the service at {self.url}: {e.reason}") from None

    def _json(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        with self._request(method, path, body) as r:
            return json.loads(r.read().decode())

    @staticmethod
    def _group_path(group_id: str) -> str:
        return "/api/v1/client-group/" + urllib.parse.quote(str(group_id), safe="")

    # --- the API ---
    def health(self) -> Dict[str, Any]:
        """GET /health."""
        return self._json("GET", "/health")

    def groups(self) -> List[Dict[str, Any]]:
        """Every group: id, state, job id, clients."""
        return self._json("GET", "/api/v1/client-groups")["groups"]

    def create_group(self, group_id: str, num_clients: int, **fields: Any) -> Dict[str, Any]:
        """Creates a group and submits its Slurm job. `fields` are the body's: Slurm
        (`time_limit` in minutes, `partition`, `account`, `nodes`, `ntasks_per_node`, ...) and the
        workload named like `aifc bench`'s flags (`num_prompts`, `request_rate`, ...). Returns
        the group; when Slurm refuses the job its state is `failed`, with Slurm's reason."""
        return self._json("POST", self._group_path(group_id), dict(fields, num_clients=num_clients))

    def group(self, group_id: str) -> Dict[str, Any]:
        """The group: state, reason, job, agents, transitions."""
        return self._json("GET", self._group_path(group_id))

    def cancel(self, group_id: str) -> Dict[str, Any]:
        """Cancels the group and its Slurm job."""
        return self._json("DELETE", self._group_path(group_id))

    def run(self, group_id: str, start_delay_ms: Optional[int] = None) -> Dict[str, Any]:
        """Starts a `ready` group: every agent starts its shard at one instant."""
        body = {} if start_delay_ms is None else {"start_delay_ms": int(start_delay_ms)}
        return self._json("POST", self._group_path(group_id) + "/run", body)

    def wait(self, group_id: str, state: str = "finished", timeout_s: float = 600.0,
             poll_s: float = 0.5) -> Dict[str, Any]:
        """Polls until the group is in `state`. Raises ServiceError when it ends in another
        state, TimeoutError when `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            g = self.group(group_id)
            if g["state"] == state:
                return g
            if g["state"] in _TERMINAL:
                raise ServiceError(f"group {group_id} is {g['state']}: {g.get('reason', '')}", 0, g)
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group_id} is still {g['state']} after {timeout_s} s")
            time.sleep(poll_s)

    def events(self, group_id: str) -> Iterator[Dict[str, Any]]:
        """The group's server-sent events as dicts (`type`: state, job, agent, progress, result),
        until the group ends."""
        with self._request("GET", self._group_path(group_id) + "/events", timeout_s=3600) as r:
            data: List[str] = []
            for raw in r:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    def result(self, group_id: str, records: bool = True) -> Result:
        """The merged result as a Result (summary, table(), to_pandas() when `records`). Its
        `document["distributed"]` has the ranks, missing ranks, start spread and the per-rank
        and per-node breakdown."""
        detail = "all" if records else "agents"
        doc = self._json("GET", self._group_path(group_id) + f"/results?detail={detail}")
        return _result_from_document(doc)

    def metrics(self) -> str:
        """GET /metrics (Prometheus text)."""
        with self._request("GET", "/metrics") as r:
            return r.read().decode()
