"""Publishing onto an object store: the blobs go up from the sources themselves.

The key of a blob is its sha256, so a file is hashed before it can be uploaded. To keep
that pass off the critical path, :class:`ObjectUpload` hashes the sources on a thread
as soon as the publish is planned, while the publish creates its state, reserves its
number and writes its markers (requests that mostly wait on the network). Once the
hashes are known the blobs are uploaded on a thread (``Store.put_blobs``: conditional
creates) while the publish reads the sources a second time to compute the bundle's
sha256; both reads come from the page cache.

Every source's identity (device, inode, size, mtime, ctime) is taken before the first
read and checked once the upload and the bundle pass are over: a file written to in
between is refused, and a blob this publish uploaded from it is deleted (it may hold
other bytes than its name says).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from registry_cli.errors import BadInput
from registry_cli.storage import fs_blobs, layout
from registry_cli.storage.hashing import CHUNK
from registry_cli.storage.payload import PlannedFile
from registry_cli.storage.store import Store


class _Stopped(Exception):
    pass


def _changed(path: Path) -> BadInput:
    return BadInput(
        f"{path} changed while being published",
        hint="publish a file that is no longer being written",
    )


class ObjectUpload:
    """Hashes ``planned`` on a thread from construction; use as a context manager (its
    exit stops the hashing and waits for every thread it started)."""

    def __init__(self, store: Store, planned: list[PlannedFile]) -> None:
        self.store = store
        # taken before any read: a write after it changes the identity
        self.seen = {p.source: fs_blobs.identity(p.source) for p in planned}
        self.uploads: list[tuple[Path, str]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="regctl-blobs")
        self._hashed = self._pool.submit(self._hash_all, planned)
        self._upload: Future[list[str]] | None = None

    def __enter__(self) -> ObjectUpload:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop hashing; wait for the threads (an upload ends inside :meth:`uploading`)."""
        self._stop.set()
        self._pool.shutdown(wait=True)

    def _hash_all(self, planned: list[PlannedFile]) -> list[PlannedFile]:
        out = []
        for item in planned:
            if item.sha256 is None:  # a moved upload arrives hashed already
                item = dataclasses.replace(item, sha256=self._hash(item))
            out.append(item)
        return out

    def _hash(self, item: PlannedFile) -> str:
        digest, size = hashlib.sha256(), 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(item.source, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                if self._stop.is_set():
                    raise _Stopped
                digest.update(view[:n])  # releases the GIL: the requests go on meanwhile
                size += n
        if size != item.size:
            raise BadInput(
                f"{item.source} changed size while being published",
                hint="publish a file that is no longer being written",
            )
        return digest.hexdigest()

    def hashed(self) -> list[PlannedFile]:
        """``planned`` with every sha256 set (waits for the hashing)."""
        return self._hashed.result()

    @contextlib.contextmanager
    def uploading(
        self, hashed: list[PlannedFile], announce: Callable[[list[str]], None] | None = None
    ) -> Iterator[None]:
        """Upload the blobs of ``hashed`` while the body runs (``announce``: see
        ``Store.put_blobs``); on leaving, wait for the upload and refuse a source
        written to since it was first read."""
        self.uploads = [(p.source, str(p.sha256)) for p in hashed]
        self._upload = self._pool.submit(self.store.put_blobs, self.uploads, self._stop, announce)
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted: start no more parts
                self._stop.set()
            with contextlib.suppress(Exception):
                self._check(self._upload.result())
            raise
        self._check(self._upload.result())

    def _check(self, uploaded: list[str]) -> None:
        changed = [p for p, ident in self.seen.items() if fs_blobs.identity(p) != ident]
        if not changed:
            return
        for source, sha in self.uploads:
            if source in changed and sha in uploaded:
                self.store.delete(layout.blob_key(sha))
        raise _changed(changed[0])
