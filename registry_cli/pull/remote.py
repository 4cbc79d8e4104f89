"""What a served tree says about a version, and checks of fetched files against it.

``LATEST.json`` (for ``latest``) and ``index.json`` (for ``vN``) give the
version's bundle sha256 and size; ``manifest.json`` lists every payload file
with its size and sha256. Documents are read with a size cap, so a hostile
server cannot exhaust memory; anything malformed is an :class:`IntegrityError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.core.documents import ManifestFormatError, validate_manifest
from registry_cli.core.names import format_version, parse_version
from registry_cli.core.served.documents import INDEX_FORMAT, LATEST_KIND, parse_index
from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.pull.transports import Transport

SMALL_LIMIT = 64 << 20  # index.json of a model with very many versions stays far below this


@dataclass(frozen=True)
class RemoteVersion:
    """A version as the served tree announces it: number and bundle sha256/size."""

    version: int
    sha256: str
    size: int

    def bundle_path(self, stage: str, name: str) -> str:
        return f"{stage}/{name}/versions/{format_version(self.version)}/bundle.tar.gz"


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
                parse_version(doc["version"]), str(doc["sha256"]), int(doc["size"])
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
    _doc, entries = parse_index(data, f"{where}/index.json on {transport.description}")
    for entry in entries:
        if entry.version == version:
            return RemoteVersion(entry.version, entry.sha256, entry.size)
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
