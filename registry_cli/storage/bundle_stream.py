"""A level-0 ``bundle.tar.gz`` assembled from a version's payload files as it is read.

:class:`~registry_cli.storage.bundle.BundleWriter` makes a level-0 bundle a pure
function of the member list, the manifest and the mtime (docs/layout.md), so a
version need not keep the bundle as a second copy of its payload: this module
rebuilds the same bytes on demand, without holding them in memory.

    gzip header (10 bytes, carrying the mtime)
    for each 65,535 bytes of the tar stream: a 5-byte stored-block header, the bytes
    an empty final stored block (5 bytes), CRC-32 and length of the tar stream (8 bytes)

The tar stream is: one header per folder (``payload`` and its sub-folders,
sorted), then for each manifest file its header, its bytes and zero padding to
512 bytes, then ``manifest.json`` the same way, then the end-of-archive zeros.
Every offset follows from the sizes alone, so :class:`BundleStream` knows its
``size`` and reads any range (``REST`` over FTP, ``Range`` over HTTP) by
reading only the payload files that range covers.

Damaged sources. The manifest records each file's sha256. A file whose last
byte leaves the stream is hashed on the way, and that last chunk is sent only
when the hash matches; a read that covers part of a file hashes the whole file
first. A file that was verified once by this process (same inode, size and
mtime; on an object store the same key) is trusted after that. A mismatch, or
a file of the wrong size or missing, raises :class:`DamagedSource` (an
integrity error, exit 5): the client sees a failed transfer, never a complete
download with wrong bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from registry_cli.errors import IntegrityError
from registry_cli.storage.bundle import (
    BLOCK,
    FINAL_BLOCK,
    STORED_MAX,
    bundle_folders,
    gzip_header,
    stored_block_header,
    tar_end_padding,
    tar_header,
)
from registry_cli.storage.bundle_sources import (
    DamagedSource,
    FolderSource,
    Member,
    Sources,
    StoreSource,
    Taker,
)
from registry_cli.storage.hashing import CHUNK

__all__ = [
    "BundleFile",
    "BundleLayout",
    "BundleStream",
    "DamagedSource",
    "FolderSource",
    "Member",
    "StoreSource",
]

FRAME = STORED_MAX + 5  # one stored block: header + data
HEADER = 10
TRAILER = len(FINAL_BLOCK) + 8
TRUSTED_MAX = 65536  # verified sources remembered per process


@dataclass(frozen=True)
class _Piece:
    start: int  # offset in the tar stream
    length: int
    data: bytes | None = None  # headers, padding, manifest.json
    member: Member | None = None  # a payload file


class BundleLayout:
    """Where every byte of the bundle comes from (the member list, manifest, mtime)."""

    def __init__(self, members: list[Member], manifest: bytes, mtime: int) -> None:
        self.members = members
        self.manifest = manifest
        self.mtime = mtime
        pieces: list[_Piece] = []
        pos = 0
        pending = bytearray()

        def add(data: bytes) -> None:
            pending.extend(data)

        def flush() -> None:
            nonlocal pos
            if pending:
                pieces.append(_Piece(pos, len(pending), bytes(pending)))
                pos += len(pending)
                pending.clear()

        for folder in bundle_folders([m.path for m in members]):
            add(tar_header(folder, mtime, is_dir=True))
        for m in members:
            add(tar_header(m.path, mtime, size=m.size))
            flush()
            if m.size:
                pieces.append(_Piece(pos, m.size, member=m))
                pos += m.size
            add(bytes(-m.size % BLOCK))
        add(tar_header("manifest.json", mtime, size=len(manifest)))
        add(manifest + bytes(-len(manifest) % BLOCK))
        add(bytes(tar_end_padding(pos + len(pending))))
        flush()
        self.pieces = pieces
        self.tar_size = pos
        self.blocks = -(-pos // STORED_MAX)
        self.blocks_end = HEADER + 5 * self.blocks + pos
        self.size = self.blocks_end + TRAILER

    @classmethod
    def from_manifest(
        cls, manifest: bytes, mtime: int, where: str = "manifest.json"
    ) -> BundleLayout:
        try:
            doc = json.loads(manifest)
            members = [
                Member(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc["files"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: cannot lay out its bundle ({exc})") from None
        return cls(members, manifest, mtime)

    def tar_offset(self, pos: int) -> int:
        """The tar offset of gzip offset ``pos`` (inside the blocks, or at their end)."""
        k, r = divmod(pos - HEADER, FRAME)
        return min(k * STORED_MAX + max(0, r - 5), self.tar_size)


_trusted: OrderedDict[Hashable, str] = OrderedDict()
_crc: dict[Hashable, int] = {}
_lock = threading.Lock()


def _is_trusted(identity: Hashable | None, sha256: str) -> bool:
    with _lock:
        return identity is not None and _trusted.get(identity) == sha256


def _trust(identity: Hashable | None, sha256: str) -> None:
    if identity is None:
        return
    with _lock:
        _trusted[identity] = sha256
        _trusted.move_to_end(identity)
        while len(_trusted) > TRUSTED_MAX:
            _trusted.popitem(last=False)


class BundleStream:
    """The bytes of one assembled bundle: ``size``, ranges, and a file object."""

    def __init__(
        self,
        layout_: BundleLayout,
        sources: Sources,
        *,
        label: str = "bundle",
        sha256: str | None = None,
    ) -> None:
        self.sha256 = sha256  # as recorded at publish (for ETags); not checked here
        self.layout = layout_
        self.sources = sources
        self.label = label
        self.size = layout_.size
        self._head = gzip_header(layout_.mtime)
        ids = tuple(sources.identity(m) for m in layout_.members)
        self._crc_key = (hashlib.sha256(layout_.manifest).hexdigest(), layout_.mtime, ids)

    # -- payload files -------------------------------------------------
    def _member(self, m: Member, start: int, end: int) -> Iterator[bytes | memoryview]:
        ident = self.sources.identity(m)
        if _is_trusted(ident, m.sha256):
            yield from self.sources.chunks(m, start, end)
            return
        if start != 0 or end != m.size:
            self._verify(m, ident)
            yield from self.sources.chunks(m, start, end)
            return
        digest = hashlib.sha256()
        pos = 0
        for data in self.sources.chunks(m, 0, m.size):
            digest.update(data)
            pos += len(data)
            if pos == m.size:  # the last chunk leaves only when the file is intact
                self._check(m, digest.hexdigest())
                _trust(ident, m.sha256)
            yield data

    def _verify(self, m: Member, ident: Hashable | None) -> None:
        digest = hashlib.sha256()
        for data in self.sources.chunks(m, 0, m.size):
            digest.update(data)
        self._check(m, digest.hexdigest())
        _trust(ident, m.sha256)

    def _check(self, m: Member, got: str) -> None:
        if got != m.sha256:
            raise DamagedSource(
                f"{self.label}: {m.path} is damaged (sha256 {got}, the manifest records "
                f"{m.sha256}); the bundle is not sent",
                hint="run: regctl verify, then restore the file (regctl doctor)",
            )

    def _tar(self, start: int, end: int) -> Iterator[bytes | memoryview]:
        for piece in self.layout.pieces:
            a = max(start, piece.start)
            b = min(end, piece.start + piece.length)
            if a >= b:
                continue
            if piece.data is not None:
                yield memoryview(piece.data)[a - piece.start : b - piece.start]
            else:
                assert piece.member is not None
                yield from self._member(piece.member, a - piece.start, b - piece.start)

    def crc32(self) -> int:
        """CRC-32 of the tar stream (read once per process, verifying every file)."""
        with _lock:
            known = _crc.get(self._crc_key)
        if known is not None:
            return known
        crc = 0
        for data in self._tar(0, self.layout.tar_size):
            crc = zlib.crc32(data, crc)
        with _lock:
            _crc[self._crc_key] = crc
        return crc

    # -- ranges --------------------------------------------------------
    def _frames(self, start: int, end: int) -> Iterator[bytes | memoryview]:
        lay = self.layout
        if start < HEADER:
            yield self._head[start : min(end, HEADER)]
        pos = max(start, HEADER)
        crc: int | None = None
        stop = min(end, lay.blocks_end)
        if pos < stop:
            t0, t1 = lay.tar_offset(pos), lay.tar_offset(stop)
            tar = Taker(self._tar(t0, t1))
            with _lock:
                known = _crc.get(self._crc_key)
            # a read of the whole tar stream computes the CRC on the way, once
            crc = 0 if t0 == 0 and t1 == lay.tar_size and known is None else None
            k = (pos - HEADER) // FRAME
            while pos < stop:
                block_at = HEADER + k * FRAME
                n = min(STORED_MAX, lay.tar_size - k * STORED_MAX)
                if pos < block_at + 5:
                    yield stored_block_header(n)[
                        pos - block_at : min(stop, block_at + 5) - block_at
                    ]
                data_from = max(pos, block_at + 5)
                data_to = min(stop, block_at + 5 + n)
                for view in tar.take(data_to - data_from):
                    if crc is not None:
                        crc = zlib.crc32(view, crc)
                    yield view
                pos = block_at + 5 + n
                k += 1
            if crc is not None:
                with _lock:
                    _crc[self._crc_key] = crc
        if end > lay.blocks_end:
            if crc is None:
                crc = self.crc32()  # known by now after a whole read: no second pass
            tail = FINAL_BLOCK + struct.pack("<II", crc, lay.tar_size & 0xFFFFFFFF)
            yield tail[max(0, start - lay.blocks_end) : end - lay.blocks_end]

    def iter_range(
        self, start: int = 0, end: int | None = None, *, reuse: bool = False
    ) -> Iterator[bytes | memoryview]:
        """The bytes ``[start, end)`` in chunks of about 1 MiB.

        Each piece is copied at once into an output buffer (a source may reuse its
        read buffer). With ``reuse`` the chunks are views of two buffers used in
        turn: a chunk is valid until the next-but-one is asked for (a consumer that
        sends each chunk before asking for the next), and no memory is allocated
        per chunk; otherwise each chunk is new ``bytes``."""
        end = self.size if end is None else min(end, self.size)
        outs = [bytearray(CHUNK + FRAME), bytearray(CHUNK + FRAME)]
        turn = 0
        out = outs[0]
        have = 0
        for view in self._frames(start, end):
            n = len(view)
            out[have : have + n] = view
            have += n
            if have >= CHUNK:
                done = memoryview(out)[:have]
                yield done if reuse else bytes(done)
                if reuse:
                    turn ^= 1
                    out = outs[turn]
                have = 0
        if have:
            done = memoryview(out)[:have]
            yield done if reuse else bytes(done)

    def read(self, offset: int, n: int) -> bytes:
        return b"".join(self.iter_range(offset, offset + n))  # each chunk is new bytes

    def open(self) -> BundleFile:
        return BundleFile(self)


class BundleFile:
    """A read-only, seekable file object over a :class:`BundleStream` (FTP, HTTP)."""

    def __init__(self, stream: BundleStream, name: str = "bundle.tar.gz") -> None:
        self.stream = stream
        self.name = name
        self.closed = False
        self._pos = 0
        self._it: Iterator[bytes | memoryview] | None = None
        self._buf = memoryview(b"")

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.stream.size}[whence]
        self._pos = max(0, base + pos)
        self._it, self._buf = None, memoryview(b"")
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read_view(self, n: int) -> memoryview:
        """Up to ``n`` next bytes (fewer only at a chunk's end; empty at the end of the
        bundle), as a view of the chunk: no copy (the FTP server sends these)."""
        if self._it is None:
            self._it = self.stream.iter_range(self._pos, reuse=True)
        if not self._buf:
            self._buf = memoryview(next(self._it, b""))
        take = self._buf[:n]
        self._buf = self._buf[len(take) :]
        self._pos += len(take)
        return take

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.stream.size - self._pos
        out: list[bytes] = []
        have = 0
        while have < n:
            take = self.read_view(n - have)
            if not take:
                break
            out.append(bytes(take))
            have += len(take)
        return b"".join(out)

    def readinto(self, view: memoryview) -> int:
        take = self.read_view(len(view))
        view[: len(take)] = take
        return len(take)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
        self._it = None

    def __enter__(self) -> BundleFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
