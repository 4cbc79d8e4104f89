"""The immutable facts of a version: ``manifest.json`` and ``version.yaml``.

Both carry the same facts; ``manifest.json`` is what clients and fast
readers use (JSON parses ~50x faster than YAML), ``version.yaml`` is for
people browsing the tree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = 1
MANIFEST_KIND = "regctl/manifest"

_PROGRAM_RE = re.compile(r"(\.pt2$|torchscript|\.jit\.pt$|\.ts$)", re.IGNORECASE)
_WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".onnx")


class ManifestFormatError(ValueError):
    pass


def preferred_weight(paths: list[str]) -> str:
    """Pick the file a client should load (see docs/layout.md#a-version).

    ``model-standard.pt`` anywhere first, then a runnable program (``.pt2`` or
    TorchScript), then the first ``.pt/.pth/.safetensors/.onnx``, else ``payload``.
    """
    ordered = sorted(paths)
    for p in ordered:
        if p.rsplit("/", 1)[-1] == "model-standard.pt":
            return p
    for p in ordered:
        if _PROGRAM_RE.search(p.rsplit("/", 1)[-1]):
            return p
    for p in ordered:
        if p.lower().endswith(_WEIGHT_SUFFIXES):
            return p
    return "payload"


def build_manifest(
    *,
    name: str,
    version: int,
    created_at: str,
    created_by: str,
    source: dict[str, Any],
    files: list[dict[str, Any]],
    metrics: dict[str, float],
    params: dict[str, str],
    tags: dict[str, str],
    description: str | None,
    derived_from: str | None,
    standard_artifacts: dict[str, str],
    signature: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format_version": MANIFEST_FORMAT,
        "kind": MANIFEST_KIND,
        "name": name,
        "version": f"v{version}",
        "created_at": created_at,
        "created_by": created_by,
        "source": source,
        "files": files,
        "metrics": metrics,
        "params": params,
        "tags": tags,
        "description": description,
        "derived_from": derived_from,
        "standard_artifacts": standard_artifacts,
        "preferred_weight": preferred_weight([f["path"] for f in files]),
        "signature": signature,
    }
    if extra:
        doc.update(extra)
    return doc


def manifest_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def validate_manifest(doc: Any, where: str) -> dict[str, Any]:
    """Check the shape of a manifest read from disk or from a server."""
    if not isinstance(doc, dict):
        raise ManifestFormatError(f"{where}: manifest is not a JSON object")
    if doc.get("kind") != MANIFEST_KIND or doc.get("format_version") != MANIFEST_FORMAT:
        raise ManifestFormatError(
            f"{where}: unsupported manifest (kind {doc.get('kind')!r}, "
            f"format_version {doc.get('format_version')!r})"
        )
    files = doc.get("files")
    if not isinstance(files, list):
        raise ManifestFormatError(f"{where}: 'files' is not a list")
    for f in files:
        if (
            not isinstance(f, dict)
            or not isinstance(f.get("path"), str)
            or not isinstance(f.get("size"), int)
            or not isinstance(f.get("sha256"), str)
            or not f["path"].startswith("payload/")
        ):
            raise ManifestFormatError(f"{where}: malformed file entry {f!r}")
    for key in ("name", "version", "created_at", "preferred_weight"):
        if not isinstance(doc.get(key), str):
            raise ManifestFormatError(f"{where}: missing {key!r}")
    return doc


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest from a local folder (a pulled or cached version)."""
    with open(path, "rb") as fh:
        return parse_manifest(fh.read(), str(path))


def version_yaml(doc: dict[str, Any], bundle: dict[str, Any]) -> str:
    import yaml

    facts = dict(doc)
    facts["kind"] = VERSION_KIND
    facts["bundle"] = bundle
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(facts, Dumper=dumper, sort_keys=False, allow_unicode=True)


VERSION_KIND = "regctl/version"


def parse_version_yaml(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check ``version.yaml`` (the manifest's facts plus the bundle's)."""
    import yaml

    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ManifestFormatError(f"{where}: unreadable: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != VERSION_KIND
        or doc.get("format_version") != MANIFEST_FORMAT
    ):
        raise ManifestFormatError(f"{where}: not a regctl version document (format_version 1)")
    bundle = doc.get("bundle")
    if (
        not isinstance(bundle, dict)
        or not isinstance(bundle.get("sha256"), str)
        or not isinstance(bundle.get("size"), int)
    ):
        raise ManifestFormatError(f"{where}: no bundle facts")
    if not isinstance(doc.get("created_at"), str):
        raise ManifestFormatError(f"{where}: missing 'created_at'")
    return doc


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestFormatError(f"{where}: not valid JSON ({exc})") from None
    return validate_manifest(doc, where)
