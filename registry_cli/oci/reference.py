"""``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``: parsing and checking (see docs/oci.md)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from registry_cli.errors import BadInput

_REPO_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z"
)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class OciRef:
    """``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``."""

    host: str
    port: int | None
    repo: str
    tag: str | None = None
    digest: str | None = None

    @property
    def registry(self) -> str:
        return self.host + (f":{self.port}" if self.port else "")

    @property
    def display(self) -> str:
        ref = f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
        return f"oci://{self.registry}/{self.repo}{ref}"

    def with_repo(self, repo: str) -> OciRef:
        return OciRef(self.host, self.port, repo)


def check_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise BadInput(f"invalid OCI tag {tag!r}", hint="letters, digits, _ . - (up to 128)")
    return tag


def parse_ref(text: str, *, reference: bool = True) -> OciRef:
    """Parse an ``oci://`` URL; ``reference=False`` refuses a ``:TAG``/``@DIGEST``."""
    if not text.startswith("oci://"):
        raise BadInput(f"not an oci:// URL: {text!r}", hint="oci://HOST[:PORT]/REPO")
    parts = urllib.parse.urlsplit("//" + text[len("oci://") :])
    if parts.password is not None or parts.username is not None:
        raise BadInput(
            "credentials inside an oci:// URL are refused",
            hint="use --username U --password-env VAR, or the Docker config (docker login)",
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise BadInput(f"malformed oci:// URL: {text!r}", hint="oci://HOST[:PORT]/REPO")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"invalid port in {text!r}") from None
    path = parts.path.strip("/")
    tag = digest = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise BadInput(f"invalid digest in {text!r}", hint="@sha256:<64 hex digits>")
    elif ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
        check_tag(tag)
    if not _REPO_RE.match(path):
        raise BadInput(
            f"invalid repository {path!r} in {text!r}",
            hint="lower-case letters, digits and . _ - separated by /",
        )
    if (tag or digest) and not reference:
        raise BadInput(f"a tag or digest is not expected here: {text!r}")
    return OciRef(parts.hostname.lower(), port, path, tag, digest)
