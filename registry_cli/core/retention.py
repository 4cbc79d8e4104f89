"""Retention: ``purge`` (an archived version's payload goes, its facts stay) and
``prune`` (archive and purge the versions nobody needs), as docs/operations.md
("Retention, gc and du") describes.

A purge is committed first (``model.yaml`` lists the version under ``purged``, so no
reader looks for its payload any more), then the served-tree copies follow the
state and the payload (and a real ``bundle.tar.gz``) is deleted. A purger killed in
between leaves a purged version with files still on disk: ``gc`` finishes the job.
On a blob root the payload's bytes stay in their blobs until ``gc`` finds them
unreferenced (and older than the grace period).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

from registry_cli.core import lifecycle
from registry_cli.core.blob_refs import References, list_blobs
from registry_cli.core.models import ModelStates
from registry_cli.core.names import format_version, parse_version, validate_model_name
from registry_cli.core.state import ModelState
from registry_cli.core.versions import VersionReader
from registry_cli.errors import BadInput, NotFound, RuleViolation
from registry_cli.settings.retention import RetentionRule, rule_for
from registry_cli.storage import layout
from registry_cli.storage.store import Store


@dataclass
class Parts:
    """What retention needs of a registry (its parts, not the façade: no import cycle)."""

    store: Store
    states: ModelStates
    versions: VersionReader
    served: Any  # core.served.tree.ServedTree
    stages: tuple[str, ...]
    actor: str


@dataclass
class PruneItem:
    model: str
    version: int
    action: str  # "archive+purge" or "purge"
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": format_version(self.version),
            "action": self.action,
            "bytes": self.bytes,
        }


def require_payload(status: str, name: str, version: int) -> None:
    """``resolve``/``pull``/``predict`` of a purged version: exit 3 with a hint."""
    if status == "purged":
        raise NotFound(
            f"{name}:v{version} was purged: its payload is gone",
            hint=f"its facts remain (regctl show {name}:v{version}); pick another version "
            f"with: regctl versions {name}",
        )


def delete_payload(store: Store, name: str, version: int) -> list[str]:
    """Remove a purged version's payload folder and real bundle file (missing is fine)."""
    vkey = layout.version_key(name, version)
    removed = []
    if store.kind(f"{vkey}/payload") is not None:
        _open_folders(store, f"{vkey}/payload")
        store.remove_tree(f"{vkey}/payload")
        removed.append(f"{store.location}/{vkey}/payload")
    if store.kind(f"{vkey}/bundle.tar.gz") == "file" and store.delete(f"{vkey}/bundle.tar.gz"):
        removed.append(f"{store.location}/{vkey}/bundle.tar.gz")
    return removed


def _open_folders(store: Store, key: str) -> None:
    """Make a read-only payload tree's folders writable before it is removed, so the
    removal never has to chmod a file: on a blob root that file is the blob itself."""
    root = getattr(store, "root", None) if hasattr(store, "path") else None
    if root is None:
        return
    for dirpath, _dirs, _files in os.walk(root / key):
        os.chmod(dirpath, 0o755)


def purge(
    parts: Parts, name: str, version: str | int, *, reason: str, archive_first: bool = False
) -> dict[str, Any]:
    """Purge one archived version (with ``archive_first``: archive it in the same commit,
    refused when it gained an alias or a LATEST meanwhile). Returns the audit details."""
    validate_model_name(name)
    if not reason or not reason.strip():
        raise BadInput("purge needs --reason", hint="say why the payload may go")
    number = parse_version(version)
    entries: list[dict[str, Any]] = []

    def rule(state: ModelState) -> dict[str, Any]:
        lifecycle.require_version(state, number)
        archived: dict[str, Any] = {}
        if archive_first and number not in state.archived:
            why = keep_reason(state, number, parts.stages)
            if why:
                raise RuleViolation(f"{name}:v{number} is kept: {why}")
            archived = lifecycle.archive(state, parts.stages, number)
            archived["reason"] = reason
        changes = lifecycle.purge(state, number)
        changes["reason"] = reason
        return {"archive": archived, "purge": changes}

    def then(state: ModelState, decided: dict[str, Any]) -> None:
        if decided["archive"]:
            entries.append(
                parts.states.audit(parts.actor, "archive", name, number, decided["archive"])
            )
        if decided["purge"].get("noop"):
            return
        entries.append(parts.states.audit(parts.actor, "purge", name, number, decided["purge"]))
        parts.served.sync(state, parts.stages)

    parts.states.load(name)  # exit 3 before any lock
    _state, decided = parts.states.change(name, rule, then=then)
    delete_payload(parts.store, name, number)  # also what a killed earlier purge left
    return {"noop": bool(decided["purge"].get("noop")), "entries": entries}


def keep_reason(state: ModelState, version: int, stages: tuple[str, ...]) -> str | None:
    """Why prune must keep ``version`` (None: it may go). A version of the last stage was
    champion (promoting into the last stage makes it champion), so it stays for rollback."""
    aliases = state.aliases_of(version)
    if aliases:
        return f"alias {', '.join(aliases)}"
    latest = [s for s, v in state.latest.items() if v == version]
    if latest:
        return f"LATEST of {', '.join(latest)}"
    if state.in_stage(version, stages[-1], stages[0]):
        return f"was champion (in {stages[-1]!r})"
    return None


def _age_days(created_at: str) -> float:
    when = _dt.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - when).total_seconds() / 86400.0


def plan(
    parts: Parts,
    name: str | None,
    keep_last: int | None,
    older_than_days: float | None,
    rules: tuple[RetentionRule, ...],
) -> list[PruneItem]:
    """What prune would do: flags for every model (or NAME), else the config's rules."""
    parts.states.require_root()
    if keep_last is None and older_than_days is not None:
        raise BadInput("--older-than needs --keep-last")
    if keep_last is not None and keep_last < 0:
        raise BadInput("--keep-last must be zero or more")
    if keep_last is None and not rules:
        raise BadInput(
            "prune needs --keep-last N, or retention: rules in the config",
            hint="see registry.yaml.example (retention:)",
        )
    names = [validate_model_name(name)] if name else parts.states.names()
    refs = References(parts.states, parts.versions).scan()
    blobs = list_blobs(parts.store)
    chosen: list[tuple[ModelState, int]] = []
    for model in names:
        state = parts.states.load(model)
        rule = (
            RetentionRule("*", keep_last, older_than_days)
            if keep_last is not None
            else rule_for(rules, model)
        )
        if rule is None:
            continue
        alive = [v for v in state.versions if v not in state.purged]
        for v in sorted(alive, reverse=True)[rule.keep_last :]:
            if keep_reason(state, v, parts.stages):
                continue
            if rule.older_than_days is not None:
                created = str(parts.versions.facts(model, v).get("created_at"))
                if _age_days(created) < rule.older_than_days:
                    continue
            chosen.append((state, v))
    going = {(s.name, v) for s, v in chosen}
    items = []
    for state, v in sorted(chosen, key=lambda c: (c[0].name, c[1])):
        action = "purge" if v in state.archived else "archive+purge"
        freed = freed_bytes(parts, refs, blobs, going, state.name, v)
        items.append(PruneItem(state.name, v, action, freed))
    return items


def freed_bytes(
    parts: Parts,
    refs: References,
    blobs: dict[str, Any],
    going: set[tuple[str, int]],
    name: str,
    version: int,
) -> int:
    """Bytes purging ``version`` frees (once ``gc`` runs, on a blob root): its payload files
    held nowhere else, each distinct blob once, plus a real bundle file."""
    total = 0
    counted: set[str] = set()
    for f in refs.files(name, version):
        sha, size = str(f.get("sha256")), int(f.get("size") or 0)
        if sha in blobs:
            users = refs.by_sha.get(sha, set())
            if sha in counted or any(u not in going for u in users):
                continue
            if min(users) != (name, version):
                continue  # counted with the first version of the batch that holds it
            counted.add(sha)
        total += size
    bundle = parts.versions.bundle(name, version)
    if bundle.get("stored") is not False:
        vkey = layout.version_key(name, version)
        if parts.store.kind(f"{vkey}/bundle.tar.gz") == "file":
            total += int(bundle.get("size") or 0)
    return total


def prune(parts: Parts, items: list[PruneItem], reason: str) -> list[PruneItem]:
    """Carry out a plan; a version that gained an alias or a LATEST meanwhile is skipped."""
    done = []
    for item in items:
        try:
            purge(parts, item.model, item.version, reason=reason, archive_first=True)
        except RuleViolation:
            continue
        done.append(item)
    return done
