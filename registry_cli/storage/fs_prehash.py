"""A re-publish's bundle hashed from the start of the command (folder roots).

Publishing files a folder root holds already (each one hashed before, unchanged
since: :data:`~registry_cli.storage.fs_blobs.SEEN`) reads nothing but the blobs,
once, for the sha256 of the level-0 bundle. That pass does not need the registry
open: :func:`start` begins it on a thread of its own as soon as ``regctl publish``
runs, with the bundle's mtime chosen then, while the command's imports, the
registry's opening and the number's reservation go on (``hashlib`` releases the
GIL: two cores). The publish then only appends ``manifest.json`` and the trailer
(:func:`~registry_cli.storage.payload_copy.write_payload_and_bundle`). The blobs
are read into a buffer rather than mapped: hashing mapped page-cache pages
measured about a third more CPU than copying them into a small buffer first.

Nothing is taken on trust: the pass is used only when the publish plans exactly
the same files (paths, sources, sizes) on the same root with a level-0 bundle
that is not stored, and each source's identity (device, inode, size, mtime,
ctime) is the same when the pass began, when the publish planned it and once the
version is staged; else the publish reads the files as it always did. In any
other case (a file the root has not hashed, a compressed bundle, an object store,
a registry server) the thread gives up before reading a byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from registry_cli.storage import fs_blobs
from registry_cli.storage.bundle import BundleWriter, HashOnly, bundle_folders
from registry_cli.storage.hashing import CHUNK
from registry_cli.storage.payload import PlannedFile


@dataclass
class Prehashed:
    """A bundle writer fed the folders and files of ``planned`` (as the publish would
    feed them) with ``mtime``; ``files``: each source's identity and sha256."""

    root: Path
    mtime: int
    planned: list[PlannedFile]
    files: list[tuple[str, str]]  # (identity when the pass began, sha256)
    writer: BundleWriter


class Prehash:
    """The pass on its thread (a daemon: a command that fails meanwhile exits at once)."""

    def __init__(self, paths: list[str], find_root: Callable[[], Path | None]) -> None:
        self.mtime = int(time.time())
        self._stop = threading.Event()
        self._result: Prehashed | None = None
        self._thread = threading.Thread(
            target=self._run, args=(paths, find_root), name="regctl-prehash", daemon=True
        )
        self._thread.start()

    def _run(self, paths: list[str], find_root: Callable[[], Path | None]) -> None:
        try:
            self._result = self._hash(paths, find_root)
        except Exception:  # any doubt: the publish reads the files itself
            self._result = None

    def _hash(self, paths: list[str], find_root: Callable[[], Path | None]) -> Prehashed | None:
        from registry_cli.storage.payload import plan_payload

        root = find_root()
        if root is None:
            return None
        seen = fs_blobs.load_seen(root)
        planned = plan_payload([Path(p) for p in paths])
        files: list[tuple[str, str]] = []
        crcs: list[int] = []
        for item in planned:
            ident = fs_blobs.identity(item.source)
            sha, crc = seen.get(ident, (None, None))
            if sha is None or crc is None:
                return None  # bytes the root may lack: the publish's own pass hashes them
            files.append((ident, sha))
            crcs.append(crc)
        writer = BundleWriter(HashOnly(), level=0, mtime=self.mtime)
        for folder in bundle_folders([f"payload/{p.relpath}" for p in planned]):
            writer.add_dir(folder)
        for item, (_ident, sha), crc in zip(planned, files, crcs, strict=True):
            writer.begin_file(f"payload/{item.relpath}", item.size)
            # the blob, not the source: its bytes are the source's while the identity holds
            if not self._feed_blob(writer, fs_blobs.blob_path(root, sha), item.size):
                return None
            writer.end_file(item.size, crc)
        return Prehashed(root, self.mtime, planned, files, writer)

    def _feed_blob(self, writer: BundleWriter, blob: Path, size: int) -> bool:
        # read into one buffer, not mapped (see the module's docstring)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        total = 0
        with open(blob, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                if self._stop.is_set():
                    return False
                total += n
                if total > size:
                    return False
                writer.feed(view[:n], crc=False)  # hashed before it returns
        return total == size

    def result(self) -> Prehashed | None:
        """The finished pass (waits for it), or None when it gave up."""
        self._thread.join()
        return self._result

    def cancel(self) -> None:
        self._stop.set()


def usable(pre: Prehashed, planned: list[PlannedFile], root: Path) -> bool:
    """Whether ``pre`` framed exactly ``planned`` of ``root``, each source unchanged
    since the pass began (the caller checks again once the version is staged)."""
    if pre.root != root or len(pre.planned) != len(planned):
        return False
    for a, b, (ident, _sha) in zip(pre.planned, planned, pre.files, strict=True):
        if (a.source, a.relpath, a.size) != (b.source, b.relpath, b.size) or b.move:
            return False
        if fs_blobs.identity(b.source) != ident:
            return False
    return True


def start(paths: list[str], find_root: Callable[[], Path | None]) -> Prehash | None:
    """Begin the pass for ``regctl publish PATH...`` (None: nothing to begin).
    ``find_root``, called on the thread: the folder root the publish will open, or
    None when it will not be one with a level-0 bundle (the pass then gives up)."""
    if not paths:
        return None
    return Prehash(paths, find_root)
