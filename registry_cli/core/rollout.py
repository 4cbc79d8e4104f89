"""Rollouts in rings: a released version moves through the fleet ring by ring.

Each ring's devices follow alias ``ring-<ring>`` (``pull --alias ring-canary``).
``start`` moves the first ring's alias to the version; ``step`` moves the next
ring's alias once enough of the current ring's reporting devices (those that
reported since the ring's step began) report ``healthy`` on the version for the
soak time; after the last ring the version is promoted to champion by the
normal rules. ``abort`` moves every ring alias back to where it was. The ring
``all`` stands for every device of the model when its health is checked.

State: ``fleet/models/<model>/-/rollout.json``, replaced by conditional writes
(the commit point of every move comes before the alias it moves, and ``step``
first puts back any ring alias a crash left behind), so ``step`` run by the
server and by cron at once never advances twice. Alias moves go through the
registry (audited, ``alias`` events); the rollout's own moves are audited as
``rollout-start|advance|complete|abort`` and sent as ``rollout`` events.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from registry_cli.core.fleet_reports import parse_time, utc_now, validate_ring
from registry_cli.core.fleet_status import ring_alias
from registry_cli.core.fleet_store import FleetStore, model_key
from registry_cli.core.names import format_version
from registry_cli.core.refs import parse_ref
from registry_cli.errors import BadInput, IntegrityError, NotFound, RuleViolation
from registry_cli.storage.store import AlreadyExists, Conflict, Missing

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry

FORMAT_VERSION = 1
LIVE = ("running", "paused")


def rollout_key(name: str) -> str:
    return f"{model_key(name)}/rollout.json"


def ring_health(
    devices: Iterable[dict[str, Any]],
    ring: str,
    target: str,
    *,
    started_at: str,
    now: _dt.datetime,
    soak_s: float,
    min_healthy: float,
    min_devices: int,
) -> dict[str, Any]:
    """Whether ``ring`` may let the rollout go on; counts and the reason."""
    begun = parse_time(started_at)
    reporting = healthy = 0
    for doc in devices:
        if ring != "all" and doc.get("ring") != ring:
            continue
        if parse_time(doc["time"]) < begun:
            continue  # has not reported since this ring's step began
        reporting += 1
        soaked = (now - parse_time(doc["since"])).total_seconds() >= soak_s
        if doc.get("version") == target and doc["state"] == "healthy" and soaked:
            healthy += 1
    ok = healthy >= min_devices and (reporting == 0 or healthy >= min_healthy * reporting)
    message = (
        f"ring {ring}: {healthy} of {reporting} reporting device(s) healthy on {target} "
        f"for {soak_s:g}s (need {min_healthy:.0%} and at least {min_devices})"
    )
    return {
        "ring": ring,
        "reporting": reporting,
        "healthy": healthy,
        "ok": ok,
        "message": message,
        "time": utc_now(),
    }


class Rollouts:
    """Start, step, pause, resume, abort and show the rollouts of one registry."""

    def __init__(self, reg: ModelRegistry) -> None:
        self.reg = reg
        self.store = reg.store
        self.fleet = FleetStore(reg.store)

    # ------------------------------------------------------------ documents
    def load(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            tagged = self.store.read_tagged(rollout_key(name))
        except Missing:
            return None, None
        try:
            doc = json.loads(tagged.data)
            if doc.get("format_version") != FORMAT_VERSION:
                raise ValueError("format_version")
        except (ValueError, AttributeError):
            raise IntegrityError(f"{self.store.location}/{rollout_key(name)} is damaged") from None
        return doc, tagged.tag

    def _save(self, name: str, doc: dict[str, Any], tag: str | None) -> None:
        """The commit point; Conflict/AlreadyExists when another writer moved first."""
        doc["updated_at"] = utc_now()
        data = json.dumps(doc, indent=1).encode()
        if tag is None:
            self.store.create(rollout_key(name), data)
        else:
            self.store.replace(rollout_key(name), data, if_match=tag)

    def _require(self, name: str) -> tuple[dict[str, Any], str]:
        doc, tag = self.load(name)
        if doc is None or tag is None:
            raise NotFound(f"{name} has no rollout", hint=f"start one: regctl rollout start {name}")
        return doc, tag

    def _event(self, action: str, name: str, doc: dict[str, Any], **details: Any) -> None:
        number = int(str(doc["version"])[1:])
        entry = self.reg.states.audit(self.reg.actor, action, name, number, details)
        self.reg._announce(entry)  # the deliveries the audit line recorded (docs/events.md)

    @staticmethod
    def _result(action: str, doc: dict[str, Any], message: str, noop: bool = False, **ch: Any):
        return {
            "action": action,
            "name": doc["name"],
            "version": doc["version"],
            "noop": noop,
            "changed": {"state": doc["state"], "ring": current_ring(doc), **ch},
            "message": message,
        }

    # ------------------------------------------------------------ commands
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
        rings = [validate_ring(r) for r in rings]
        if not rings or len(set(rings)) != len(rings):
            raise BadInput("--rings needs one or more distinct ring names", hint="canary,all")
        if not 0 < min_healthy <= 1:
            raise BadInput(f"--min-healthy must be above 0 and at most 1, not {min_healthy}")
        if soak_s < 0 or min_devices < 0:
            raise BadInput("--soak and --min-devices must be 0 or more")
        ref = f"{name}{version}" if str(version).startswith("@") else f"{name}:{version}"
        number = self.reg.get(parse_ref(ref), with_bundle=False).version
        state = self.reg.model_state(name)
        last = self.reg.stages[-1]
        if not state.in_stage(number, last, self.reg.stages[0]) or number in state.archived:
            raise RuleViolation(
                f"{name}:{format_version(number)} is not an active version of {last!r}",
                hint=f"promote it first: regctl promote {name} --version {format_version(number)}"
                f" --to {last}",
            )
        old, tag = self.load(name)
        if old is not None and old.get("state") in LIVE:
            raise RuleViolation(
                f"{name} has a {old['state']} rollout of {old['version']}",
                hint=f"finish it, or: regctl rollout abort {name}",
            )
        now = utc_now()
        first = ring_alias(rings[0])
        prev = state.aliases.get(first)
        doc = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": format_version(number),
            "rings": rings,
            "min_healthy": min_healthy,
            "soak_s": soak_s,
            "min_devices": min_devices,
            "state": "running",
            "ring_index": 0,
            "started_at": now,
            "started_by": self.reg.actor,
            "ring_started_at": {rings[0]: now},
            "previous": {first: format_version(prev) if prev else None},
            "last_check": None,
        }
        try:
            self._save(name, doc, tag)
        except (AlreadyExists, Conflict):
            raise RuleViolation(f"another rollout of {name} started just now") from None
        self.reg.set_alias(name, first, number)
        self._event("rollout-start", name, doc, rollout="started", ring=rings[0], rings=rings)
        return self._result("rollout-start", doc, f"{name}:{doc['version']} rolling out: {first}")

    def step(self, name: str) -> dict[str, Any]:
        doc, tag = self._require(name)
        if doc["state"] != "running":
            return self._result("rollout-step", doc, f"rollout is {doc['state']}", noop=True)
        self._repair(name, doc)
        rings, index = doc["rings"], int(doc["ring_index"])
        ring = rings[index]
        health = ring_health(
            self.fleet.devices(name),
            ring,
            doc["version"],
            started_at=doc["ring_started_at"][ring],
            now=_dt.datetime.now(_dt.timezone.utc),
            soak_s=float(doc["soak_s"]),
            min_healthy=float(doc["min_healthy"]),
            min_devices=int(doc["min_devices"]),
        )
        doc["last_check"] = health
        if not health["ok"]:
            try:
                self._save(name, doc, tag)
            except (AlreadyExists, Conflict):
                pass  # another step wrote its own check: fine
            return self._result("rollout-step", doc, f"holding: {health['message']}", noop=True)
        counts = {"healthy": health["healthy"], "reporting": health["reporting"]}
        if index + 1 < len(rings):
            nxt = rings[index + 1]
            alias = ring_alias(nxt)
            prev = self.reg.model_state(name).aliases.get(alias)
            doc["ring_index"] = index + 1
            doc["ring_started_at"][nxt] = utc_now()
            doc["previous"].setdefault(alias, format_version(prev) if prev else None)
            try:
                self._save(name, doc, tag)
            except (AlreadyExists, Conflict):
                return self._result("rollout-step", doc, "another step moved first", noop=True)
            self.reg.set_alias(name, alias, doc["version"])
            self._event("rollout-advance", name, doc, rollout="advanced", ring=nxt, **counts)
            return self._result("rollout-advance", doc, f"advanced to ring {nxt} ({alias})")
        promoted = self.reg.promote(name, version=doc["version"])
        doc["state"] = "completed"
        doc["completed_at"] = utc_now()
        try:
            self._save(name, doc, tag)
        except (AlreadyExists, Conflict):
            return self._result("rollout-step", doc, "another step completed it", noop=True)
        self._event("rollout-complete", name, doc, rollout="completed", ring=ring, **counts)
        return self._result(
            "rollout-complete", doc, f"completed: {promoted.message or doc['version']} champion"
        )

    def _repair(self, name: str, doc: dict[str, Any]) -> None:
        """Put back the alias of every ring reached (a crash between commit and move)."""
        aliases = self.reg.model_state(name).aliases
        want = int(doc["version"][1:])
        for ring in doc["rings"][: int(doc["ring_index"]) + 1]:
            if aliases.get(ring_alias(ring)) != want:
                self.reg.set_alias(name, ring_alias(ring), want)

    def _set_state(self, name: str, action: str, want: str, allowed: tuple[str, ...]):
        doc, tag = self._require(name)
        if doc["state"] == want:
            return self._result(action, doc, f"rollout is already {want}", noop=True)
        if doc["state"] not in allowed:
            raise RuleViolation(f"the rollout of {name} is {doc['state']}; cannot {action[8:]}")
        doc["state"] = want
        try:
            self._save(name, doc, tag)
        except (AlreadyExists, Conflict):
            raise RuleViolation("the rollout changed just now", hint="retry") from None
        self.reg.states.audit(self.reg.actor, action, name, int(doc["version"][1:]), {})
        return self._result(action, doc, f"rollout {want}")

    def pause(self, name: str) -> dict[str, Any]:
        return self._set_state(name, "rollout-pause", "paused", ("running",))

    def resume(self, name: str) -> dict[str, Any]:
        return self._set_state(name, "rollout-resume", "running", ("paused",))

    def abort(self, name: str) -> dict[str, Any]:
        doc, tag = self._require(name)
        if doc["state"] == "completed":
            raise RuleViolation(
                f"the rollout of {name} completed; {doc['version']} is champion",
                hint=f"to go back: regctl rollback {name}",
            )
        was = doc["state"]
        if was != "aborted":
            doc["state"] = "aborted"
            try:
                self._save(name, doc, tag)
            except (AlreadyExists, Conflict):
                raise RuleViolation("the rollout changed just now", hint="retry") from None
        restored = {}
        aliases = self.reg.model_state(name).aliases
        for alias, prev in doc["previous"].items():
            if prev is None and alias in aliases:
                self.reg.remove_alias(name, alias)
            elif prev is not None and aliases.get(alias) != int(prev[1:]):
                self.reg.set_alias(name, alias, prev)
            else:
                continue
            restored[alias] = prev
        if was == "aborted" and not restored:
            return self._result("rollout-abort", doc, "rollout is already aborted", noop=True)
        if was != "aborted":
            self._event("rollout-abort", name, doc, rollout="aborted", restored=restored)
        return self._result(
            "rollout-abort", doc, f"aborted; {len(restored)} alias(es) restored", restored=restored
        )

    def status(self, name: str) -> dict[str, Any]:
        self.reg.model_state(name)  # exit 3 for an unknown model
        doc, _tag = self._require(name)
        return doc

    def step_all(self) -> list[dict[str, Any]]:
        """``step`` every running rollout (the server does this every minute)."""
        out = []
        for name in self.fleet.models():
            doc, _tag = self.load(name)
            if doc is not None and doc.get("state") == "running":
                out.append(self.step(name))
        return out


def current_ring(doc: dict[str, Any]) -> str | None:
    rings, index = doc.get("rings") or [], int(doc.get("ring_index", 0))
    return rings[index] if 0 <= index < len(rings) else None
