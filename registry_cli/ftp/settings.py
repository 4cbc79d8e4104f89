"""What ``regctl serve-ftp`` serves and how: the ``ftp:`` section of ``registry.yaml``
merged with the flags (the table is :data:`registry_cli.settings.FTP`).

    ftp:                          # regctl serve-ftp
      host: 127.0.0.1             # 0.0.0.0 to serve the network
      port: 2121
      user: mlops
      password_env: REGCTL_FTP_PASSWORD   # or password_file: /etc/regctl/ftp.pass
      anonymous: false            # read-only anonymous access too
      passive_ports: 60000-60099  # or [60000, 60099]
      masquerade_address: null    # public address to announce behind NAT
      max_cons: 256
      max_cons_per_ip: 32
      login_delay_s: 2.0          # delay before answering a failed login
      idle_timeout_s: 300
      tls_cert: /etc/regctl/ftp.crt   # with tls_key: FTPS, TLS required on both channels
      tls_key: /etc/regctl/ftp.key
      log_file: null              # default: stderr

A plaintext ``password:`` key is refused: passwords come from an environment
variable or a file, never from the command line or the config. Relative paths
are relative to the config file's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.errors import NotFound
from registry_cli.settings import FTP, password_from


@dataclass
class ServerSettings:
    """Everything ``serve-ftp`` needs; ``password`` is never printed (``repr=False``)."""

    dist: Path
    host: str = FTP["host"].default
    port: int = FTP["port"].default
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    anonymous: bool = FTP["anonymous"].default
    passive_ports: tuple[int, int] | None = None
    masquerade_address: str | None = None
    max_cons: int = FTP["max_cons"].default
    max_cons_per_ip: int = FTP["max_cons_per_ip"].default
    login_delay_s: float = FTP["login_delay_s"].default
    idle_timeout_s: float = FTP["idle_timeout_s"].default
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_file: Path | None = None


def server_settings(
    root: Path,
    config: Config,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Settings to serve ``root/dist``: ``flags`` (keys of the ``ftp:`` section, None =
    not given), else the config, else the defaults; the password read from its source.

    A root that is neither a registry nor a served tree's parent is :class:`NotFound`.
    """
    if not (root / "models").is_dir() and not (root / "dist").is_dir():
        raise NotFound(
            f"no registry at {root}",
            hint="point --root / REGCTL_ROOT at it, or create one with: regctl init",
        )
    values = FTP.resolve(flags, config.section("ftp"), env)
    password = password_from(values, env)
    return ServerSettings(
        dist=root / "dist",
        password=password,
        **{k: v for k, v in values.items() if k not in ("password_env", "password_file")},
    )
