"""Where ``pull`` reads from: ``--from ftp://...``, ``ftps://...``, ``http(s)://...``
or a folder.

A folder may be a registry root (its ``dist/`` is used) or a served tree. An
``http(s)://`` URL is a ``regctl serve-registry`` root (its ``/dist/``) or any
static web server of a served tree. A password inside a URL is refused: it
would end up in shell history and ``ps``. ``s3://BUCKET/PREFIX``
reads a registry root or served tree in a bucket (see docs/object-storage.md).
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from registry_cli.errors import BadInput, NotFound

DEFAULT_PORT = 2121
HTTP_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Source:
    """An FTP(S) server or a served tree (or registry root) on disk."""

    kind: str  # "ftp" | "http" | "local" | "s3" (host: the bucket, base: the tree's prefix) | "oci"
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
        if self.kind == "http":
            base = hashlib.sha256(self.base.encode()).hexdigest()[:8] if self.base != "/" else ""
            return f"http_{self.host.replace(':', '-')}_{self.port}" + (f"_{base}" if base else "")
        if self.kind == "s3":
            return f"s3_{self.host}_{hashlib.sha256(self.base.encode()).hexdigest()[:8]}"
        if self.kind == "oci":  # base: REPO[:TAG|@DIGEST] (pull/oci.py)
            repo = self.base.split("@", 1)[0].rsplit(":", 1)[0] if ":" in self.base else self.base
            return (
                f"oci_{self.host.replace(':', '-')}_{self.port}_"
                + hashlib.sha256(repo.encode()).hexdigest()[:8]
            )
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
        if self.kind == "s3":
            return f"s3://{self.host}/{self.base}"
        if self.kind == "oci":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"oci://{host}{f':{self.port}' if self.port else ''}/{self.base}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        base = "" if self.base == "/" else self.base
        if self.kind == "http":
            return f"{'https' if self.tls else 'http'}://{user}{host}:{self.port}{base}"
        return f"{'ftps' if self.tls else 'ftp'}://{user}{host}:{self.port}{base}"


def parse_source(text: str | os.PathLike[str], *, relative_to: Path | None = None) -> Source:
    """``ftp://[USER@]HOST[:PORT][/BASE]``, ``ftps://...``, or a folder.

    A relative folder is taken relative to ``relative_to`` (the config file's
    folder for ``pull.from``), else to the working directory.
    """
    raw = os.fspath(text)
    if "://" in raw:
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme == "s3":  # a root or served tree in a bucket (docs/object-storage.md)
            from registry_cli.storage.s3_client import parse_s3_url

            bucket, prefix = parse_s3_url(raw)
            if prefix != "dist" and not prefix.endswith("/dist"):  # a registry root: its dist/
                prefix = f"{prefix}/dist" if prefix else "dist"
            return Source(kind="s3", host=bucket, port=0, base=prefix)
        if parts.scheme == "oci":  # an OCI registry: REPO[:TAG|@DIGEST] (docs/oci.md#pull)
            from registry_cli.oci.reference import parse_ref

            ref = parse_ref(raw)
            tail = f"@{ref.digest}" if ref.digest else f":{ref.tag}" if ref.tag else ""
            return Source(
                kind="oci", host=ref.host, port=ref.port or 0, tls=True, base=ref.repo + tail
            )
        if parts.scheme not in ("ftp", "ftps", "http", "https"):
            raise BadInput(
                f"unsupported source {raw!r}",
                hint="use ftp://USER@HOST:PORT, ftps://..., https://HOST/..., or a folder",
            )
        if parts.password is not None:
            raise BadInput(
                "a password inside the --from URL is refused",
                hint="give it with --password-env VAR (or type it at the prompt)"
                if parts.scheme.startswith("ftp")
                else "give a token with --token-env VAR or $REGCTL_TOKEN",
            )
        if not parts.hostname:
            raise BadInput(f"no host in {raw!r}")
        try:
            port = parts.port or HTTP_PORTS.get(parts.scheme, DEFAULT_PORT)
        except ValueError:
            raise BadInput(f"invalid port in {raw!r}") from None
        user = urllib.parse.unquote(parts.username) if parts.username else None
        if parts.scheme.startswith("http"):
            if user:
                raise BadInput(
                    f"a user name in an {parts.scheme}:// URL is not used: {raw!r}",
                    hint="authenticate with a token: --token-env VAR or $REGCTL_TOKEN",
                )
            if parts.query or parts.fragment:
                raise BadInput(f"a query or fragment in --from is not supported: {raw!r}")
            return Source(
                kind="http",
                host=parts.hostname,
                port=port,
                tls=parts.scheme == "https",
                base="/" + parts.path.strip("/") if parts.path.strip("/") else "/",
            )
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
