"""Where ``pull`` reads from: ``--from ftp://...``, ``ftps://...`` or a folder.

A folder may be a registry root (its ``dist/`` is used) or a served tree. A
password inside a URL is refused: it would end up in shell history and ``ps``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from registry_cli.errors import BadInput, NotFound

DEFAULT_PORT = 2121


@dataclass(frozen=True)
class Source:
    """An FTP(S) server or a served tree (or registry root) on disk."""

    kind: str  # "ftp" | "local"
    host: str = ""
    port: int = DEFAULT_PORT
    user: str | None = None
    tls: bool = False
    base: str = "/"
    tree: Path | None = None

    @property
    def key(self) -> str:
        """The cache folder of this source (see :mod:`registry_cli.pull.cache`)."""
        if self.kind == "ftp":
            return f"{self.host.replace(':', '-')}_{self.port}"
        digest = hashlib.sha256(str(self.tree).encode()).hexdigest()[:16]
        return f"local_{digest}"

    @property
    def needs_password(self) -> bool:
        """A named FTP user logs in with a password; anonymous and folders need none."""
        return self.kind == "ftp" and bool(self.user)

    @property
    def display(self) -> str:
        if self.kind == "local":
            return str(self.tree)
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        base = "" if self.base == "/" else self.base
        return f"{'ftps' if self.tls else 'ftp'}://{user}{host}:{self.port}{base}"


def parse_source(text: str | os.PathLike[str], *, relative_to: Path | None = None) -> Source:
    """``ftp://[USER@]HOST[:PORT][/BASE]``, ``ftps://...``, or a folder.

    A relative folder is taken relative to ``relative_to`` (the config file's
    folder for ``pull.from``), else to the working directory.
    """
    raw = os.fspath(text)
    if "://" in raw:
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("ftp", "ftps"):
            raise BadInput(
                f"unsupported source {raw!r}",
                hint="use ftp://USER@HOST:PORT, ftps://..., or a folder",
            )
        if parts.password is not None:
            raise BadInput(
                "a password inside the --from URL is refused",
                hint="give it with --password-env VAR (or type it at the prompt)",
            )
        if not parts.hostname:
            raise BadInput(f"no host in {raw!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise BadInput(f"invalid port in {raw!r}") from None
        user = urllib.parse.unquote(parts.username) if parts.username else None
        return Source(
            kind="ftp",
            host=parts.hostname,
            port=port,
            user=user,
            tls=parts.scheme == "ftps",
            base=parts.path or "/",
        )
    path = Path(os.path.expanduser(raw))
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    path = path.absolute()
    if (path / "dist").is_dir() and (path / "models").is_dir():
        path = path / "dist"
    elif (path / "models").is_dir():
        raise NotFound(
            f"the registry at {path} has no dist/ folder",
            hint=f"create it with: regctl --root {path} dist rebuild",
        )
    return Source(kind="local", tree=Path(os.path.realpath(path)))
