"""What a committed change asks of the OCI mirrors: outbox deliveries of kind
``oci_mirror`` (see docs/oci.md#mirrors and docs/events.md).

A change of a model (publish, promote, rollback, an alias, archive) records, in its
commit step, per mirror that lists one of its stages or aliases, one push per version
those name: tagged ``vN`` plus each listed stage whose LATEST it is and each listed
alias on it. The payload is ``{"url", "model", "version", "tags", "repository"}``
(``repository`` = ``<url>/<model>``, the delivery's lane: pushes to one repository go
one after another, oldest first, so the newest decides where a tag ends).

This layer only records and, after the lock, tries what this process can send: the
sender (``registry_cli.oci.mirrors``) registers itself with the outbox when imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry_cli.core import outbox

if TYPE_CHECKING:
    from registry_cli.core.config import Config
    from registry_cli.core.models import ModelStates
    from registry_cli.core.state import ModelState
    from registry_cli.storage.store import Store

KIND = "oci_mirror"
ACTIONS = frozenset({"publish", "promote", "rollback", "alias-set", "alias-rm", "archive"})


@dataclass
class Recorded:
    """A push recorded by this process's change, to try once after the lock."""

    delivery: outbox.Delivery
    policy: outbox.Policy


def plan(config: Config, state: ModelState, action: str) -> list[dict[str, Any]]:
    """The payloads of the pushes a committed ``action`` on ``state``'s model asks."""
    if action not in ACTIONS:
        return []
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
                {
                    "url": mirror.url,
                    "model": state.name,
                    "version": number,
                    "tags": [f"v{number}", *tags],
                    "repository": f"{mirror.url}/{state.name}",
                }
            )
    return out


def record(
    store: Store, config: Config, states: ModelStates, entry: dict[str, Any]
) -> list[Recorded]:
    """In the commit step of ``entry`` (its state written): put the mirror pushes in
    the outbox. Never raises (the change is committed whatever happens here)."""
    action = str(entry.get("action"))
    if not config.oci_mirrors or not entry.get("model") or action not in ACTIONS:
        return []
    if (entry.get("details") or {}).get("noop"):
        return []
    try:
        payloads = plan(config, states.load(str(entry["model"])), action)
        if not payloads:
            return []
        policy = outbox.policy(config)
        return [Recorded(outbox.enqueue(store, KIND, p, policy), policy) for p in payloads]
    except Exception as exc:
        _warn(
            f"OCI mirror pushes not recorded: {type(exc).__name__}: {exc} (the change is committed)"
        )
        return []


def announce(recorded: list[Recorded]) -> None:
    """After the lock: one try of each push now, in order, when this process can send
    them and no background sender runs here (``serve-registry`` leaves them to it). A
    failure is one ``warning:`` line; the push stays in the outbox."""
    spec = outbox.sender(KIND)
    for item in recorded:
        delivery = item.delivery
        if spec is None or delivery.store is None or outbox.has_background(delivery.store):
            return
        try:
            claimed = outbox.claim(delivery.store, delivery.id, item.policy, due_only=False)
            if claimed is None:
                continue  # another sender has it
            outcome = outbox.attempt(claimed, item.policy, tries=1)
        except Exception as exc:  # the outbox unwritable: never fail the change
            _warn(f"OCI mirror push {delivery.id}: {type(exc).__name__}: {exc}")
            continue
        if outcome.status != "sent":
            p = delivery.payload
            where = "a dead letter (`regctl events flush --dead`)"
            if outcome.status != "dead":
                where = "queued (`regctl oci sync` retries it)"
            _warn(
                f"OCI mirror push of {p['model']}:v{p['version']} to {p['repository']} "
                f"failed: {outcome.problem}; {where}"
            )


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()
