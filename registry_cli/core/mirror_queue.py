"""What a committed change asks of the OCI mirrors, kept as pending pushes in the
root (``.regctl/oci-pending/``) until one is delivered (see docs/oci.md#mirrors).

A change of a model (publish, promote, rollback, an alias) queues, per mirror that
lists one of its stages or aliases, one push per version those name: tagged
``vN`` plus each listed stage whose LATEST it is and each listed alias on it.
Pushing is idempotent (blobs already there are skipped), so a queued push of a
state that moved on is harmless: entries are delivered oldest first, and the
newest decides where a tag ends. This layer only writes the entries; the
delivery (:mod:`registry_cli.oci.mirrors`) runs above it. Kept behind these few
calls so the durable outbox can take the entries over later.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from registry_cli.storage.store import Missing

if TYPE_CHECKING:
    from registry_cli.core.config import Config
    from registry_cli.core.state import ModelState
    from registry_cli.storage.store import Store

PENDING = ".regctl/oci-pending"
ACTIONS = frozenset({"publish", "promote", "rollback", "alias-set", "alias-rm", "archive"})


@dataclass
class PendingPush:
    id: str
    created: str
    url: str  # the mirror's url: the push goes to <url>/<model>
    model: str
    version: int
    tags: list[str]
    attempts: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{PENDING}/{self.id}.json"

    @property
    def repository(self) -> str:
        return f"{self.url}/{self.model}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["repository"] = self.repository
        out["version"] = f"v{self.version}"
        return out


def plan(config: Config, state: ModelState, action: str) -> list[PendingPush]:
    """The pushes a committed ``action`` on ``state``'s model asks of the mirrors."""
    if action not in ACTIONS:
        return []
    now = _dt.datetime.now(_dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    aliases = state.all_aliases()
    out = []
    for mirror in config.oci_mirrors:
        by_version: dict[int, list[str]] = {}
        for stage in mirror.stages:
            number = state.latest.get(stage)
            if number is not None and number in state.versions:
                by_version.setdefault(number, []).append(stage)
        for alias in mirror.aliases:
            number = aliases.get(alias)
            if number is not None and number in state.versions:
                by_version.setdefault(number, []).append(alias)
        for number, tags in sorted(by_version.items()):
            out.append(
                PendingPush(
                    id=f"{stamp}-{uuid.uuid4().hex[:8]}",
                    created=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                    url=mirror.url,
                    model=state.name,
                    version=number,
                    tags=[f"v{number}", *tags],
                )
            )
    return out


def committed(reg: Any, entry: dict[str, Any]) -> None:
    """After a change of ``reg`` (a ModelRegistry) committed: queue what the mirrors
    need, then let ``reg.mirror_delivery`` push it. Never raises: the change stands."""
    try:
        state = reg.states.load(str(entry["model"]))
        enqueue(reg.store, plan(reg.config, state, str(entry.get("action"))))
        if reg.mirror_delivery is not None:
            reg.mirror_delivery(reg)
    except Exception as exc:  # a mirror never fails nor undoes the change
        sys.stderr.write(f"warning: OCI mirrors: {exc} (the change is committed)\n")


def enqueue(store: Store, items: list[PendingPush]) -> None:
    for item in items:
        store.put(item.key, json.dumps(item.to_json() | {"version": item.version}).encode())


def pending(store: Store) -> list[PendingPush]:
    """Every pending push, oldest first (unreadable entries are skipped)."""
    out = []
    for name in store.children(PENDING):
        if not name.endswith(".json"):
            continue
        try:
            doc = json.loads(store.read(f"{PENDING}/{name}"))
            doc.pop("repository", None)
            out.append(PendingPush(**doc))
        except (Missing, ValueError, TypeError):
            continue
    return out


def update(store: Store, item: PendingPush) -> None:
    store.put(item.key, json.dumps(item.to_json() | {"version": item.version}).encode())


def done(store: Store, item: PendingPush) -> None:
    store.delete(item.key)
