"""The ``oci_mirrors:`` list of registry.yaml (see docs/oci.md#mirrors).

oci_mirrors:
  - url: oci://registry.example.com/models   # pushes go to <url>/<model name>
    stages: [release]     # entering one pushes the version, tagged vN and the stage
    aliases: [champion]   # moving one moves its tag
    plain_http: false     # allow an unencrypted registry
    ca_cert: ca.pem       # optional, relative to the config file
    username: ci          # optional, with password_env; else the Docker config
    password_env: MIRROR_PASSWORD
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS = ("url", "stages", "aliases", "plain_http", "ca_cert", "username", "password_env")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*\Z")
_URL_RE = re.compile(r"oci://[^/\s@]+(/[a-z0-9._/-]*)?\Z")


class MirrorConfigError(ValueError):
    """A malformed ``oci_mirrors`` entry; ``keys`` locate it in the file."""

    def __init__(self, message: str, *keys: str) -> None:
        super().__init__(message)
        self.keys = keys


@dataclass(frozen=True)
class Mirror:
    url: str  # oci://HOST[:PORT][/PREFIX], no trailing slash
    stages: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    plain_http: bool = False
    ca_cert: str | None = None
    username: str | None = None
    password_env: str | None = None

    def repository(self, model: str) -> str:
        """``oci://HOST/PREFIX/<model>``."""
        return f"{self.url}/{model}"


def _names(value: Any, key: str, index: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MirrorConfigError(f"oci_mirrors[{index}].{key} must be a list of names", key)
    return tuple(value)


def parse_mirrors(data: Any, base: Path | None) -> tuple[Mirror, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise MirrorConfigError("oci_mirrors must be a list of {url, stages, aliases}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise MirrorConfigError(f"oci_mirrors[{i}] must be a mapping")
        unknown = sorted(set(item) - set(KEYS))
        if unknown:
            raise MirrorConfigError(f"oci_mirrors[{i}]: unknown key {unknown[0]!r}", unknown[0])
        url = item.get("url")
        if not isinstance(url, str) or not _URL_RE.match(url.rstrip("/")):
            raise MirrorConfigError(
                f"oci_mirrors[{i}].url must be oci://HOST[:PORT]/PREFIX (got {url!r})", "url"
            )
        stages = _names(item.get("stages"), "stages", i)
        aliases = _names(item.get("aliases"), "aliases", i)
        if not stages and not aliases:
            raise MirrorConfigError(f"oci_mirrors[{i}] lists no stages and no aliases")
        plain = item.get("plain_http", False)
        if not isinstance(plain, bool):
            raise MirrorConfigError(f"oci_mirrors[{i}].plain_http must be true or false")
        user, env = item.get("username"), item.get("password_env")
        if bool(user) != bool(env):
            raise MirrorConfigError(f"oci_mirrors[{i}]: give username and password_env together")
        ca = item.get("ca_cert")
        if ca is not None:
            ca_path = Path(os.path.expanduser(str(ca)))
            if base is not None and not ca_path.is_absolute():
                ca_path = base / ca_path
            ca = str(ca_path)
        out.append(Mirror(url.rstrip("/"), stages, aliases, plain, ca, user or None, env or None))
    return tuple(out)
