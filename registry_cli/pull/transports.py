"""How ``pull`` reads a served tree: over FTP/FTPS (stdlib ``ftplib``) or from a folder.

Both transports offer the same three calls: :meth:`read_small` for the JSON
documents (with a size cap, so a hostile server cannot exhaust memory),
:meth:`download` for a bundle (1 MiB blocks; sha256 and the write to disk run
on helper threads while the next block is received), and :meth:`close`.

Errors: an unreachable server, a refused login or a broken connection raise
:class:`RemoteError` (exit 6); a missing file raises :class:`NotFound` (exit 3).
"""

from __future__ import annotations

import ftplib
import os
import socket
import ssl
from pathlib import Path
from typing import Protocol

from registry_cli.errors import BadInput, IntegrityError, NotFound, RemoteError
from registry_cli.pull.sources import Source
from registry_cli.storage.hashing import Progress
from registry_cli.storage.layout import inside
from registry_cli.storage.streams import pump


class Transport(Protocol):
    description: str

    def read_small(self, relpath: str, limit: int) -> bytes: ...

    def download(
        self, relpath: str, fd: int, progress: Progress | None = None
    ) -> tuple[int, str]: ...

    def close(self) -> None: ...


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
                f"cannot reach {self.description}: {_why(exc)}",
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
                f"{self.description} refused the login: {_why(exc)}",
                hint="check the user and the password (--password-env VAR)",
            ) from None
        except ssl.SSLError as exc:
            self.close()
            raise RemoteError(
                f"TLS with {self.description} failed: {_why(exc)}",
                hint="for a private CA pass --ca-cert FILE",
            ) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            self.close()
            raise RemoteError(f"{self.description} failed during login: {_why(exc)}") from None

    def _path(self, relpath: str) -> str:
        if any(c in relpath for c in "\r\n\0"):
            raise BadInput(f"invalid path {relpath!r}")
        return f"{self.base.rstrip('/')}/{relpath}"

    def _failed(self, relpath: str, exc: BaseException) -> Exception:
        if isinstance(exc, ftplib.error_perm) and str(exc).startswith("550"):
            return NotFound(f"{relpath} is not on {self.description}")
        return RemoteError(f"{self.description}: transfer of {relpath} failed: {_why(exc)}")

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

    def download(self, relpath: str, fd: int, progress: Progress | None = None) -> tuple[int, str]:
        try:
            conn = self.ftp.transfercmd(f"RETR {self._path(relpath)}")
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(relpath, exc) from None
        try:
            with conn:
                result = pump(conn.recv_into, fd, progress)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
            self.ftp.voidresp()
        except (OSError, EOFError, ftplib.Error) as exc:
            raise self._failed(relpath, exc) from None
        return result

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error, AttributeError):
            self.ftp.close()


class _TooLarge(Exception):
    pass


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _why(exc: BaseException) -> str:
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
            path = inside(self.tree, *relpath.split("/"))
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except BadInput as exc:
            raise IntegrityError(f"{relpath} under {self.tree}: {exc}") from None
        except FileNotFoundError:
            raise NotFound(f"{relpath} is not in {self.tree}") from None
        except OSError as exc:
            raise RemoteError(f"cannot read {relpath} in {self.tree}: {_why(exc)}") from None

    def read_small(self, relpath: str, limit: int) -> bytes:
        fd = self._open_file(relpath)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise IntegrityError(f"{relpath} is larger than {limit} bytes; refusing it")
        return data

    def download(self, relpath: str, fd: int, progress: Progress | None = None) -> tuple[int, str]:
        src = self._open_file(relpath)
        try:
            with os.fdopen(src, "rb", buffering=0) as fh:
                return pump(fh.readinto, fd, progress)  # type: ignore[arg-type]
        except OSError as exc:
            raise RemoteError(f"reading {relpath} in {self.tree} failed: {_why(exc)}") from None

    def close(self) -> None:
        pass


def open_transport(
    source: Source,
    *,
    password: str | None = None,
    ca_cert: Path | None = None,
    timeout: float = 30.0,
) -> Transport:
    """A connected transport for ``source`` (logged in, for FTP)."""
    if source.kind == "ftp":
        return FtpTransport(
            source.host,
            source.port,
            user=source.user,
            password=password,
            tls=source.tls,
            ca_cert=ca_cert,
            timeout=timeout,
            base=source.base,
        )
    assert source.tree is not None
    return LocalTransport(source.tree)
