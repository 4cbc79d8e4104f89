"""Credentials for an OCI registry and its two auth schemes (see docs/oci.md).

Credentials come from ``--username U --password-env VAR``, else the Docker config
(``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``): its ``auths``
entry for the host, a base64 ``user:password`` in ``auth`` (or ``username`` and
``password`` keys). Credential helpers (``credsStore``) are not run.

A ``401`` names the scheme in ``WWW-Authenticate``: ``Basic`` sends the
credentials with every request; ``Bearer realm=...,service=...,scope=...`` asks
the realm for a token (with the credentials as Basic, or anonymously) and sends
that. A password is never put on a command line nor printed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from registry_cli.errors import BadInput

_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never a password in a traceback or a log
        return f"Credentials(username={self.username!r}, password=***)"

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def docker_config_path() -> Path:
    folder = os.environ.get("DOCKER_CONFIG")
    base = Path(folder) if folder else Path.home() / ".docker"
    return base / "config.json"


def _host_keys(host: str) -> list[str]:
    """The keys an ``auths`` entry may use for ``host`` (``HOST[:PORT]``)."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io"):
        keys.append("https://index.docker.io/v1/")
    return keys


def from_docker_config(host: str, path: Path | None = None) -> Credentials | None:
    """The ``auths`` credentials of ``host`` in the Docker config, or None."""
    path = path or docker_config_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read the Docker config ({exc})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    for key in _host_keys(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise BadInput(
                    f"{path}: the auth entry of {key!r} is not base64 user:password"
                ) from None
            return Credentials(user, password)
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def resolve(host: str, username: str | None, password_env: str | None) -> Credentials | None:
    """``--username`` + ``--password-env`` (both or neither), else the Docker config."""
    if bool(username) != bool(password_env):
        raise BadInput("give --username and --password-env together")
    if username and password_env:
        from registry_cli.settings import read_password_env

        return Credentials(username, read_password_env(password_env))
    return from_docker_config(host)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" | "bearer"
    params: dict[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """``Basic realm="x"`` or ``Bearer realm="...",service="...",scope="..."``."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def token_url(challenge: Challenge, scope: str) -> str:
    """The realm's URL asking for ``scope`` (the challenge's own scope when it names one)."""
    realm = challenge.params.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"the registry's token realm is not an http(s) URL: {realm!r}")
    query = [("service", challenge.params["service"])] if "service" in challenge.params else []
    wanted = challenge.params.get("scope") or scope
    for one in dict.fromkeys([wanted, scope]):
        if one:
            query.append(("scope", one))
    sep = "&" if parts.query else "?"
    return realm + (sep + urllib.parse.urlencode(query) if query else "")
