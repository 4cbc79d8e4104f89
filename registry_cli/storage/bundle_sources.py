"""Where an assembled bundle's payload files are read from (see
:mod:`registry_cli.storage.bundle_stream`): a local version folder, or a store
(the version's own objects, else its blobs)."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.hashing import CHUNK
from registry_cli.storage.store import Missing, Store


class DamagedSource(IntegrityError):
    """A payload file does not hold the bytes its manifest records."""


@dataclass(frozen=True)
class Member:
    """One payload file of the bundle, as the manifest lists it."""

    path: str  # "payload/..."
    size: int
    sha256: str


class Sources(Protocol):
    """Reads the payload files of one version."""

    def identity(self, member: Member) -> Hashable | None: ...

    def chunks(self, member: Member, start: int, end: int) -> Iterator[bytes | memoryview]:
        """The bytes ``[start, end)`` of one file; a chunk may be a view of a buffer
        that the next chunk overwrites (use or copy it before asking for more)."""
        ...


class FolderSource:
    """Payload files under a local version folder (``<folder>/payload/...``), e.g. the
    hard links of ``dist/<stage>/<name>/versions/vN/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, member: Member) -> str:
        return os.path.join(self.folder, *member.path.split("/"))

    def identity(self, member: Member) -> Hashable | None:
        try:
            st = os.stat(self._path(member))
        except OSError:
            return None
        return ("file", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def chunks(self, member: Member, start: int, end: int) -> Iterator[bytes | memoryview]:
        path = self._path(member)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise DamagedSource(f"{path}: cannot read it ({exc.strerror})") from None
        try:
            if os.fstat(fd).st_size != member.size:
                raise DamagedSource(f"{path}: size differs from the manifest's {member.size}")
            buf = memoryview(bytearray(min(CHUNK, end - start)))  # reused: see Sources
            pos = start
            while pos < end:
                n = os.preadv(fd, [buf[: min(CHUNK, end - pos)]], pos)
                if not n:
                    raise DamagedSource(f"{path}: ends before byte {end}")
                pos += n
                yield buf[:n]
        finally:
            os.close(fd)


class StoreSource:
    """Payload files of ``vkey`` read through a store: the version's own file when it
    has one, else its blob ``blobs/sha256/..`` (object-store roots)."""

    def __init__(self, store: Store, vkey: str) -> None:
        self.store = store
        self.vkey = vkey
        self._keys: dict[str, str] = {}

    def key(self, member: Member) -> str:
        found = self._keys.get(member.path)
        if found is None:
            own = f"{self.vkey}/{member.path}"
            found = own if self.store.kind(own) == "file" else layout.blob_key(member.sha256)
            self._keys[member.path] = found
        return found

    def identity(self, member: Member) -> Hashable | None:
        return ("store", self.store.location, self.key(member))

    def chunks(self, member: Member, start: int, end: int) -> Iterator[bytes]:
        key = self.key(member)
        try:
            body: BinaryIO = self.store.open(key)
        except Missing:
            raise DamagedSource(f"{self.store.location}/{key} is missing") from None
        try:
            pos = 0
            while pos < end:
                want = min(CHUNK, end - pos) if pos >= start else min(CHUNK, start - pos)
                data = body.read(want)
                if not data:
                    raise DamagedSource(f"{self.store.location}/{key}: ends before byte {end}")
                if pos >= start:
                    yield data
                pos += len(data)
            if end == member.size and body.read(1):
                raise DamagedSource(f"{self.store.location}/{key}: longer than {member.size}")
        finally:
            body.close()


class Taker:
    """Take exact byte counts from an iterator of chunks."""

    def __init__(self, it: Iterator[bytes | memoryview]) -> None:
        self._it = it
        self._buf = memoryview(b"")

    def take(self, n: int) -> Iterator[memoryview]:
        while n > 0:
            if not self._buf:
                try:
                    self._buf = memoryview(next(self._it))
                except StopIteration:
                    raise IntegrityError("bundle layout ended early") from None
                continue
            view = self._buf[:n]
            self._buf = self._buf[len(view) :]
            n -= len(view)
            yield view
