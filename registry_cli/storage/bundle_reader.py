"""Read ``bundle.tar.gz`` (the inverse of :mod:`registry_cli.storage.bundle`):
unpack it into an empty folder, refusing hostile members, hashing each file as
it is written, returning each file's size and sha256 (the puller checks them against
``manifest.json``).

Every member must be a regular file or folder under ``payload/``, or
``manifest.json``; links, devices, absolute paths and ``..`` are refused here
first (tarfile's ``data`` filter strips a leading ``/`` silently), then by the
``data`` filter. A refused or corrupt bundle raises :class:`IntegrityError`
(exit 5); the caller removes the half-written folder.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry_cli.errors import IntegrityError
from registry_cli.storage.hashing import CHUNK
from registry_cli.storage.streams import HashingSink


def check_member(member: tarfile.TarInfo) -> str:
    """Our own rules before tarfile's ``data`` filter (which silently strips a leading '/')."""
    name = member.name
    if not name or "\0" in name or "\\" in name:
        raise IntegrityError(f"hostile bundle: bad member name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise IntegrityError(f"hostile bundle: absolute path {name!r}")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", "") for p in parts):
        raise IntegrityError(f"hostile bundle: {name!r} leaves its folder")
    if member.issym() or member.islnk():
        raise IntegrityError(f"hostile bundle: {name!r} is a link")
    if member.isdev() or member.isfifo():
        raise IntegrityError(f"hostile bundle: {name!r} is a device or fifo")
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise IntegrityError(f"hostile bundle: {name!r} is not a regular file or folder")
    clean = "/".join(p for p in parts if p != ".")
    if clean != "manifest.json" and clean != "payload" and not clean.startswith("payload/"):
        raise IntegrityError(
            f"unexpected member {name!r}: a bundle holds payload/ and manifest.json only"
        )
    if clean == "manifest.json" and not member.isreg():
        raise IntegrityError("hostile bundle: manifest.json is not a file")
    return clean


class _Inflater:
    """A forward-only, seekable view of a gzip file's decompressed bytes.

    tarfile reads headers through :meth:`read`/:meth:`seek` ("r:" mode never seeks
    back when members are read in order); member data is taken with
    :meth:`chunks` as views of the inflated blocks, without the extra copies of
    tarfile's stream mode. Output per step is capped, so a gzip bomb cannot
    inflate a whole file into memory at once.
    """

    name = None

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(31)
        self._buf = memoryview(b"")
        self._pos = 0

    def _more(self) -> bool:
        while not self._buf:
            if self._z.eof:
                return False
            data = self._z.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                raise IntegrityError("corrupt bundle: the gzip stream is truncated")
            self._buf = memoryview(self._z.decompress(data, 4 * CHUNK))
        return True

    def chunks(self, n: int) -> Any:
        """Yield the next ``n`` bytes as memoryviews."""
        while n > 0:
            if not self._more():
                raise IntegrityError("corrupt bundle: it ends inside a file")
            take = self._buf[:n]
            self._buf = self._buf[len(take) :]
            self._pos += len(take)
            n -= len(take)
            yield take

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while (n < 0 or len(out) < n) and self._more():
            take = self._buf[: (n - len(out)) if n >= 0 else len(self._buf)]
            out += take
            self._buf = self._buf[len(take) :]
            self._pos += len(take)
        return bytes(out)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise IntegrityError("corrupt bundle: its members are not in order")
        for _ in self.chunks(pos - self._pos):
            pass
        return self._pos

    def finish(self) -> None:
        """Read to the end of the gzip stream, so its CRC and length are checked."""
        while self._more():
            self._pos += len(self._buf)
            self._buf = memoryview(b"")


def unpack_bundle(
    bundle: Path, dest: Path, progress: Callable[[int], None] | None = None
) -> dict[str, tuple[int, str]]:
    """Unpack ``bundle`` into the empty folder ``dest``; return ``{path: (size, sha256)}``.

    Every member is checked by :func:`check_member` and by tarfile's ``data``
    filter; file contents are hashed while they are written.
    """
    out: dict[str, tuple[int, str]] = {}
    dest_str = os.fspath(dest)
    try:
        with open(bundle, "rb", buffering=0) as raw:
            stream = _Inflater(raw)
            tar = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
            for member in tar:
                clean = check_member(member)
                try:
                    filtered = tarfile.data_filter(member, dest_str)
                except tarfile.FilterError as exc:
                    raise IntegrityError(f"hostile bundle: {exc}") from None
                if filtered is None:
                    raise IntegrityError(f"hostile bundle: member {member.name!r} refused")
                target = dest / clean
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if clean in out:
                    raise IntegrityError(f"hostile bundle: {clean!r} appears twice")
                target.parent.mkdir(parents=True, exist_ok=True)
                stream.seek(member.offset_data)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                try:
                    sink = HashingSink(fd)
                    try:
                        for view in stream.chunks(member.size):
                            sink.submit(view)
                            if progress is not None:
                                progress(len(view))
                    finally:
                        size, digest = sink.finish()
                finally:
                    os.close(fd)
                out[clean] = (size, digest)
            stream.finish()
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        raise IntegrityError(f"corrupt bundle {bundle.name}: {exc}") from None
    except FileExistsError as exc:
        raise IntegrityError(f"hostile bundle: {exc.filename} would be written twice") from None
    return out
