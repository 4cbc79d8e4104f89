"""``bundle.tar.gz`` (``payload/`` + ``manifest.json``), written in the same pass
as the payload copy.

Each source chunk is read once and then, on three threads, written to the
payload file, hashed for the manifest, and framed into the bundle (which is
hashed as it is written). ``hashlib`` and ``os.write`` release the GIL, so on
two cores a publish costs little more than hashing its bytes twice.

Compression defaults to gzip level 0: the deflate stream is made of "stored"
blocks framed here directly around the tar bytes (no copy through zlib). It is
still a ``.tar.gz`` that every client opens, and its bytes depend only on the
members, the manifest and the mtime (fixed 65,535-byte blocks, see
:class:`BundleWriter` and docs/layout.md), so a reader can assemble the same
bundle again from the payload (:mod:`registry_cli.storage.bundle_stream`) and
publish may skip writing it (``store_bundle=False``). Model weights are float noise
that gzip shrinks by a few percent at 20-30 MB/s, so the default trades ~7 %
of bundle size for a publish ~30x faster. ``bundle: {compression: 1..9}``
switches to real deflate.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tarfile
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from registry_cli.errors import BadInput
from registry_cli.storage import fs_blobs
from registry_cli.storage.hashing import CHUNK, Progress
from registry_cli.storage.payload import FileRecord, PlannedFile
from registry_cli.storage.streams import write_all

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
STORED_MAX = 0xFFFF
IN_FLIGHT = 4  # chunk buffers in use at once (4 MiB of memory)


class Sink(Protocol):
    """Where a :class:`BundleWriter` puts its bytes (after hashing them)."""

    def write(self, parts: list[bytes | memoryview]) -> None: ...


class FdSink:
    """Write to a file descriptor (``writev``; a partial write is continued)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, parts: list[bytes | memoryview]) -> None:
        while parts:
            n = os.writev(self.fd, parts[:512])
            # drop what was written (writev may be partial)
            while parts and n >= len(parts[0]):
                n -= len(parts[0])
                parts.pop(0)
            if n:
                parts[0] = memoryview(parts[0])[n:]


class HashOnly:
    """Write nothing: the writer still hashes and counts (publish of a bundle that is
    assembled when it is read, see :mod:`registry_cli.storage.bundle_stream`)."""

    def write(self, parts: list[bytes | memoryview]) -> None:
        return None


def gzip_header(mtime: int) -> bytes:
    """The 10-byte gzip member header: deflate, no name, the given mtime, OS unknown."""
    return b"\x1f\x8b\x08\x00" + struct.pack("<I", mtime & 0xFFFFFFFF) + b"\x00\xff"


def stored_block_header(n: int) -> bytes:
    """A non-final deflate "stored" block of ``n`` bytes (byte-aligned)."""
    return struct.pack("<BHH", 0, n, n ^ 0xFFFF)


FINAL_BLOCK = b"\x01\x00\x00\xff\xff"  # an empty final stored block


def tar_header(name: str, mtime: int, *, size: int = 0, is_dir: bool = False) -> bytes:
    """The tar (pax) header of one bundle member: fixed mode, owner and mtime."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def bundle_folders(paths: list[str]) -> list[str]:
    """The folder members of a bundle holding ``paths`` (``payload/...``), sorted."""
    return sorted(
        {"payload"} | {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/"))}
    )


def tar_end_padding(tar_size: int) -> int:
    """Zero bytes after the last member: two empty blocks, then up to a full record."""
    end = 2 * BLOCK
    return end + (-(tar_size + end) % RECORD)


class BundleWriter:
    """Streams a gzip-wrapped tar to a sink, hashing what it writes.

    The output is a pure function of the member list (folders, then each file's
    name and size and bytes, then manifest.json), the mtime and the level: with
    level 0 the tar stream is cut into stored blocks of exactly
    :data:`STORED_MAX` bytes (the last one shorter), whatever the sizes of the
    pieces it was fed in, followed by an empty final block. So the bundle can
    be assembled again from the payload files, byte for byte, with its size and
    every offset known in advance (:mod:`registry_cli.storage.bundle_stream`).
    """

    def __init__(self, sink: int | Sink, *, level: int, mtime: int) -> None:
        self._sink: Sink = FdSink(sink) if isinstance(sink, int) else sink
        self._level = level
        self._mtime = mtime
        self._sha = hashlib.sha256()
        self._crc = 0
        self._raw_size = 0  # uncompressed (tar) bytes
        self._pending = bytearray()  # tar bytes of the stored block being filled
        self.size = 0  # bytes written to the sink
        self._deflate = (
            zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS) if level > 0 else None
        )
        self._out([gzip_header(mtime)])

    # -- low level ------------------------------------------------------
    def _out(self, parts: list[bytes | memoryview]) -> None:
        for p in parts:
            self._sha.update(p)
            self.size += len(p)
        self._sink.write(parts)

    def _tar_bytes(self, data: bytes | memoryview) -> None:
        """Append uncompressed tar bytes to the gzip member."""
        if not data:
            return
        self._crc = zlib.crc32(data, self._crc)
        self._raw_size += len(data)
        if self._deflate is not None:
            out = self._deflate.compress(data)
            if out:
                self._out([out])
            return
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        if self._pending:
            take = STORED_MAX - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < STORED_MAX:
                return
            parts += [stored_block_header(STORED_MAX), bytes(self._pending)]
            self._pending.clear()
        whole = len(view) - len(view) % STORED_MAX
        for start in range(0, whole, STORED_MAX):
            parts += [stored_block_header(STORED_MAX), view[start : start + STORED_MAX]]
        self._pending += view[whole:]
        if parts:
            self._out(parts)

    # -- tar entries ----------------------------------------------------
    def add_dir(self, name: str) -> None:
        self._tar_bytes(tar_header(name, self._mtime, is_dir=True))

    def begin_file(self, name: str, size: int) -> None:
        self._tar_bytes(tar_header(name, self._mtime, size=size))

    def feed(self, data: memoryview) -> None:
        self._tar_bytes(data)

    def end_file(self, size: int) -> None:
        pad = -size % BLOCK
        if pad:
            self._tar_bytes(bytes(pad))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.begin_file(name, len(data))
        self._tar_bytes(data)
        self.end_file(len(data))

    def close(self) -> tuple[int, str]:
        """Finish the archive and the gzip member; return ``(size, sha256)``."""
        self._tar_bytes(bytes(tar_end_padding(self._raw_size)))
        if self._deflate is not None:
            self._out([self._deflate.flush()])
        else:
            tail: list[bytes | memoryview] = []
            if self._pending:
                tail += [stored_block_header(len(self._pending)), bytes(self._pending)]
                self._pending.clear()
            self._out([*tail, FINAL_BLOCK])
        self._out([struct.pack("<II", self._crc, self._raw_size & 0xFFFFFFFF)])
        return self.size, self._sha.hexdigest()


class _Pump:
    """Streams one file: read once, then hashed, framed into the bundle and written on
    threads, ``IN_FLIGHT`` chunks at a time. The bundle is fed the file in ``CHUNK``
    pieces from its start (its stored blocks do not depend on those pieces)."""

    def __init__(
        self, hasher: ThreadPoolExecutor, bundler: ThreadPoolExecutor, bundle: BundleWriter
    ) -> None:
        self.hasher = hasher
        self.bundler = bundler
        self.bundle = bundle
        self.buffers = [bytearray(CHUNK) for _ in range(IN_FLIGHT)]
        self.turn = 0

    def run(
        self,
        item: PlannedFile,
        src: Path,
        out: Path | None,
        *,
        feed: bool,
        fsync: bool,
        progress: Progress | None,
        known: str | None = None,
    ) -> str:
        """Read ``src`` (copying it to the new file ``out`` when given); its sha256
        (``known``, not hashed again, when the caller hashed it already)."""
        digest = hashlib.sha256()
        size = 0
        pending: deque[list[Future[None]]] = deque()
        fd_in = os.open(src, os.O_RDONLY)
        try:
            fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644) if out else -1
            try:
                while True:
                    if len(pending) == IN_FLIGHT:
                        for fut in pending.popleft():
                            fut.result()
                    buf = self.buffers[self.turn]
                    self.turn = (self.turn + 1) % IN_FLIGHT
                    n = os.readv(fd_in, [buf])
                    if n == 0:
                        break
                    size += n
                    if size > item.size:
                        break
                    view = memoryview(buf)[:n]
                    jobs = [] if known else [self.hasher.submit(digest.update, view)]
                    if feed:
                        jobs.append(self.bundler.submit(self.bundle.feed, view))
                    pending.append(jobs)
                    if fd_out >= 0:
                        write_all(fd_out, view)
                    if progress is not None:
                        progress(n)
                if fsync and fd_out >= 0:
                    os.fsync(fd_out)
            finally:
                if fd_out >= 0:
                    os.close(fd_out)
                while pending:
                    for fut in pending.popleft():
                        fut.result()
        finally:
            os.close(fd_in)
        if size != item.size:
            raise BadInput(
                f"{item.source} changed size while being published",
                hint="publish a file that is no longer being written",
            )
        return known or digest.hexdigest()


def write_payload_and_bundle(
    planned: list[PlannedFile],
    version_dir: Path,
    make_manifest: Callable[[list[FileRecord]], bytes],
    *,
    level: int = 0,
    mtime: int = 0,
    progress: Progress | None = None,
    fsync: bool = False,
    blobs_root: Path | None = None,
    copy: bool = True,
    store_bundle: bool = True,
    on_blob: Callable[[str], None] | None = None,
) -> tuple[list[FileRecord], tuple[int, str], int]:
    """Hash every planned file and place it, computing the bundle from the same reads.

    * ``blobs_root`` (a folder root): each file is copied once into a temporary blob,
      hashed as it is copied, and becomes ``blobs/sha256/xx/<sha>`` unless that blob
      exists (the copy is dropped); ``version_dir/payload/<path>`` is a hard link to it.
      A file of the size of an existing blob is hashed first without writing, so bytes
      the root holds already cost one read and no write.
    * else with ``copy``: a plain copy into ``version_dir/payload``;
    * else: hashed only (an object store uploads its blobs from the sources).

    ``on_blob`` hears each sha256 before its blob is looked for (the pending marker).
    ``make_manifest`` receives the file records and returns manifest.json's bytes,
    written beside the payload and last into the bundle. ``bundle.tar.gz`` is
    written only with ``store_bundle``, its sha256 and size are always computed.
    Returns the records, the bundle's ``(size, sha256)`` and how many payload files
    are copies of their blob because the filesystem refused a hard link.
    """
    payload = version_dir / "payload"
    placed = copy or blobs_root is not None
    if placed:
        payload.mkdir(parents=True, exist_ok=True)
    folders = bundle_folders([f"payload/{p.relpath}" for p in planned])
    known = fs_blobs.sizes(blobs_root) if blobs_root is not None else set()
    seen = fs_blobs.load_seen(blobs_root) if blobs_root is not None else {}
    seen_before = dict(seen)
    records: list[FileRecord] = []
    copies = 0
    # without store_bundle the bundle is assembled from the blobs when read: only
    # its size and sha256 are kept
    bundle_fd = (
        os.open(version_dir / "bundle.tar.gz", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if store_bundle
        else -1
    )
    try:
        with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(1) as bundler:
            bundle = BundleWriter(
                FdSink(bundle_fd) if store_bundle else HashOnly(), level=level, mtime=mtime
            )
            pump = _Pump(hasher, bundler, bundle)
            for folder in folders:
                bundler.submit(bundle.add_dir, folder)
            for item in planned:
                dst = payload / item.relpath
                if placed:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                # the header records the planned size; a file that changes size
                # while being read would corrupt the bundle, so it is refused
                bundler.submit(bundle.begin_file, f"payload/{item.relpath}", item.size)
                if blobs_root is not None:
                    sha = _into_blob(pump, item, blobs_root, known, seen, fsync, progress, on_blob)
                    if not fs_blobs.link_payload(fs_blobs.blob_path(blobs_root, sha), dst):
                        copies += 1
                else:
                    src, out = item.source, (dst if copy else None)
                    if item.move and copy:  # already on this filesystem: rename, then read
                        os.rename(item.source, dst)
                        src, out = dst, None
                    sha = pump.run(item, src, out, feed=True, fsync=fsync, progress=progress)
                    if on_blob is not None:
                        on_blob(sha)
                bundler.submit(bundle.end_file, item.size).result()
                records.append(FileRecord(f"payload/{item.relpath}", item.size, sha))
            manifest = make_manifest(records)
            (version_dir / "manifest.json").write_bytes(manifest)
            bundler.submit(bundle.add_bytes, "manifest.json", manifest).result()
            result = bundler.submit(bundle.close).result()
        if fsync and store_bundle:
            os.fsync(bundle_fd)
    finally:
        if store_bundle:
            os.close(bundle_fd)
    if blobs_root is not None and seen != seen_before:
        fs_blobs.save_seen(blobs_root, seen)
    return records, result, copies


def _into_blob(
    pump: _Pump,
    item: PlannedFile,
    root: Path,
    known: set[int],
    seen: dict[str, str],
    fsync: bool,
    progress: Progress | None,
    on_blob: Callable[[str], None] | None,
) -> str:
    """Store one planned file as its blob (if new); its sha256. ``known``: sizes of
    the blobs present; ``seen``: source identities hashed before (updated here)."""
    ident = None if item.move else fs_blobs.identity(item.source)
    if item.move or item.size in known:
        # may be a blob already (or is ours to rename): hash without writing first,
        # or only read it for the bundle when this very file was hashed before
        before = seen.get(ident) if ident else None
        if before and not fs_blobs.blob_path(root, before).exists():
            before = None
        known_sha = item.sha256 or before
        sha = pump.run(
            item, item.source, None, feed=True, fsync=False, progress=progress, known=known_sha
        )
        if before and fs_blobs.identity(item.source) != ident:
            raise BadInput(
                f"{item.source} changed while being published",
                hint="publish a file that is no longer being written",
            )
        if on_blob is not None:
            on_blob(sha)
        if fs_blobs.blob_path(root, sha).exists():
            if ident:
                seen[ident] = sha
            return sha
        if item.move:
            fs_blobs.adopt(root, item.source, sha, fsync=fsync)
            return sha
        tmp = fs_blobs.incoming(root)
        try:
            again = pump.run(item, item.source, tmp, feed=False, fsync=fsync, progress=None)
            if again != sha:
                raise BadInput(
                    f"{item.source} changed while being published",
                    hint="publish a file that is no longer being written",
                )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    else:
        tmp = fs_blobs.incoming(root)
        try:
            sha = pump.run(item, item.source, tmp, feed=True, fsync=fsync, progress=progress)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if on_blob is not None:
            on_blob(sha)
    known.add(item.size)
    try:
        fs_blobs.adopt(root, tmp, sha, fsync=fsync)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # dropped, or left by a failed adopt
    if ident and fs_blobs.identity(item.source) == ident:
        seen[ident] = sha
    return sha
