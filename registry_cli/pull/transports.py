"""How ``pull`` reads a served tree: over FTP/FTPS (stdlib ``ftplib``) or from a folder.

Every transport (these two and :class:`registry_cli.pull.http.HttpTransport`)
offers the same calls: :meth:`read_small` for the JSON documents (with a size
cap, so a hostile server cannot exhaust memory), :meth:`download` for a bundle
or a payload file (1 MiB blocks; sha256 and the write to disk run on helper
threads while the next block is received; from an offset to resume: FTP
``REST``, HTTP ``Range``), :meth:`fork` for an independent session (parallel
files) and :meth:`close`.

Errors: an unreachable server, a refused login or a broken connection raise
:class:`RemoteError` (exit 6); a missing file raises :class:`NotFound` (exit 3).
"""

from __future__ import annotations

import ftplib
import os
import posixpath
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from registry_cli.errors import BadInput, IntegrityError, NotFound, RemoteError
from registry_cli.storage.hashing import Progress
from registry_cli.storage.layout import inside
from registry_cli.storage.streams import HashingSink, pump

if TYPE_CHECKING:
    from hashlib import _Hash


class Fetched(NamedTuple):
    """A finished download: the file's size and sha256 from its first byte."""

    size: int
    sha256: str
    validator: str | None = None  # HTTP ETag/Last-Modified, for If-Range on a resume
    offset: int = 0  # where this transfer started (0 when a resume was refused)


class Transport(Protocol):
    description: str

    def read_small(self, relpath: str, limit: int) -> bytes: ...

    def download(
        self,
        relpath: str,
        fd: int,
        progress: Progress | None = None,
        *,
        offset: int = 0,
        prefix: _Hash | None = None,
        validator: str | None = None,
        limit: int | None = None,
        on_validator: Callable[[str | None], None] | None = None,
    ) -> Fetched:
        """Write ``relpath`` to ``fd`` from ``offset`` on (``prefix``: the hash of the
        bytes before it, already in the file at that position). With ``limit``, at most
        ``limit + 1`` bytes in all are taken (one more than expected tells a longer file).
        ``on_validator`` is called with the reply's validator (HTTP ETag/Last-Modified,
        S3 ETag; None when there is none) before the first body byte, so the caller can
        keep it beside the partial file for the ``If-Range`` of a later resume."""
        ...

    def fork(self) -> Transport: ...

    def close(self) -> None: ...


def sink_for(fd: int, offset: int, prefix: _Hash | None) -> HashingSink:
    """A hashing sink that continues after ``offset`` bytes already in the file."""
    if os.fstat(fd).st_size != offset:
        # only when needed: a truncation to 0, even of an empty file, makes ext4 start
        # writing the whole file back inside close() (its replace-via-truncate guard,
        # auto_da_alloc): ~0.45 s of a 1 GiB pull's 1.6 s, measured
        os.ftruncate(fd, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return HashingSink(fd, prefix if offset else None, size=offset)


# ---------------------------------------------------------------- FTP
class FtpTransport:
    """A logged-in FTP (or FTPS) session on a served tree."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None,
        password: str | None,
        tls: bool = False,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
        base: str = "/",
    ) -> None:
        self._args = (host, port)
        self._kwargs = dict(
            user=user, password=password, tls=tls, ca_cert=ca_cert, timeout=timeout, base=base
        )
        scheme = "ftps" if tls else "ftp"
        self.description = f"{scheme}://{user + '@' if user else ''}{_host_port(host, port)}"
        self.base = "/" + base.strip("/")
        ftp: ftplib.FTP
        if tls:
            context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
            ftp = ftplib.FTP_TLS(context=context, timeout=timeout)
        else:
            ftp = ftplib.FTP(timeout=timeout)
        self.ftp = ftp
        try:
            ftp.connect(host, port)
        except (OSError, EOFError, ftplib.Error) as exc:
            raise RemoteError(
                f"cannot reach {self.description}: {why(exc)}",
                hint="check the host and port, that `regctl serve-ftp` runs there, "
                "or use a cached version (--version vN, or --offline)",
            ) from None
        try:
            if tls:
                assert isinstance(ftp, ftplib.FTP_TLS)
                ftp.auth()
            ftp.login(user or "anonymous", password or ("anonymous@" if not user else ""))
            if tls:
                assert isinstance(ftp, ftplib.FTP_TLS)
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
        except ftplib.error_perm as exc:
            self.close()
            raise RemoteError(
                f"{self.description} refused the login: {why(exc)}",
                hint="check the user and the password (--password-env VAR)",
            ) from None
        except ssl.SSLError as exc:
            self.close()
            raise RemoteError(
                f"TLS with {self.description} failed: {why(exc)}",
                hint="for a private CA pass --ca-cert FILE",
            ) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            self.close()
            raise RemoteError(f"{self.description} failed during login: {why(exc)}") from None

    def _path(self, relpath: str) -> str:
        if any(c in relpath for c in "\r\n\0"):
            raise BadInput(f"invalid path {relpath!r}")
        return tree_path(self.base, relpath)

    def _failed(self, relpath: str, exc: BaseException) -> Exception:
        if isinstance(exc, ftplib.error_perm) and str(exc).startswith("550"):
            return NotFound(f"{relpath} is not on {self.description}")
        return RemoteError(f"{self.description}: transfer of {relpath} failed: {why(exc)}")

    def read_small(self, relpath: str, limit: int) -> bytes:
        buf = bytearray()

        def take(data: bytes) -> None:
            buf.extend(data)
            if len(buf) > limit:
                raise _TooLarge

        try:
            self.ftp.retrbinary(f"RETR {self._path(relpath)}", take, blocksize=65536)
        except _TooLarge:
            self.close()
            raise IntegrityError(
                f"{relpath} on {self.description} is larger than {limit} bytes; refusing it"
            ) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(relpath, exc) from None
        return bytes(buf)

    def download(
        self,
        relpath: str,
        fd: int,
        progress: Progress | None = None,
        *,
        offset: int = 0,
        prefix: _Hash | None = None,
        validator: str | None = None,
        limit: int | None = None,
        on_validator: Callable[[str | None], None] | None = None,
    ) -> Fetched:
        try:
            conn = self.ftp.transfercmd(f"RETR {self._path(relpath)}", rest=offset or None)
        except ftplib.error_perm as exc:
            if offset and str(exc).startswith("554"):  # REST past the end: the file changed
                return self.download(relpath, fd, progress, limit=limit)
            raise self._failed(relpath, exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(relpath, exc) from None
        try:
            with conn:
                size, digest = pump(
                    conn.recv_into, fd, progress, sink=sink_for(fd, offset, prefix), limit=limit
                )
                if limit is not None and size > limit:
                    self.close()  # the rest is not wanted: drop the session
                    return Fetched(size, digest, None, offset)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
            self.ftp.voidresp()
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(relpath, exc) from None
        return Fetched(size, digest, None, offset)

    def fork(self) -> FtpTransport:
        return FtpTransport(*self._args, **self._kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error, AttributeError):
            self.ftp.close()


class _TooLarge(Exception):
    pass


def tree_path(base: str, relpath: str) -> str:
    """``base/relpath`` as an absolute ``/`` path; a blob path's leading ``../`` (see
    :func:`registry_cli.pull.remote.blob_path`) goes up from ``base``, never above ``/``."""
    joined = posixpath.normpath(f"/{base.strip('/')}/{relpath}")
    return "/" + joined.lstrip("/")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__


# ---------------------------------------------------------------- local / NFS
class LocalTransport:
    """A served tree on a local or network-mounted filesystem."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.description = str(tree)
        if not tree.is_dir():
            raise RemoteError(
                f"no served tree at {tree}",
                hint="is the share mounted? use a cached version with --offline",
            )

    def _open_file(self, relpath: str) -> int:
        try:
            base, rel = (
                (self.tree.parent, relpath[3:])
                if relpath.startswith("../")
                else (
                    self.tree,
                    relpath,
                )
            )
            path = inside(base, *rel.split("/"))
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except BadInput as exc:
            raise IntegrityError(f"{relpath} under {self.tree}: {exc}") from None
        except FileNotFoundError:
            raise NotFound(f"{relpath} is not in {self.tree}") from None
        except OSError as exc:
            raise RemoteError(f"cannot read {relpath} in {self.tree}: {why(exc)}") from None

    def read_small(self, relpath: str, limit: int) -> bytes:
        fd = self._open_file(relpath)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise IntegrityError(f"{relpath} is larger than {limit} bytes; refusing it")
        return data

    def download(
        self,
        relpath: str,
        fd: int,
        progress: Progress | None = None,
        *,
        offset: int = 0,
        prefix: _Hash | None = None,
        validator: str | None = None,
        limit: int | None = None,
        on_validator: Callable[[str | None], None] | None = None,
    ) -> Fetched:
        assembled: Any = None
        try:
            src = self._open_file(relpath)
        except NotFound:  # a bundle assembled from the payload when read (docs/pull.md)
            from registry_cli.core.served.bundle_files import DistBundles

            assembled = DistBundles(self.tree).stream(os.path.join(self.tree, relpath))
            if assembled is None:
                raise
        try:
            with assembled.open() if assembled else os.fdopen(src, "rb", buffering=0) as fh:
                if offset:
                    fh.seek(offset)
                size, digest = pump(
                    fh.readinto,  # type: ignore[arg-type]
                    fd,
                    progress,
                    sink=sink_for(fd, offset, prefix),
                    limit=limit,
                )
        except OSError as exc:
            raise RemoteError(f"reading {relpath} in {self.tree} failed: {why(exc)}") from None
        return Fetched(size, digest, None, offset)

    def fork(self) -> LocalTransport:
        return self

    def close(self) -> None:
        pass
