"""``regctl du``: what each model costs (docs/operations.md, "Retention, gc and du").

* **logical**: the sum of the sizes of the files of its versions (purged ones excluded),
  as if every version held its own copy;
* **stored**: the bytes the root really holds for it: each blob it references, a blob
  shared by several models counted once overall, with the first of them by name; plus
  payload files not (yet) held as blobs (an old root before ``gc --dedup``) and real
  ``bundle.tar.gz`` files;
* **reclaimable**: what ``prune`` with the config's ``retention:`` rules would free.

The total adds the blobs no version references (``gc`` frees them after the grace
period) to stored and to reclaimable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from registry_cli.core.blob_refs import BlobInfo, References, list_blobs
from registry_cli.core.names import validate_model_name
from registry_cli.core.retention import Parts, plan
from registry_cli.settings.retention import RetentionRule
from registry_cli.storage import layout


@dataclass
class ModelUsage:
    name: str
    logical: int = 0
    stored: int = 0
    reclaimable: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logical": self.logical,
            "stored": self.stored,
            "reclaimable": self.reclaimable,
        }


@dataclass
class Usage:
    models: list[ModelUsage] = field(default_factory=list)
    unreferenced: int = 0  # bytes of blobs no version references

    def total(self) -> dict[str, int]:
        return {
            "logical": sum(m.logical for m in self.models),
            "stored": sum(m.stored for m in self.models) + self.unreferenced,
            "reclaimable": sum(m.reclaimable for m in self.models) + self.unreferenced,
            "unreferenced": self.unreferenced,
        }

    def to_json(self) -> dict[str, Any]:
        return {"models": [m.to_json() for m in self.models], "total": self.total()}


def du(parts: Parts, name: str | None, rules: tuple[RetentionRule, ...]) -> Usage:
    parts.states.require_root()
    if name:
        validate_model_name(name)
        parts.states.load(name)
    refs = References(parts.states, parts.versions).scan()
    blobs = list_blobs(parts.store)
    owner = {sha: min(users)[0] for sha, users in refs.by_sha.items() if users}
    reclaim: dict[str, int] = {}
    if rules:
        for item in plan(parts, name, None, None, rules):
            reclaim[item.model] = reclaim.get(item.model, 0) + item.bytes
    usage = Usage()
    for model in [name] if name else parts.states.names():
        state = parts.states.load(model)
        row = ModelUsage(model, reclaimable=reclaim.get(model, 0))
        for v in state.versions:
            if v in state.purged:
                continue
            row.stored += _version_stored(parts, refs, blobs, owner, model, v, row)
        row.stored += sum(
            blobs[sha].size for sha, who in owner.items() if who == model and sha in blobs
        )
        usage.models.append(row)
    usage.unreferenced = sum(b.size for sha, b in blobs.items() if sha not in refs.by_sha)
    return usage


def _version_stored(
    parts: Parts,
    refs: References,
    blobs: dict[str, BlobInfo],
    owner: dict[str, str],
    model: str,
    v: int,
    row: ModelUsage,
) -> int:
    """Adds the version's files to ``row.logical``; returns its bytes held outside blobs."""
    vkey = layout.version_key(model, v)
    store = parts.store
    local = getattr(store, "root", None) if hasattr(store, "path") else None
    separate_objects = None if local is not None else set(store.walk_files(f"{vkey}/payload"))
    own = 0
    for f in refs.files(model, v):
        size, sha, rel = int(f.get("size") or 0), str(f.get("sha256")), str(f.get("path"))
        row.logical += size
        if local is not None:
            if not _same_file(local / vkey / rel, local / layout.blob_key(sha), sha in blobs):
                own += size
        elif separate_objects is not None and rel.removeprefix("payload/") in separate_objects:
            own += size
    bundle = parts.versions.bundle(model, v)
    if bundle.get("stored") is not False and store.kind(f"{vkey}/bundle.tar.gz") == "file":
        own += int(bundle.get("size") or 0)
    return own


def _same_file(path: Any, blob: Any, blob_exists: bool) -> bool:
    if not blob_exists:
        return False
    try:
        a, b = os.stat(path), os.stat(blob)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
