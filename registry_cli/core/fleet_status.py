"""``regctl fleet status``: per model and ring, who runs what (docs/fleet.md).

Pure over what :class:`~registry_cli.core.fleet_store.FleetStore` returns: the
device documents of a model, its aliases and its rollout. A ring's *target* is
its alias ``ring-<ring>`` when set, else the champion. A *straggler* is a device
not on its ring's target for longer than ``stale`` (counted from when the device
took its version, or from when the ring's rollout step began, whichever is
later), or one that has not reported for longer than ``stale``. A *failure* is
a device whose last report is ``failed`` or ``unhealthy``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from registry_cli.core.fleet_reports import FAILURE_STATES, STATES, parse_time
from registry_cli.core.names import format_version

DEFAULT_STALE_S = 3600.0
LIST_LIMIT = 50  # stragglers and failures listed per ring (all are counted)


def ring_alias(ring: str) -> str:
    return f"ring-{ring}"


def _age(now: _dt.datetime, when: str) -> float:
    return (now - parse_time(when)).total_seconds()


def ring_target(ring: str, aliases: dict[str, int]) -> str | None:
    number = aliases.get(ring_alias(ring), aliases.get("champion"))
    return format_version(number) if number is not None else None


def model_status(
    name: str,
    devices: Iterable[dict[str, Any]],
    aliases: dict[str, int],
    rollout: dict[str, Any] | None,
    *,
    now: _dt.datetime,
    stale_s: float = DEFAULT_STALE_S,
    ring: str | None = None,
) -> dict[str, Any]:
    """The status document of one model (the ``models[]`` entry of ``--json``)."""
    rings: dict[str, dict[str, Any]] = {}
    ring_started = (rollout or {}).get("ring_started_at") or {}

    def entry(r: str) -> dict[str, Any]:
        if r not in rings:
            rings[r] = {
                "ring": r,
                "alias": ring_alias(r),
                "target": ring_target(r, aliases),
                "devices": 0,
                "on_target": 0,
                "versions": {},
                "last_seen": None,
                "stragglers": 0,
                "failures": 0,
                "straggler_devices": [],
                "failed_devices": [],
            }
        return rings[r]

    for r in (rollout or {}).get("rings") or []:
        if r != "all" and (ring is None or r == ring):
            entry(r)
    for doc in devices:
        r = doc.get("ring") or "default"
        if ring is not None and r != ring:
            continue
        e = entry(r)
        e["devices"] += 1
        version = doc.get("version") or "none"
        counts = e["versions"].setdefault(version, {"devices": 0, **{s: 0 for s in STATES}})
        counts["devices"] += 1
        counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        if e["last_seen"] is None or parse_time(doc["time"]) > parse_time(e["last_seen"]):
            e["last_seen"] = doc["time"]
        on_target = e["target"] is not None and doc.get("version") == e["target"]
        e["on_target"] += on_target
        short = {
            "device": doc["device"],
            "version": doc.get("version"),
            "state": doc["state"],
            "last_seen": doc["time"],
        }
        silent = _age(now, doc["time"]) > stale_s
        behind = False
        if not on_target and e["target"] is not None:
            since = doc.get("version_since") or doc["time"]
            started = ring_started.get(r)
            if started and parse_time(started) > parse_time(since):
                since = started
            behind = _age(now, since) > stale_s
        if silent or behind:
            e["stragglers"] += 1
            if len(e["straggler_devices"]) < LIST_LIMIT:
                e["straggler_devices"].append({**short, "reason": "silent" if silent else "behind"})
        if doc["state"] in FAILURE_STATES:
            e["failures"] += 1
            if len(e["failed_devices"]) < LIST_LIMIT:
                e["failed_devices"].append({**short, "detail": doc.get("detail")})
    out_rings = []
    for r in sorted(rings):
        e = rings[r]
        e["versions"] = [
            {"version": v, **counts}
            for v, counts in sorted(e["versions"].items(), key=lambda kv: _vkey(kv[0]))
        ]
        out_rings.append(e)
    return {
        "name": name,
        "champion": format_version(aliases["champion"]) if "champion" in aliases else None,
        "devices": sum(e["devices"] for e in out_rings),
        "rings": out_rings,
        "rollout": rollout_summary(rollout),
    }


def _vkey(version: str) -> int:
    return int(version[1:]) if version.startswith("v") and version[1:].isdigit() else -1


def rollout_summary(rollout: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rollout:
        return None
    keys = ("version", "rings", "state", "ring_index", "min_healthy", "soak_s", "min_devices")
    out = {k: rollout.get(k) for k in keys}
    rings = rollout.get("rings") or []
    index = int(rollout.get("ring_index", 0))
    out["ring"] = rings[index] if 0 <= index < len(rings) else None
    out["started_at"] = rollout.get("started_at")
    out["last_check"] = rollout.get("last_check")
    return out
