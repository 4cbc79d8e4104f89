"""Sending the OCI mirror pushes a change recorded in the outbox (see
docs/oci.md#mirrors and docs/events.md).

:mod:`registry_cli.core.mirror_plan` records one ``oci_mirror`` delivery per push when
a change commits; importing this module registers their sender, so the process that
made the change (the CLI) tries them at once, and every ``serve-registry`` and
``regctl events flush`` sends what is left. Pushes to one repository form one lane,
sent oldest first; a push also waits while an older one to its repository is still
pending (a tag move is never overtaken by an older push). A long push extends its
claim as it goes. ``regctl oci status`` lists the pending pushes, ``regctl oci sync``
tries them now (and moves entries of the old ``.regctl/oci-pending/`` queue into the
outbox first).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core import outbox
from registry_cli.core.mirror_plan import KIND
from registry_cli.errors import RegctlError
from registry_cli.storage.store import Missing, Store

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry

LEGACY = ".regctl/oci-pending"  # the queue before the outbox: read once by `oci sync`
TRY_S = 120.0  # one try's claim; a longer push extends it every HEARTBEAT_S
HEARTBEAT_S = 30.0
_REGISTRIES: dict[str, ModelRegistry] = {}


@dataclass
class MirrorPush:
    """One pending push as ``oci status`` shows it."""

    id: str
    created: str
    url: str
    model: str
    version: int
    tags: list[str]
    attempts: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def repository(self) -> str:
        return f"{self.url}/{self.model}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "url": self.url,
            "model": self.model,
            "version": f"v{self.version}",
            "tags": list(self.tags),
            "attempts": self.attempts,
            "error": self.error,
            "repository": self.repository,
        }

    @classmethod
    def of(cls, doc: dict[str, Any]) -> MirrorPush:
        p = doc["payload"]
        return cls(
            id=str(doc["id"]),
            created=str(doc.get("created", "")),
            url=str(p["url"]),
            model=str(p["model"]),
            version=int(p["version"]),
            tags=[str(t) for t in p["tags"]],
            attempts=int(doc.get("tries", 0)),
            error=str(doc.get("last_error") or ""),
        )


def attach(reg: ModelRegistry) -> None:
    """``reg`` is the registry this process pushes from for its root (the CLI's, the
    server's); without one a sender opens its root from the delivery's store."""
    _REGISTRIES[reg.store.location] = reg


def _registry(store: Store) -> ModelRegistry:
    reg = _REGISTRIES.get(store.location)
    if reg is None:
        from registry_cli.core.registry import ModelRegistry

        reg = ModelRegistry(store.location, store=store)
        _REGISTRIES[store.location] = reg
    return reg


# ------------------------------------------------------------------ the sender
def _lane(payload: dict[str, Any]) -> str:
    return f"oci {payload['url']}/{payload['model']}"


def _describe(payload: dict[str, Any]) -> str:
    return f"OCI mirror push of {payload['model']}:v{payload['version']} to {_lane(payload)[4:]}"


def _older_pending(store: Store, delivery: outbox.Delivery) -> list[str]:
    """The older pushes to the same repository still in the outbox, oldest first."""
    lane = _lane(delivery.payload)
    out = []
    for delivery_id in outbox.pending_ids(store):
        if delivery_id >= delivery.id:
            break
        doc = outbox.read(store, delivery_id)
        if doc and doc.get("kind") == KIND and not doc.get("dead"):
            try:
                if _lane(doc["payload"]) == lane:
                    out.append(delivery_id)
            except (KeyError, TypeError):
                continue
    return out


def _send_older(store: Store, delivery: outbox.Delivery, policy: outbox.Policy) -> None:
    """Send the older pushes to this repository first (one try each), or Retry: a tag
    move is never overtaken by an older push."""
    for older in _older_pending(store, delivery):
        claimed = outbox.claim(store, older, policy, due_only=False)
        outcome = outbox.attempt(claimed, policy, tries=1) if claimed is not None else None
        if outcome is None or outcome.status not in ("sent", "dead"):
            raise outbox.Retry(f"waits for the older push {older} to the same repository")


def _push(reg: ModelRegistry, payload: dict[str, Any]) -> None:
    from registry_cli.oci import auth
    from registry_cli.oci.push import Target, push_version
    from registry_cli.oci.reference import parse_ref

    url = str(payload["url"])
    mirror = next((m for m in reg.config.oci_mirrors if m.url == url), None)
    if mirror is None:
        raise outbox.GiveUp(f"{url} is no longer in oci_mirrors")
    where = parse_ref(f"{url}/{payload['model']}", reference=False)
    creds = auth.resolve(where.registry, mirror.username, mirror.password_env)
    target = Target(
        where, mirror.plain_http, Path(mirror.ca_cert) if mirror.ca_cert else None, creds
    )
    tags = [str(t) for t in payload["tags"]]
    push_version(reg, f"{payload['model']}:v{payload['version']}", target, tags[1:])


def send(delivery: outbox.Delivery) -> None:
    """The outbox sender of ``oci_mirror`` deliveries: one push, its claim kept alive
    while it runs; :class:`~registry_cli.core.outbox.Retry` when it fails."""
    store = delivery.store
    if store is None:
        raise outbox.GiveUp("an OCI mirror push needs its root")
    reg = _registry(store)
    policy = outbox.policy(reg.config)
    _send_older(store, delivery, policy)
    stop = threading.Event()
    hold = TRY_S + policy.claim_s
    beat = threading.Thread(target=_heartbeat, args=(delivery, stop, hold), daemon=True)
    beat.name = "regctl-oci-keepalive"
    beat.start()
    try:
        _push(reg, delivery.payload)
    except (RegctlError, OSError) as exc:
        raise outbox.Retry(str(exc) or type(exc).__name__) from None
    finally:
        stop.set()
        beat.join()


def _heartbeat(delivery: outbox.Delivery, stop: threading.Event, hold: float) -> None:
    """Extend the claim every HEARTBEAT_S while the push runs (a big model takes long)."""
    while not stop.wait(HEARTBEAT_S):
        try:
            if not delivery.keep_alive(hold):
                return  # another sender took it over; the push is idempotent
        except Exception:  # the store failed: the claim may expire, the push goes on
            continue


outbox.register_sender(KIND, send, try_s=TRY_S, lane=_lane, describe=_describe)


# ------------------------------------------------------------------ oci status / sync
def pending(reg: ModelRegistry) -> list[MirrorPush]:
    """Every push waiting in the outbox (dead letters are ``regctl events status``'s)."""
    out = []
    for delivery_id in outbox.pending_ids(reg.store):
        doc = outbox.read(reg.store, delivery_id)
        if doc is None or doc.get("kind") != KIND or doc.get("dead"):
            continue
        try:
            out.append(MirrorPush.of(doc))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def legacy_count(store: Store) -> int:
    return sum(1 for n in store.children(LEGACY) if n.endswith(".json"))


def migrate(reg: ModelRegistry) -> int:
    """Move every entry of the old ``.regctl/oci-pending/`` queue into the outbox,
    oldest first (a new delivery id each); unreadable ones are left where they are."""
    moved = 0
    policy = outbox.policy(reg.config)
    for name in sorted(reg.store.children(LEGACY)):
        if not name.endswith(".json"):
            continue
        key = f"{LEGACY}/{name}"
        try:
            doc = json.loads(reg.store.read(key))
            version = doc["version"]
            number = int(str(version).lstrip("v"))
            payload = {
                "url": str(doc["url"]),
                "model": str(doc["model"]),
                "version": number,
                "tags": [str(t) for t in doc["tags"]],
                "repository": f"{doc['url']}/{doc['model']}",
            }
        except (Missing, ValueError, TypeError, KeyError):
            continue
        outbox.enqueue(reg.store, KIND, payload, policy)
        reg.store.delete(key)
        moved += 1
    return moved


def sync(
    reg: ModelRegistry, warn: Callable[[str], None] | None = None
) -> tuple[list[MirrorPush], list[MirrorPush]]:
    """Try every pending push once now, oldest first per repository (after a failure,
    that repository's later pushes wait); ``(delivered, still pending)``."""
    attach(reg)
    migrate(reg)
    policy = outbox.policy(reg.config)
    done: list[MirrorPush] = []
    left: list[MirrorPush] = []
    failing: set[str] = set()
    for item in pending(reg):
        lane = f"oci {item.repository}"
        delivery = (
            None if lane in failing else outbox.claim(reg.store, item.id, policy, due_only=False)
        )
        if delivery is None:  # a failed lane, or another sender holds it now
            left.append(item)
            continue
        outcome = outbox.attempt(delivery, policy, tries=1)
        if outcome.status == "sent":
            done.append(item)
            continue
        failing.add(lane)
        item.attempts, item.error = delivery.tries + outcome.tries, outcome.problem or ""
        if outcome.status == "dead":  # refused for good: `regctl events status` lists it
            item.error = f"a dead letter now: {item.error}"
        left.append(item)
        if warn is not None:
            warn(f"{_describe(delivery.payload)} failed: {item.error}")
    return done, left
