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
    if source.kind in ("s3", "oci"):  # boto3 / the OCI client load only for such a source
        from registry_cli.pull.oci import transport_for

        return transport_for(source, ca_cert=ca_cert, timeout=timeout)
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
