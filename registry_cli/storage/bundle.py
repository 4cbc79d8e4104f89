"""``bundle.tar.gz`` (``payload/`` + ``manifest.json``): its writer, fed in the same
pass as the payload copy (:mod:`registry_cli.storage.payload_copy`).

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

import hashlib
import os
import struct
import tarfile
import zlib
from typing import Protocol

from registry_cli.storage.crc import crc32_combine

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

    def _tar_bytes(self, data: bytes | memoryview, *, crc: bool = True) -> None:
        """Append uncompressed tar bytes to the gzip member (``crc=False``: the caller
        gives their CRC-32 later, see :meth:`end_file`)."""
        if not data:
            return
        if crc:
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

    def feed(self, data: memoryview, *, crc: bool = True) -> None:
        """The file's next bytes. ``crc=False``: their CRC-32 is computed elsewhere
        (on another thread) and handed to :meth:`end_file` for the whole file."""
        self._tar_bytes(data, crc=crc)

    def end_file(self, size: int, crc: int | None = None) -> None:
        """After the file's ``size`` bytes; ``crc``: their CRC-32 when they were fed
        with ``crc=False`` (combined into the stream's, no second pass)."""
        if crc is not None:
            self._crc = crc32_combine(self._crc, crc, size)
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
