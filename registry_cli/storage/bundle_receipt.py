"""The level-0 bundle of an upload, framed and hashed as its files arrive.

A client that declares its files (payload path and size, in the payload's
order) before sending them lets the server compute the bundle's sha256 while
the bytes come in, on a thread of its own: the gzip header and folder members
first, then each file's tar header, bytes and padding, exactly as
:func:`~registry_cli.storage.payload_copy.write_payload_and_bundle` frames them.
The publish that follows then only appends ``manifest.json`` and the trailer
(:func:`place_received`) instead of reading every file again.

Nothing here is trusted blindly: a part that is not the next declared file, a
size other than the declared one, a missing or an extra file abandons the
receipt (the publish then reads the files as it always did), and the publish
uses a receipt only when its member list equals the planned payload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from registry_cli.storage import fs_blobs
from registry_cli.storage.bundle import BundleWriter, HashOnly, bundle_folders
from registry_cli.storage.payload import FileRecord, PlannedFile

IN_FLIGHT = 4  # received pieces handed to the bundle thread and not yet hashed


@dataclass
class ReceivedBundle:
    """A bundle writer fed every folder and file of ``members`` (``(payload path,
    size)`` in order) with ``mtime``: what is left is manifest.json and the close."""

    writer: BundleWriter
    members: list[tuple[str, int]]
    mtime: int


class BundleReceipt:
    """Feeds a :class:`BundleWriter` (hash only) from upload pieces, in order.

    ``declared`` must be sorted by path (the payload's order) with distinct paths;
    else the receipt is abandoned at once. Call :meth:`begin`, :meth:`feed` and
    :meth:`end` for each file part as it arrives, then :meth:`result`; :meth:`close`
    always."""

    def __init__(self, declared: list[tuple[str, int]], mtime: int) -> None:
        self.declared = declared
        self.mtime = mtime
        self.ok = declared == sorted(declared) and len({p for p, _ in declared}) == len(declared)
        self.writer = BundleWriter(HashOnly(), level=0, mtime=mtime)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="regctl-upload-bundle")
        self._pending: deque[Future[None]] = deque()
        self._next = 0  # index of the next declared file
        self._fed = 0  # bytes of the current file so far
        self._current: tuple[str, int] | None = None
        if self.ok:
            for folder in bundle_folders([f"payload/{p}" for p, _ in declared]):
                self._submit(self.writer.add_dir, folder)

    def _submit(self, fn: Callable[..., None], *args: object) -> None:
        if len(self._pending) >= IN_FLIGHT:
            self._wait(self._pending.popleft())
        if self.ok:
            self._pending.append(self._pool.submit(fn, *args))

    def _wait(self, job: Future[None]) -> None:
        try:
            job.result()
        except Exception:
            self.abandon()  # never a wrong hash: the publish reads the files instead

    def abandon(self) -> None:
        self.ok = False
        self._current = None

    def begin(self, path: str) -> None:
        if not self.ok:
            return
        if self._next >= len(self.declared) or self.declared[self._next][0] != path:
            self.abandon()  # not the next declared file (another order, undeclared)
            return
        self._current = self.declared[self._next]
        self._next += 1
        self._fed = 0
        self._submit(self.writer.begin_file, f"payload/{path}", self._current[1])

    def feed(self, piece: memoryview) -> None:
        """Frame ``piece``; it must stay unchanged until :meth:`result` or the next
        ``IN_FLIGHT`` pieces (upload batches are immutable ``bytes``)."""
        if self._current is None:
            return
        self._fed += len(piece)
        if self._fed > self._current[1]:
            self.abandon()  # over the declared size
            return
        self._submit(self.writer.feed, piece)

    def end(self) -> None:
        if self._current is None:
            return
        size = self._current[1]
        self._current = None
        if self._fed != size:
            self.abandon()  # under the declared size
            return
        self._submit(self.writer.end_file, size)

    def result(self) -> ReceivedBundle | None:
        """The fed writer when every declared file arrived as declared, else None."""
        while self._pending:
            self._wait(self._pending.popleft())
        if not self.ok or self._current is not None or self._next != len(self.declared):
            return None
        return ReceivedBundle(self.writer, list(self.declared), self.mtime)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


def matches(bundle: ReceivedBundle, planned: list[PlannedFile]) -> bool:
    """Whether ``bundle`` was framed from exactly the files of ``planned``, each moved
    from a scratch folder with its sha256 known (hashed as received)."""
    return bundle.members == [(p.relpath, p.size) for p in planned] and all(
        p.move and p.sha256 for p in planned
    )


def place_received(
    planned: list[PlannedFile],
    version_dir: Path,
    make_manifest: Callable[[list[FileRecord]], bytes],
    bundle: ReceivedBundle,
    *,
    blobs_root: Path,
    fsync: bool = False,
    on_blob: Callable[[str], None] | None = None,
) -> tuple[list[FileRecord], tuple[int, str], int]:
    """What ``write_payload_and_bundle`` does for received files whose bundle framing
    is done (``matches(bundle, planned)``): each file becomes its blob by a rename
    (or is dropped when the blob exists), ``payload/`` links to the blobs, and the
    bundle gets manifest.json and its trailer. No byte of the payload is read.
    Returns the same ``(records, (bundle size, sha256), copies)``."""
    payload = version_dir / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    records: list[FileRecord] = []
    copies = 0
    for item in planned:
        sha = item.sha256
        assert sha is not None  # matches() checked it
        if on_blob is not None:
            on_blob(sha)
        blob = fs_blobs.blob_path(blobs_root, sha)
        if not blob.exists():  # else the received file stays in the scratch folder
            fs_blobs.adopt(blobs_root, item.source, sha, fsync=fsync)
        dst = payload / item.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not fs_blobs.link_payload(blob, dst):
            copies += 1
        records.append(FileRecord(f"payload/{item.relpath}", item.size, sha))
    manifest = make_manifest(records)
    (version_dir / "manifest.json").write_bytes(manifest)
    bundle.writer.add_bytes("manifest.json", manifest)
    return records, bundle.writer.close(), copies
