"""OCI image layouts on disk (``export --oci-layout DIR``, ``import oci-layout:DIR``;
see docs/oci.md#air-gaps).

    DIR/oci-layout          {"imageLayoutVersion": "1.0.0"}
    DIR/index.json          one descriptor per tag (ref.name), annotated with what moves
    DIR/blobs/sha256/<hex>  payload files (hard links of the root's blobs where the
                            filesystem allows), config blobs, manifests, signatures

Each index entry's ``org.opencontainers.image.ref.name`` is the tag (``v3``,
``champion``, ``release``, ``sha256-<hex>.sig``) while the layout holds one model,
``NAME:TAG`` once it holds several. Blobs are written under a temporary name and
renamed, ``index.json`` last (temp + rename): a killed export leaves at most unused
blobs, never an entry without its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.oci import catalog, mapping

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry

LAYOUT_FILE = "oci-layout"
LAYOUT_DOC = {"imageLayoutVersion": "1.0.0"}
INDEX_FILE = "index.json"
BLOBS = "blobs/sha256"
CHUNK = 1 << 20


@dataclass
class ExportReport:
    layout: Path
    manifests: list[dict[str, Any]] = field(default_factory=list)
    linked: int = 0  # blobs that are hard links of the root's files
    copied: int = 0
    present: int = 0  # blobs the layout already held
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": str(self.layout),
            "manifests": self.manifests,
            "blobs_linked": self.linked,
            "blobs_copied": self.copied,
            "blobs_present": self.present,
            "bytes": self.bytes,
        }


def blob_path(folder: Path, digest: str) -> Path:
    return folder / BLOBS / digest.split(":", 1)[1]


def _tmp(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.tmp-{os.getpid()}")


def _put_bytes(folder: Path, data: bytes) -> str:
    digest = mapping.digest_of(data)
    dest = blob_path(folder, digest)
    if not (dest.is_file() and dest.stat().st_size == len(data)):
        tmp = _tmp(dest)
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    return digest


def _copy_verified(src: BinaryIO, tmp: Path, layer: mapping.Layer, where: str) -> None:
    digest = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != layer.sha256 or size != layer.size:
        tmp.unlink()
        raise IntegrityError(
            f"{where} does not match its manifest (sha256 {digest.hexdigest()})",
            hint="run: regctl verify",
        )


def _put_layer(
    reg: ModelRegistry, folder: Path, name: str, number: int, layer: mapping.Layer
) -> str:
    """``"present"``, ``"linked"`` or ``"copied"``: a payload file into the layout."""
    from registry_cli.storage.fs_store import FsStore

    dest = blob_path(folder, layer.digest)
    if dest.is_file() and dest.stat().st_size == layer.size:
        return "present"
    key = catalog.blob_key(reg, name, number, layer)
    tmp = _tmp(dest)
    tmp.unlink(missing_ok=True)
    how = "copied"
    try:
        if isinstance(reg.store, FsStore):
            src = reg.store.local_path(key)
            try:
                os.link(src, tmp)
                how = "linked"
            except OSError:
                shutil.copyfile(src, tmp)
        else:
            with reg.store.open(key) as stream:
                _copy_verified(stream, tmp, layer, f"{reg.store.location}/{key}")
        if how == "copied":
            os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return how


def _existing_entries(folder: Path) -> list[dict[str, Any]]:
    """The index entries of a layout already at ``folder`` (none when it is new or empty)."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder")
    if not (folder / LAYOUT_FILE).is_file():
        if any(folder.iterdir()):
            raise BadInput(
                f"{folder} is neither empty nor an OCI image layout",
                hint="name a new or empty folder, or an earlier export",
            )
        return []
    return list(_read_index(folder).get("manifests", []))


def _ref_names(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Name each entry by its tag, prefixed with the model once several share a layout."""
    models = {(e.get("annotations") or {}).get(mapping.MODEL) for e in entries}
    models.discard(None)
    out = []
    for e in entries:
        notes = dict(e.get("annotations") or {})
        model, tag = notes.get(mapping.MODEL), notes.get(mapping.TAG)
        if model is not None and tag is not None:
            notes[mapping.REF_NAME] = f"{model}:{tag}" if len(models) > 1 else tag
        out.append({**e, "annotations": dict(sorted(notes.items()))})
    return out


def export(reg: ModelRegistry, refs: list[str], folder: Path) -> ExportReport:
    """Write each version of ``refs`` (with its signatures and tags) into the layout at
    ``folder``, created or added to. Every reference is resolved before anything is
    written."""
    infos = [reg.get(ref, with_bundle=False) for ref in refs]
    entries = _existing_entries(folder)
    report = ExportReport(folder)
    (folder / BLOBS).mkdir(parents=True, exist_ok=True)
    if not (folder / LAYOUT_FILE).is_file():
        _write_doc(folder / LAYOUT_FILE, LAYOUT_DOC)
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for info in infos:
        state = reg.model_state(info.name)
        item = catalog.entry(reg, state, info.version)
        art = item.artifact
        for layer in art.layers:
            how = _put_layer(reg, folder, info.name, info.version, layer)
            setattr(report, how, getattr(report, how) + 1)
            report.bytes += layer.size if how != "present" else 0
        _put_bytes(folder, art.config)
        _put_bytes(folder, art.manifest)
        base = item.annotations()
        tags = item.tags
        for tag in tags:
            fresh[(info.name, tag)] = art.descriptor({**base, mapping.TAG: tag})
        sigs = catalog.signatures(reg, info.name, info.version)
        if sigs:
            sig = mapping.signature_artifact(art, sigs)
            for _signer, data in sig.blobs:
                _put_bytes(folder, data)
            _put_bytes(folder, mapping.EMPTY_BLOB)
            _put_bytes(folder, sig.manifest)
            tag = mapping.signature_tag(art.digest)
            fresh[(info.name, tag)] = {
                "mediaType": mapping.MANIFEST_MEDIA_TYPE,
                "digest": sig.digest,
                "size": len(sig.manifest),
                "artifactType": mapping.SIGNATURE_ARTIFACT_TYPE,
                "annotations": {mapping.MODEL: info.name, mapping.TAG: tag},
            }
        report.manifests.append(
            {
                "name": info.name,
                "version": info.vname,
                "digest": art.digest,
                "tags": tags,
                "signatures": [s for s, _d in sigs],
            }
        )
    kept = []
    for e in entries:
        notes = e.get("annotations") or {}
        if (notes.get(mapping.MODEL), notes.get(mapping.TAG)) not in fresh:
            kept.append(e)
    merged = _ref_names(kept + list(fresh.values()))
    _write_doc(
        folder / INDEX_FILE,
        {"schemaVersion": 2, "mediaType": mapping.INDEX_MEDIA_TYPE, "manifests": merged},
    )
    return report


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ reading
def _read_index(folder: Path) -> dict[str, Any]:
    where = folder / LAYOUT_FILE
    try:
        layout_doc = json.loads(where.read_bytes())
        index = json.loads((folder / INDEX_FILE).read_bytes())
    except FileNotFoundError as exc:
        raise BadInput(f"{folder} is not an OCI image layout ({exc.filename} is missing)") from None
    except (UnicodeDecodeError, ValueError):
        raise BadInput(f"{folder}: oci-layout or index.json is not JSON") from None
    if not isinstance(layout_doc, dict) or layout_doc.get("imageLayoutVersion") != "1.0.0":
        raise BadInput(f"{where}: not an OCI image layout 1.0.0")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise BadInput(f"{folder / INDEX_FILE}: no 'manifests' list")
    if not all(isinstance(m, dict) for m in index["manifests"]):
        raise BadInput(f"{folder / INDEX_FILE}: a manifest entry is not an object")
    return index


@dataclass
class LayoutVersion:
    """One model version found in a layout: its artifact once its manifest and config
    check out (``problem`` otherwise), and what its index entries say moves."""

    model: str
    version: str
    digest: str
    annotations: dict[str, str]
    artifact: mapping.Artifact | None = None
    problem: str | None = None
    signatures: list[tuple[str, str, int]] = field(default_factory=list)  # signer, digest, size

    def listed(self, key: str) -> list[str]:
        return mapping.listed(self.annotations, key)


def _blob(folder: Path, digest: str) -> bytes | None:
    path = blob_path(folder, digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data if mapping.digest_of(data) == digest else None


def read(folder: Path) -> list[LayoutVersion]:
    """Every model version of the layout, each manifest and config checked against its
    digest. A foreign media type is :class:`BadInput` (exit 2: nothing is imported)."""
    if not folder.is_dir():
        raise NotFound(f"no OCI image layout at {folder}")
    index = _read_index(folder)
    groups: dict[str, dict[str, str]] = {}
    for e in index["manifests"]:
        digest = mapping._digest(e, f"{folder / INDEX_FILE}")
        notes = {k: v for k, v in (e.get("annotations") or {}).items() if isinstance(v, str)}
        if e.get("artifactType") == mapping.SIGNATURE_ARTIFACT_TYPE:
            notes["artifactType"] = mapping.SIGNATURE_ARTIFACT_TYPE
        merged = groups.setdefault(digest, {})
        for k, v in notes.items():
            if k != mapping.REF_NAME:
                merged.setdefault(k, v)
    found: list[LayoutVersion] = []
    signatures: dict[str, list[tuple[str, str, int]]] = {}
    sig_problems: dict[str, str] = {}  # subject digest -> why its signatures are unreadable
    for digest, notes in groups.items():
        where = f"{folder}: manifest {digest}"
        data = _blob(folder, digest)
        if data is None:
            why = f"{where} is missing or does not match its digest"
            tag = notes.get(mapping.TAG, "")
            if notes.get("artifactType") == mapping.SIGNATURE_ARTIFACT_TYPE and tag.endswith(
                ".sig"
            ):
                sig_problems[tag[: -len(".sig")].replace("-", ":", 1)] = f"signatures: {why}"
            elif notes.get(mapping.MODEL) and notes.get(mapping.VERSION):
                model, version = notes[mapping.MODEL], notes[mapping.VERSION]
                found.append(LayoutVersion(model, version, digest, notes, problem=why))
            else:
                raise IntegrityError(why, hint="the layout was changed after export")
            continue
        doc = mapping._json(data, where)
        if doc.get("artifactType") == mapping.SIGNATURE_ARTIFACT_TYPE:
            subject = (doc.get("subject") or {}).get("digest")
            signatures.setdefault(str(subject), []).extend(mapping.parse_signatures(data, where))
            continue
        mapping.parse_manifest(data, where)
        annotations = doc.get("annotations") or {}
        named = notes.get(mapping.MODEL) or annotations.get(mapping.MODEL)
        label = notes.get(mapping.VERSION) or annotations.get(mapping.VERSION)
        item = LayoutVersion(str(named), str(label), digest, notes)
        config = _blob(folder, doc["config"]["digest"])
        if config is None:
            item.problem = f"{where}: its config blob is missing or does not match its digest"
        else:
            try:
                item.artifact = mapping.facts_of(data, config, where)
            except IntegrityError as exc:
                item.problem = exc.message
            else:
                item.model, item.version = item.artifact.name, item.artifact.version
        found.append(item)
    for item in found:
        item.signatures = signatures.get(item.digest, [])
        if item.problem is None and item.digest in sig_problems:
            item.problem = sig_problems[item.digest]
    return found


def verify_payload(folder: Path, item: LayoutVersion) -> None:
    """Hash every layer and signature blob of ``item``; :class:`IntegrityError` names
    the first that is missing or differs."""
    if item.problem is not None or item.artifact is None:
        raise IntegrityError(item.problem or f"{item.model}:{item.version} is unreadable")
    for layer in item.artifact.layers:
        path = blob_path(folder, layer.digest)
        _check_file(path, layer.sha256, layer.size, f"{item.model}:{item.version} {layer.path}")
    for signer, digest, size in item.signatures:
        path = blob_path(folder, digest)
        _check_file(
            path, digest.split(":", 1)[1], size, f"{item.model}:{item.version} {signer}.sig"
        )


def _check_file(path: Path, sha: str, size: int, what: str) -> None:
    digest = hashlib.sha256()
    got = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                got += len(chunk)
    except FileNotFoundError:
        raise IntegrityError(f"{what}: blob {path.name} is missing from the layout") from None
    if got != size or digest.hexdigest() != sha:
        raise IntegrityError(
            f"{what}: blob sha256:{path.name} does not match its digest "
            f"(sha256 {digest.hexdigest()}, {got} bytes)",
            hint="the layout was changed after export; export it again",
        )
