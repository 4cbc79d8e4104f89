"""The fleet routes of a registry server, as the CLI's ``--remote`` uses them.

Same documents and errors as :class:`registry_cli.core.fleet.Fleet` and
:class:`registry_cli.core.rollout.Rollouts` locally (docs/fleet.md).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from registry_cli.core.fleet_reports import MAX_BATCH
from registry_cli.remote.registry import RemoteRegistry


def _model(name: str) -> str:
    return f"/models/{urllib.parse.quote(name, safe='/')}/-/rollout"


class RemoteFleet:
    def __init__(self, remote: RemoteRegistry) -> None:
        self.remote = remote

    def ingest(self, reports: list[dict[str, Any]]) -> dict[str, int]:
        done = {"accepted": 0, "duplicates": 0}
        for start in range(0, len(reports), MAX_BATCH):
            got = self.remote._request(
                "POST", "/fleet/reports", body=reports[start : start + MAX_BATCH]
            )
            for key in done:
                done[key] += int(got.get(key, 0))
        return done

    def status(
        self, name: str | None = None, *, ring: str | None = None, stale_s: float = 3600.0
    ) -> dict[str, Any]:
        query = {"name": name, "ring": ring, "stale": f"{stale_s:g}s"}
        return dict(self.remote._request("GET", "/fleet/status", query=query))


class RemoteRollouts:
    def __init__(self, remote: RemoteRegistry) -> None:
        self.remote = remote

    def start(
        self,
        name: str,
        version: str,
        rings: list[str],
        *,
        min_healthy: float = 0.95,
        soak_s: float = 1800.0,
        min_devices: int = 1,
    ) -> dict[str, Any]:
        body = {
            "version": version,
            "rings": rings,
            "min_healthy": min_healthy,
            "soak": soak_s,
            "min_devices": min_devices,
        }
        return dict(self.remote._request("POST", _model(name), body=body))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.remote._request("GET", _model(name)))

    def _action(self, name: str, action: str) -> dict[str, Any]:
        return dict(self.remote._request("POST", f"{_model(name)}/{action}"))

    def step(self, name: str) -> dict[str, Any]:
        return self._action(name, "step")

    def pause(self, name: str) -> dict[str, Any]:
        return self._action(name, "pause")

    def resume(self, name: str) -> dict[str, Any]:
        return self._action(name, "resume")

    def abort(self, name: str) -> dict[str, Any]:
        return self._action(name, "abort")
