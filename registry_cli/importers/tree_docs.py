"""The documents of an old FTP registry tree, read tolerantly (shapes in docs/import.md).

The old system wrote camelCase keys (``createdAt``, ``standardArtifacts``,
``bundleSha256``); regctl's own ``dist/`` writes snake_case. Both are read.
A document that cannot be read at all is :class:`BadInput` (exit 2, nothing
imported); a bundle that does not match what the documents say is
:class:`IntegrityError` (exit 5, that version reported).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.core.names import parse_version
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.formats.mlflow_source import redact
from registry_cli.importers.facts import iso_time, metrics_of, strings_of, tags_of


@dataclass(frozen=True)
class Entry:
    """A version as ``index.json`` or ``LATEST.json`` lists it."""

    label: str
    sha256: str | None
    size: int | None
    created_at: str | None
    status: str


def _pick(doc: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if doc.get(key) is not None:
            return doc[key]
    return None


def label_of(value: Any, where: str) -> str:
    text = str(value).strip()
    try:
        parse_version(text)
    except BadInput:
        raise BadInput(f"{where}: {text!r} is not a version like v0003") from None
    return text


def _entry(doc: Any, where: str) -> Entry:
    if not isinstance(doc, dict) or doc.get("version") is None:
        raise BadInput(f"{where}: a version entry without 'version'")
    bundle: dict[str, Any] = doc["bundle"] if isinstance(doc.get("bundle"), dict) else {}
    sha = _pick(doc, "sha256", "bundleSha256", "bundle_sha256") or bundle.get("sha256")
    size = _pick(doc, "size", "bundleSize", "bundle_size")
    size = size if size is not None else bundle.get("size")
    try:
        created = iso_time(
            _pick(doc, "createdAt", "created_at", "publishedAt", "published_at", "updatedAt")
        )
        return Entry(
            label=label_of(doc["version"], where),
            sha256=str(sha).lower() if sha else None,
            size=int(size) if size is not None else None,
            created_at=created,
            status=str(doc.get("status") or "active").lower(),
        )
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{where}: malformed entry for {doc.get('version')!r} ({exc})") from None


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BadInput(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: not a JSON object")
    return doc


def parse_index(data: bytes, where: str) -> tuple[str | None, list[Entry]]:
    """``(latest label, entries)``; ``versions`` is a list of entries or a mapping."""
    doc = _json(data, where)
    raw = doc.get("versions")
    if isinstance(raw, dict):
        raw = [
            dict(v, version=k) if isinstance(v, dict) else {"version": k} for k, v in raw.items()
        ]
    if not isinstance(raw, list):
        raise BadInput(f"{where}: no 'versions' list")
    entries = [_entry(e, where) for e in raw]
    labels = [parse_version(e.label) for e in entries]
    if len(set(labels)) != len(labels):
        raise BadInput(f"{where}: a version is listed twice")
    latest = doc.get("latest")
    return (label_of(latest, where) if latest else None), entries


def parse_latest(data: bytes, where: str) -> Entry:
    return _entry(_json(data, where), where)


def expected_bundle(entry: Entry, latest: Entry | None) -> Entry:
    """What the bundle must be: the index entry, which LATEST.json must agree with."""
    same = latest is not None and parse_version(latest.label) == parse_version(entry.label)
    sha, size = entry.sha256, entry.size
    if same and latest is not None:
        if sha and latest.sha256 and sha != latest.sha256:
            raise IntegrityError(
                f"{entry.label}: index.json and LATEST.json disagree on the bundle's sha256"
            )
        sha = sha or latest.sha256
        size = size if size is not None else latest.size
    if not sha or size is None:
        raise IntegrityError(
            f"{entry.label}: index.json records no sha256 and size for the bundle; "
            "it cannot be verified"
        )
    return Entry(entry.label, sha, size, entry.created_at, entry.status)


def check_bundle(folder: Path, digests: dict[str, tuple[int, str]], where: str) -> dict[str, Any]:
    """The bundle's manifest (``{}`` if it has none); every file it lists must match."""
    if "manifest.json" not in digests:
        return {}
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes())
    except ValueError as exc:
        raise IntegrityError(f"{where}: the bundle's manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where}: the bundle's manifest.json is not an object")
    files = manifest.get("files")
    if files is None:
        return manifest
    if not isinstance(files, list):
        raise IntegrityError(f"{where}: the bundle's manifest lists no files")
    listed: dict[str, dict[str, Any]] = {}
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise IntegrityError(f"{where}: malformed file entry {f!r} in the manifest")
        path = f["path"] if f["path"].startswith("payload/") else f"payload/{f['path']}"
        listed[path] = f
    present = {p for p in digests if p != "manifest.json"}
    for path in sorted(set(listed) ^ present):
        side = "in the manifest but not in the bundle" if path in listed else "not in the manifest"
        raise IntegrityError(f"{where}: {path} is {side}")
    for path, f in sorted(listed.items()):
        size, digest = digests[path]
        want = str(f.get("sha256") or "").lower()
        if (want and digest != want) or (f.get("size") is not None and size != f["size"]):
            raise IntegrityError(
                f"{where}: {path} (sha256 {digest}, {size} bytes) does not match its manifest"
            )
    return manifest


def manifest_facts(manifest: dict[str, Any], payload: set[str]) -> dict[str, Any]:
    """The facts to keep from an old manifest, in regctl's shapes."""
    out: dict[str, Any] = {}
    for key in ("metrics", "params", "tags"):
        value = manifest.get(key)
        if not isinstance(value, (dict, list)):
            value = {}
        if key == "metrics":
            out[key] = metrics_of(value) if isinstance(value, dict) else {}
        elif key == "tags":
            out[key] = tags_of(value)
        else:
            out[key] = strings_of(value) if isinstance(value, dict) else {}
    description = manifest.get("description")
    out["description"] = str(description) if description else None
    try:
        out["created_at"] = iso_time(_pick(manifest, "createdAt", "created_at", "publishedAt"))
    except (TypeError, ValueError):
        out["created_at"] = None
    by = _pick(manifest, "createdBy", "created_by")
    out["created_by"] = str(by) if by else None
    signature = manifest.get("signature")
    out["signature"] = signature if isinstance(signature, dict) else None
    standard = _pick(manifest, "standardArtifacts", "standard_artifacts")
    out["standard_artifacts"] = {}
    if isinstance(standard, dict):
        for kind, path in standard.items():
            rel = str(path).removeprefix("payload/")
            if rel in payload:
                out["standard_artifacts"][str(kind)] = f"payload/{rel}"
    original = manifest.get("source")
    if not isinstance(original, dict):
        original = {
            k: manifest[k]
            for k in ("sourceType", "trackingUri", "runId", "artifactPath", "localPath")
            if manifest.get(k) is not None
        }
    for key in ("trackingUri", "tracking_uri"):
        if isinstance(original.get(key), str):
            original[key] = redact(original[key])
    out["source"] = original
    return out
