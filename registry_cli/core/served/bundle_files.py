"""Bundles that are not stored as files: which versions have one, and their bytes.

A version published with a level-0 bundle may record ``stored: false`` in the
``bundle`` entry of ``version.yaml`` (with its ``mtime``): no
``bundle.tar.gz`` was written, and every reader assembles the same bytes from
the payload files and ``manifest.json``
(:mod:`registry_cli.storage.bundle_stream`, docs/layout.md). Versions with a
real ``bundle.tar.gz`` are read from that file, as before.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry_cli.core.documents import ManifestFormatError, parse_version_yaml
from registry_cli.core.models import ModelStates
from registry_cli.core.names import parse_version
from registry_cli.core.served.tree import ServedTree
from registry_cli.core.state import ModelState
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.atomic import temp_sibling
from registry_cli.storage.bundle_stream import (
    BundleLayout,
    BundleStream,
    FolderSource,
    StoreSource,
)
from registry_cli.storage.store import Missing, Store
from registry_cli.storage.streams import write_all

BUNDLE = "bundle.tar.gz"


def is_virtual(bundle: Any) -> bool:
    """True when a version.yaml ``bundle`` entry says no bundle file was written."""
    return isinstance(bundle, dict) and bundle.get("stored") is False


def _stream(bundle: dict[str, Any], manifest: bytes, source: Any, label: str) -> BundleStream:
    mtime = bundle.get("mtime")
    if not isinstance(mtime, int) or bundle.get("compression", "gzip-0") != "gzip-0":
        raise IntegrityError(
            f"{label}: the bundle is not stored, but version.yaml lacks its mtime "
            "or says it is compressed",
            hint="run: regctl verify",
        )
    stream = BundleStream(
        BundleLayout.from_manifest(manifest, mtime, label),
        source,
        label=label,
        sha256=str(bundle.get("sha256")),
    )
    if stream.size != bundle.get("size"):
        raise IntegrityError(
            f"{label}: assembled from manifest.json it would be {stream.size} bytes, "
            f"version.yaml records {bundle.get('size')}",
            hint="run: regctl verify",
        )
    return stream


def version_stream(store: Store, name: str, version: int) -> BundleStream | None:
    """The assembled bundle of ``name:vN`` in ``models/``; None when it has a file."""
    vkey = layout.version_key(name, version)
    label = f"{store.location}/{vkey}/{BUNDLE}"
    try:
        doc = parse_version_yaml(store.read(f"{vkey}/version.yaml"), f"{vkey}/version.yaml")
        if not is_virtual(doc["bundle"]):
            return None
        manifest = store.read(f"{vkey}/manifest.json")
    except Missing as exc:
        raise IntegrityError(f"{store.location}/{exc} is missing") from None
    except ManifestFormatError as exc:
        raise IntegrityError(str(exc)) from None
    source: Any = (
        StoreSource(store, vkey)
        if "://" in store.location  # an object store: read its objects (or blobs)
        else FolderSource(store.local_path(vkey))
    )
    return _stream(doc["bundle"], manifest, source, label)


def stream_digest(
    stream: BundleStream, progress: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """``(size, sha256)`` of an assembled bundle (reads every payload file once)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in stream.iter_range():
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size, digest.hexdigest()


def write_bundles(store: Store, states: ModelStates, served: ServedTree) -> list[str]:
    """Write ``bundle.tar.gz`` into every served version folder whose bundle is
    assembled when read (for a plain static server); returns the paths written.

    Each file is assembled from ``models/``, checked against the recorded sha256
    while it is written to a hidden temp sibling, then renamed into place
    (read-only). A file already there with the recorded size is left alone
    (``regctl verify`` checks its bytes)."""
    if "://" in store.location:
        raise BadInput(
            "dist rebuild --bundles writes bundle files on a folder root only",
            hint="on an object store, clients read the bundle through serve-ftp, "
            "serve-registry or pull --bundle",
        )
    states.require_root()
    written: list[str] = []

    def write_model(state: ModelState, _result: Any) -> None:
        for stage in served.stages:
            for v in served.members(state, stage):
                if not served.bundle_is_virtual(state.name, v):
                    continue
                key = f"{layout.dist_key(stage, state.name)}/versions/v{v}/{BUNDLE}"
                target = store.local_path(key)
                bundle = served.version_facts(state.name, v)["bundle"]
                if not target.parent.is_dir():
                    continue  # not served (dist rebuild reports it)
                if target.is_file() and target.stat().st_size == bundle["size"]:
                    continue
                stream = version_stream(store, state.name, v)
                assert stream is not None
                _write_checked(stream, target, str(bundle["sha256"]))
                written.append(served.where(key))

    for model in states.names():
        states.change(model, lambda state: None, then=write_model)
    return written


def _write_checked(stream: BundleStream, target: Path, sha256: str) -> None:
    temp = temp_sibling(target, "bundle")
    digest = hashlib.sha256()
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for chunk in stream.iter_range():
                digest.update(chunk)
                write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"{target}: assembled bundle has sha256 {digest.hexdigest()}, "
                f"version.yaml records {sha256}",
                hint="run: regctl verify",
            )
        os.chmod(temp, 0o444)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def parse_served_bundle(relpath: str) -> tuple[str, int] | None:
    """``(name, version)`` when ``relpath`` (under dist/) is
    ``<stage>/<name>/versions/vN/bundle.tar.gz``."""
    parts = relpath.split("/")
    if len(parts) < 5 or parts[-1] != BUNDLE or parts[-3] != "versions" or ".." in parts:
        return None
    try:
        return "/".join(parts[1:-3]), parse_version(parts[-2])
    except BadInput:
        return None


class DistBundles:
    """Virtual ``versions/vN/bundle.tar.gz`` files of a local served tree ``dist/``
    (serve-ftp, serve-registry's ``/dist/``): found from the path alone, read from
    the version folder's payload hard links, its mtime from ``models/``."""

    def __init__(self, dist: Path, size: int = 1024) -> None:
        self.dist = Path(os.path.realpath(dist))
        self.models = self.dist.parent / layout.MODELS
        self.size = size  # bundles remembered (least recently used go): a server's
        # memory must not grow with the versions it has served
        self._cache: OrderedDict[str, tuple[int, BundleStream | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _parse(self, path: str) -> tuple[str, int] | None:
        """``(name, version)`` when ``path`` is dist/<stage>/<name>/versions/vN/bundle.tar.gz."""
        try:
            rel = os.path.relpath(os.path.realpath(path), self.dist)
        except ValueError:
            return None
        return None if rel.startswith("..") else parse_served_bundle(rel.replace(os.sep, "/"))

    def stream(self, path: str) -> BundleStream | None:
        """The assembled bundle served at ``path`` (which has no file), else None."""
        if os.path.lexists(path):
            return None
        found = self._parse(path)
        if found is None:
            return None
        name, version = found
        yaml_path = self.models.joinpath(*name.split("/"), f"v{version}", "version.yaml")
        try:
            stamp = os.stat(yaml_path).st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None:
                self._cache.move_to_end(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        folder = Path(path).parent
        try:
            doc = parse_version_yaml(yaml_path.read_bytes(), str(yaml_path))
            manifest = (folder / "manifest.json").read_bytes()
        except (OSError, ManifestFormatError):
            return None
        stream = None
        if is_virtual(doc["bundle"]):
            try:
                stream = _stream(doc["bundle"], manifest, FolderSource(folder), path)
            except IntegrityError:
                stream = None  # drift: regctl verify reports it; nothing wrong is served
        with self._lock:
            self._cache[path] = (stamp, stream)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return stream

    def names(self, folder: str) -> list[str]:
        """``[bundle.tar.gz]`` when the version folder ``folder`` serves a virtual one."""
        path = os.path.join(folder, BUNDLE)
        return [BUNDLE] if self.stream(path) is not None else []
