"""The ``ftp:`` and ``pull:`` sections of ``registry.yaml``, validated, plus password sources.

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

    pull:                         # regctl pull and the Python client
      from: ftp://mlops@models.example:2121   # default --from
      stage: release
      cache_dir: null             # default: the torch hub dir (see registry_cli.ftp.pull)
      password_env: REGCTL_FTP_PASSWORD
      password_file: null
      ca_cert: null               # CA bundle for ftps:// servers with a private CA
      timeout_s: 30

A plaintext ``password:`` key is refused: passwords come from an environment
variable, a file or a prompt, never from the command line or the config.
Relative paths are relative to the config file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.errors import BadInput, ConfigError

FTP_KEYS = {
    "host",
    "port",
    "user",
    "password_env",
    "password_file",
    "anonymous",
    "passive_ports",
    "masquerade_address",
    "max_cons",
    "max_cons_per_ip",
    "login_delay_s",
    "idle_timeout_s",
    "tls_cert",
    "tls_key",
    "log_file",
}
PULL_KEYS = {"from", "stage", "cache_dir", "password_env", "password_file", "ca_cert", "timeout_s"}


@dataclass
class ServerSettings:
    """Everything ``serve-ftp`` needs; ``password`` is never printed (``repr=False``)."""

    dist: Path
    host: str = "127.0.0.1"
    port: int = 2121
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    anonymous: bool = False
    passive_ports: tuple[int, int] | None = None
    masquerade_address: str | None = None
    max_cons: int = 256
    max_cons_per_ip: int = 32
    login_delay_s: float = 2.0
    idle_timeout_s: float = 300.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_file: Path | None = None


def parse_port_range(text: Any, what: str = "--passive-ports") -> tuple[int, int]:
    """``"60000-60099"`` or ``[60000, 60099]`` → ``(60000, 60099)``."""
    if isinstance(text, (list, tuple)) and len(text) == 2:
        lo, hi = text
    else:
        lo, sep, hi = str(text).partition("-")
        if not sep:
            raise BadInput(f"{what} must look like 60000-60099, not {text!r}")
    try:
        a, b = int(lo), int(hi)
    except (TypeError, ValueError):
        raise BadInput(f"{what} must look like 60000-60099, not {text!r}") from None
    if not (1024 <= a <= b <= 65535):
        raise BadInput(f"{what}: need 1024 <= first <= last <= 65535, got {a}-{b}")
    return a, b


def password_from(
    password_env: str | None, password_file: str | None, section: dict[str, Any]
) -> str | None:
    """The password from ``--password-env``/``--password-file``, else the config
    section's ``password_env``/``password_file``; None when no source is named."""
    if password_env and password_file:
        raise BadInput("give --password-env or --password-file, not both")
    if password_env:
        return read_password_env(password_env)
    if password_file:
        return read_password_file(password_file)
    if section.get("password_env"):
        return read_password_env(section["password_env"])
    if section.get("password_file"):
        return read_password_file(section["password_file"])
    return None


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The first line of a file (trailing newline stripped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"password file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise BadInput(f"password file {path} is empty")
    return password


def read_password_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise BadInput(
            f"environment variable {var} is not set or empty",
            hint=f"export {var}=... before running, or use --password-file",
        )
    return value


def _section(cfg: Config, name: str, allowed: set[str]) -> dict[str, Any]:
    section = dict(cfg.section(name))
    where = cfg.path or "registry.yaml"
    if "password" in section:
        raise ConfigError(
            f"{where}: {name}.password is not allowed (no plaintext passwords in the config)",
            hint=f"use {name}.password_env or {name}.password_file",
        )
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {name}.{unknown[0]}",
            hint=f"{name}: takes {', '.join(sorted(allowed))}",
        )
    return section


def _cfg_error(cfg: Config, key: str, message: str) -> ConfigError:
    return ConfigError(f"{cfg.path or 'registry.yaml'}: {key} {message}")


def _typed(
    cfg: Config,
    section: dict[str, Any],
    prefix: str,
    key: str,
    kind: type,
    *,
    minimum: float | None = None,
) -> Any:
    if section.get(key) is None:
        return None
    value = section[key]
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise _cfg_error(cfg, f"{prefix}.{key}", f"must be a {kind.__name__}, not {value!r}")
    if minimum is not None and value < minimum:
        raise _cfg_error(cfg, f"{prefix}.{key}", f"must be at least {minimum}")
    return value


def _path(cfg: Config, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and cfg.path is not None:
        p = cfg.path.parent / p
    return p


def ftp_config(cfg: Config) -> dict[str, Any]:
    """The validated ``ftp:`` section, with typed values (absent keys left out)."""
    s = _section(cfg, "ftp", FTP_KEYS)
    out: dict[str, Any] = {}
    for key in ("host", "user", "password_env", "masquerade_address"):
        if (v := _typed(cfg, s, "ftp", key, str)) is not None:
            out[key] = v
    for key in ("password_file", "tls_cert", "tls_key", "log_file"):
        if (v := _typed(cfg, s, "ftp", key, str)) is not None:
            out[key] = _path(cfg, v)
    if (v := _typed(cfg, s, "ftp", "port", int, minimum=0)) is not None:
        if v > 65535:
            raise _cfg_error(cfg, "ftp.port", "must be at most 65535")
        out["port"] = v
    for key in ("max_cons", "max_cons_per_ip"):
        if (v := _typed(cfg, s, "ftp", key, int, minimum=1)) is not None:
            out[key] = v
    for key in ("login_delay_s", "idle_timeout_s"):
        if (v := _typed(cfg, s, "ftp", key, float, minimum=0)) is not None:
            out[key] = v
    if (v := _typed(cfg, s, "ftp", "anonymous", bool)) is not None:
        out["anonymous"] = v
    if s.get("passive_ports") is not None:
        try:
            out["passive_ports"] = parse_port_range(s["passive_ports"], "ftp.passive_ports")
        except BadInput as exc:
            raise _cfg_error(cfg, "ftp.passive_ports", str(exc).split(": ", 1)[-1]) from None
    return out


def pull_config(cfg: Config) -> dict[str, Any]:
    """The validated ``pull:`` section."""
    s = _section(cfg, "pull", PULL_KEYS)
    out: dict[str, Any] = {}
    for key in ("from", "stage", "password_env"):
        if (v := _typed(cfg, s, "pull", key, str)) is not None:
            out[key] = v
    for key in ("cache_dir", "password_file", "ca_cert"):
        if (v := _typed(cfg, s, "pull", key, str)) is not None:
            out[key] = _path(cfg, v)
    if (v := _typed(cfg, s, "pull", "timeout_s", float, minimum=0.1)) is not None:
        out["timeout_s"] = v
    return out
