"""A connected transport for a source (the puller's and the benches' one way in)."""

from __future__ import annotations

from pathlib import Path

from registry_cli.pull.http import HttpTransport
from registry_cli.pull.sources import Source
from registry_cli.pull.transports import FtpTransport, LocalTransport, Transport


def open_transport(
    source: Source,
    *,
    password: str | None = None,
    token: str | None = None,
    ca_cert: Path | None = None,
    timeout: float = 30.0,
) -> Transport:
    """A connected transport for ``source`` (logged in, for FTP)."""
    if source.kind == "http":
        return HttpTransport(source, token=token, ca_cert=ca_cert, timeout=timeout)
    if source.kind == "s3":
        from registry_cli.pull.s3 import S3Transport

        return S3Transport(source, timeout=timeout)
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
