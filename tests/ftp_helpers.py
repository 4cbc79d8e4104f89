"""Run the real ``regctl serve-ftp`` in a subprocess for tests, and small FTP/TLS utilities.

    with FtpServer(root, "--user", "mlops", "--password-env", "FTP_PW",
                   env={"FTP_PW": "s3cret"}) as srv:
        srv.port ...  # a free loopback port picked by the server itself (--port 0)

The server is stopped by its own handle (SIGTERM to that process only).
"""

from __future__ import annotations

import datetime as _dt
import ftplib
import os
import time
from pathlib import Path

from registry_cli.ftp.launch import ServeFtpProcess

PASSWORD = "s3cret-pw"


class FtpServer(ServeFtpProcess):
    """The product's launcher with a log beside the registry and test conveniences."""

    def __init__(
        self,
        root: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        super().__init__(
            root,
            *args,
            env=env,
            log=log or root.parent / f"ftp-{os.getpid()}-{time.monotonic_ns()}.log",
            start_timeout=start_timeout,
        )

    def __enter__(self) -> FtpServer:
        self.start()
        return self

    @property
    def url(self) -> str:
        return f"ftp://{self.host}:{self.port}"

    def user_url(self, user: str = "mlops") -> str:
        return f"ftp://{user}@{self.host}:{self.port}"

    def ftp(self, user: str = "mlops", password: str = PASSWORD) -> ftplib.FTP:
        client = ftplib.FTP(timeout=10)
        client.connect(self.host, self.port)
        client.login(user, password)
        return client


def make_tls_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (and localhost), valid for a day."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regctl test")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path = folder / "server.crt"
    key_path = folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
