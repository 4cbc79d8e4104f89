"""Which blobs exist, how old they are, and which ones the registry still needs.

A blob ``blobs/sha256/xx/<sha256>`` is referenced when a version that is not purged
lists its sha256 in ``manifest.json`` ``files[]``, or when a live pending marker
``.regctl/pending/<pid>-<hex8>.json`` of a publish in progress lists it
(docs/operations.md, "Retention, gc and du"). Listing goes through the store's own
listing call (one LIST page per 1,000 blobs on S3, one ``scandir`` per fan-out folder
on a folder root), so sizes and ages come with the names.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from registry_cli.core.models import ModelStates
from registry_cli.core.versions import VersionReader
from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.store import Missing, Store


@dataclass(frozen=True)
class BlobInfo:
    size: int
    age_s: float  # since it was written or last linked into place


def _fs_root(store: Store) -> Any:
    """The local root of a folder store, None for an object store."""
    return getattr(store, "root", None) if hasattr(store, "path") else None


def list_blobs(store: Store) -> dict[str, BlobInfo]:
    """Every blob under ``blobs/sha256/`` with its size and age (temp siblings skipped)."""
    out: dict[str, BlobInfo] = {}
    now = time.time()
    root = _fs_root(store)
    if root is not None:
        base = root / layout.BLOBS
        for fan in _scandir(base):
            if not fan.is_dir(follow_symlinks=False):
                continue
            for entry in _scandir(fan.path):
                if layout.is_sha256(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out[entry.name] = BlobInfo(st.st_size, now - max(st.st_mtime, st.st_ctime))
        return out
    prefix = store.k(layout.BLOBS) + "/"  # type: ignore[attr-defined]
    for page in store.pages(prefix, None):  # type: ignore[attr-defined]
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if layout.is_sha256(name):
                out[name] = BlobInfo(int(obj["Size"]), now - obj["LastModified"].timestamp())
    return out


def _scandir(path: Any) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            yield from sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return


def blob_info(store: Store, sha: str) -> BlobInfo | None:
    """One blob's size and age, read again (the check right before a delete)."""
    key = layout.blob_key(sha)
    root = _fs_root(store)
    if root is not None:
        try:
            st = os.lstat(root / key)
        except FileNotFoundError:
            return None
        return BlobInfo(st.st_size, time.time() - max(st.st_mtime, st.st_ctime))
    head = store._head(key)  # type: ignore[attr-defined]
    if head is None:
        return None
    return BlobInfo(int(head["ContentLength"]), time.time() - head["LastModified"].timestamp())


def _parse_time(text: Any) -> float | None:
    try:
        when = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def pending_blobs(store: Store, grace_s: float) -> set[str]:
    """The blobs listed by pending markers younger than ``grace_s`` (a marker without a
    readable time counts as live: a writer may be in the middle of it)."""
    out: set[str] = set()
    now = time.time()
    for name in store.children(layout.PENDING):
        if not name.endswith(".json"):
            continue
        try:
            doc = json.loads(store.read(f"{layout.PENDING}/{name}"))
        except (Missing, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        created = _parse_time(doc.get("created"))
        if created is not None and now - created > grace_s:
            continue
        out.update(s for s in doc.get("blobs") or [] if isinstance(s, str))
    return out


@dataclass
class References:
    """sha256 -> the (model, version) pairs whose manifests list it, for unpurged versions.
    Manifests are read once per version and kept: a re-scan reads model states only."""

    states: ModelStates
    versions: VersionReader
    by_sha: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    _seen: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def scan(self) -> References:
        self.by_sha = {}
        for name in self.states.names():
            try:
                state = self.states.load(name)
            except IntegrityError as exc:
                self.unreadable.append(str(exc))
                continue
            for v in state.versions:
                if v in state.purged:
                    continue
                for f in self.files(name, v):
                    self.by_sha.setdefault(str(f.get("sha256")), set()).add((name, v))
        return self

    def files(self, name: str, v: int) -> list[dict[str, Any]]:
        if (name, v) not in self._seen:
            try:
                self._seen[(name, v)] = list(self.versions.facts(name, v).get("files") or [])
            except IntegrityError as exc:
                self.unreadable.append(str(exc))
                self._seen[(name, v)] = []
        return self._seen[(name, v)]
