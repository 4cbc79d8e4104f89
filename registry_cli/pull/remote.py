"""What a served tree says about a version, and checks of fetched files against it.

``LATEST.json`` (for ``latest``) and ``index.json`` (for ``vN``) give the
version's bundle sha256 and size; ``manifest.json`` lists every payload file
with its size and sha256. Documents are read with a size cap, so a hostile
server cannot exhaust memory; anything malformed is an :class:`IntegrityError`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.core.documents import ManifestFormatError, validate_manifest
from registry_cli.core.names import format_version, parse_version
from registry_cli.core.served.documents import INDEX_FORMAT, LATEST_KIND, parse_index
from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.pull.transports import Transport

SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
SMALL_LIMIT = 64 << 20  # index.json of a model with very many versions stays far below this


@dataclass(frozen=True)
class RemoteVersion:
    """A version as the served tree announces it: number, bundle sha256/size and,
    in trees that have it, the sha256 of its ``manifest.json``."""

    version: int
    sha256: str
    size: int
    manifest_sha256: str | None = None
    blobs: str | None = None  # the blob folder, relative to the stage/name folder

    def folder(self, stage: str, name: str) -> str:
        return f"{stage}/{name}/versions/{format_version(self.version)}"

    def file_path(self, stage: str, name: str, entry: dict[str, Any]) -> str:
        """Where the served tree holds a payload file: ``versions/vN/<path>``, or
        ``<blobs>/<sha[:2]>/<sha>`` beside LATEST.json/index.json when they say
        ``"blobs"`` (relative to the tree; a leading ``../`` reaches the root above
        a ``dist/`` tree, as on an object-store root)."""
        if not self.blobs:
            return f"{self.folder(stage, name)}/{entry['path']}"
        sha = entry["sha256"]
        return blob_path(f"{stage}/{name}", self.blobs, sha)

    def bundle_path(self, stage: str, name: str) -> str:
        return f"{self.folder(stage, name)}/bundle.tar.gz"


def _manifest_sha256(doc: Any, where: str) -> str | None:
    """The optional ``manifest_sha256`` key of a LATEST.json or index.json entry."""
    value = doc.get("manifest_sha256") if isinstance(doc, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise IntegrityError(f"{where}: manifest_sha256 is not a sha256 ({value!r})")
    return value


def blob_path(doc_dir: str, blobs: str, sha256: str) -> str:
    """``<doc_dir>/<blobs>/<sha[:2]>/<sha>`` normalized; refused when it climbs more
    than one level above the served tree (the registry root of a ``dist/``)."""
    joined = posixpath.normpath(f"{doc_dir}/{blobs}/{sha256[:2]}/{sha256}")
    parts = joined.split("/")
    climbs = 1 if parts[0] == ".." else 0
    if (
        blobs.startswith("/")
        or any(p in ("..", "") or "\\" in p or "\0" in p for p in parts[climbs:])
        or not SHA256_RE.match(sha256)
    ):
        raise IntegrityError(f"hostile served tree: blobs {blobs!r} leaves the tree")
    return joined


def _blobs(doc: Any, where: str) -> str | None:
    """The optional ``blobs`` key of a LATEST.json or index.json entry."""
    value = doc.get("blobs") if isinstance(doc, dict) else None
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 4096 or value.startswith("/"):
        raise IntegrityError(f"{where}: blobs is not a relative folder ({value!r})")
    blob_path(where.rsplit("/", 1)[0], value, "0" * 64)  # refuse a hostile one early
    return value


def read_json(transport: Transport, relpath: str) -> Any:
    """A small JSON document of the served tree; invalid JSON is an IntegrityError."""
    data = transport.read_small(relpath, SMALL_LIMIT)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise IntegrityError(
            f"{relpath} on {transport.description} is not valid JSON ({exc})"
        ) from None


def resolve_version(
    transport: Transport, stage: str, name: str, version: int | None
) -> RemoteVersion:
    """What the served tree says about ``name`` (``version=None``: its LATEST)."""
    where = f"{stage}/{name}"
    if version is None:
        try:
            doc = read_json(transport, f"{where}/LATEST.json")
        except NotFound:
            raise NotFound(
                f"{name} has no LATEST in stage {stage!r} on {transport.description}",
                hint="check the name and --stage, or ask for a version with --version vN",
            ) from None
        if (
            not isinstance(doc, dict)
            or doc.get("kind", LATEST_KIND) != LATEST_KIND
            or doc.get("format_version", INDEX_FORMAT) != INDEX_FORMAT
        ):
            raise IntegrityError(f"{where}/LATEST.json is not a regctl LATEST document")
        try:
            return RemoteVersion(
                parse_version(doc["version"]),
                str(doc["sha256"]),
                int(doc["size"]),
                _manifest_sha256(doc, f"{where}/LATEST.json"),
                _blobs(doc, f"{where}/LATEST.json"),
            )
        except (KeyError, TypeError, ValueError, BadInput) as exc:
            raise IntegrityError(f"{where}/LATEST.json is malformed ({exc})") from None
    try:
        data = transport.read_small(f"{where}/index.json", SMALL_LIMIT)
    except NotFound:
        raise NotFound(
            f"no model {name!r} in stage {stage!r} on {transport.description}",
            hint="check the name and --stage",
        ) from None
    doc, entries = parse_index(data, f"{where}/index.json on {transport.description}")
    raw_entries = {
        str(e.get("version")): e for e in doc.get("versions") or [] if isinstance(e, dict)
    }
    for entry in entries:
        if entry.version == version:
            vname = format_version(version)
            return RemoteVersion(
                entry.version,
                entry.sha256,
                entry.size,
                getattr(entry, "manifest_sha256", None)
                or _manifest_sha256(raw_entries.get(vname), f"{where}/index.json {vname}"),
                _blobs(raw_entries.get(vname), f"{where}/index.json"),
            )
    raise NotFound(
        f"{name}:{format_version(version)} is not in stage {stage!r} on {transport.description}",
        hint=f"its versions: {', '.join(format_version(e.version) for e in entries)}"
        if entries
        else None,
    )


def check_against_manifest(
    vdir: Path, digests: dict[str, tuple[int, str]], name: str, vname: str
) -> dict[str, Any]:
    """Every unpacked file is listed in ``manifest.json`` with its size and sha256, and back."""
    if "manifest.json" not in digests:
        raise IntegrityError("corrupt bundle: it has no manifest.json")
    try:
        with open(vdir / "manifest.json", "rb") as fh:
            manifest = validate_manifest(json.load(fh), "manifest.json in the bundle")
    except (ValueError, ManifestFormatError) as exc:
        raise IntegrityError(f"corrupt bundle: {exc}") from None
    if manifest["name"] != name or manifest["version"] != vname:
        raise IntegrityError(
            f"the bundle holds {manifest['name']}:{manifest['version']}, not {name}:{vname}"
        )
    listed = {f["path"]: f for f in manifest["files"]}
    present = {p for p in digests if p != "manifest.json"}
    for path in sorted(set(listed) - present):
        raise IntegrityError(f"corrupt bundle: {path} is in the manifest but not in the bundle")
    for path in sorted(present - set(listed)):
        raise IntegrityError(f"corrupt bundle: {path} is not in the manifest")
    for path, f in sorted(listed.items()):
        size, digest = digests[path]
        if size != f["size"] or digest != f["sha256"]:
            raise IntegrityError(
                f"{path}: sha256 {digest} ({size} bytes) does not match the "
                f"manifest ({f['sha256']}, {f['size']} bytes)"
            )
    return manifest


def check_manifest_bytes(data: bytes, remote: RemoteVersion, name: str) -> dict[str, Any]:
    """The fetched ``manifest.json``, authenticated by ``remote.manifest_sha256`` and
    checked: this name and version, and every file a safe path under ``payload/``."""
    vname = format_version(remote.version)
    digest = hashlib.sha256(data).hexdigest()
    if digest != remote.manifest_sha256:
        raise IntegrityError(
            f"manifest.json of {name}:{vname}: sha256 {digest} != {remote.manifest_sha256} "
            "recorded in the served tree",
            hint="the served tree is damaged or tampered with; run `regctl verify` on the server",
        )
    try:
        manifest = validate_manifest(json.loads(data), f"manifest.json of {name}:{vname}")
    except (ValueError, ManifestFormatError) as exc:
        raise IntegrityError(f"corrupt manifest: {exc}") from None
    if manifest["name"] != name or manifest["version"] != vname:
        raise IntegrityError(
            f"the manifest is of {manifest['name']}:{manifest['version']}, not {name}:{vname}"
        )
    seen: set[str] = set()
    for f in manifest["files"]:
        path = f["path"]
        parts = path.split("/") if isinstance(path, str) else []
        if (
            len(parts) < 2
            or parts[0] != "payload"
            or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts)
            or ":" in parts[1]
        ):
            raise IntegrityError(f"hostile manifest: {path!r} is not a path under payload/")
        if path in seen:
            raise IntegrityError(f"hostile manifest: {path!r} is listed twice")
        seen.add(path)
        if not isinstance(f["size"], int) or f["size"] < 0 or not SHA256_RE.match(f["sha256"]):
            raise IntegrityError(f"corrupt manifest: bad size or sha256 for {path!r}")
    for path in seen:
        parts = path.split("/")
        if any("/".join(parts[:i]) in seen for i in range(2, len(parts))):
            raise IntegrityError(f"hostile manifest: {path!r} lies inside another listed file")
    return manifest
