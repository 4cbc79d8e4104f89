"""One version <-> one OCI image manifest (see docs/oci.md#the-mapping).

Only what never changes goes into the bytes: the version's ``manifest.json`` facts
(embedded whole in the config blob, so an import reproduces them exactly) and one
layer per payload file with the manifest's own sha256 (nothing is re-hashed). The
same version therefore yields the same manifest digest wherever it is written.

Stage membership and aliases move, so they are never part of those bytes: they are
tags (``vN``, each alias, each stage whose LATEST it is) and the annotations of the
descriptor that points at the manifest (:func:`descriptor_annotations`, written in
an image layout's ``index.json``). Signatures are added after publish, so they
travel as a second artifact whose ``subject`` is the model manifest, tagged
``sha256-<hex>.sig`` (:func:`signature_artifact`).

The JSON is canonical: fixed key order, no insignificant whitespace, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from registry_cli.errors import BadInput, IntegrityError
from registry_cli.oci.media_types import (
    CODE,
    DATASET,
    DOC,
    LAYER_MEDIA_TYPES,
    WEIGHT,
    WEIGHT_CONFIG,
    media_type_of,
)

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"

SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.regctl.signatures.v1"
SIGNATURE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"

TITLE = "org.opencontainers.image.title"
VERSION = "org.opencontainers.image.version"
CREATED = "org.opencontainers.image.created"
LICENSES = "org.opencontainers.image.licenses"
REF_NAME = "org.opencontainers.image.ref.name"
CNCF_FILEPATH = "org.cncf.model.filepath"
MODEL = "io.regctl.model"
STAGES = "io.regctl.stages"  # descriptor annotations only: they move
LATEST_OF = "io.regctl.latest"
ALIASES = "io.regctl.aliases"
STATUS = "io.regctl.status"
TAG = "io.regctl.tag"  # the tag a layout's index entry stands for (its ref.name may be prefixed)
SIGNER = "io.regctl.signer"

CONFIG_FORMAT = 1
__all__ = ["CODE", "DATASET", "DOC", "WEIGHT", "WEIGHT_CONFIG", "media_type_of"]


def canonical(doc: Any) -> bytes:
    """JSON bytes that depend on ``doc`` alone (its key order as built, no spaces)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    """One payload file as a layer: ``path`` as in the manifest (``payload/...``)."""

    path: str
    sha256: str
    size: int
    media_type: str

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"

    @property
    def title(self) -> str:
        return self.path[len("payload/") :]


@dataclass(frozen=True)
class Artifact:
    """A version as OCI bytes: the config blob, the manifest, and its layers."""

    name: str
    version: str  # "v3"
    config: bytes
    manifest: bytes
    layers: tuple[Layer, ...]
    facts: dict[str, Any]  # the version's manifest.json document

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)

    @property
    def size(self) -> int:
        return len(self.manifest)

    def descriptor(self, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": self.digest,
            "size": self.size,
            "artifactType": ARTIFACT_TYPE,
        }
        if annotations:
            out["annotations"] = dict(sorted(annotations.items()))
        return out


def _config_doc(facts: dict[str, Any], layers: list[Layer]) -> dict[str, Any]:
    """The CNCF model config, plus the version's facts whole under ``regctl``."""
    descriptor: dict[str, Any] = {
        "createdAt": facts.get("created_at"),
        "authors": [facts["created_by"]] if facts.get("created_by") else [],
        "name": facts["name"],
        "version": facts["version"],
    }
    if facts.get("description"):
        descriptor["description"] = facts["description"]
    if facts.get("license"):
        descriptor["licenses"] = [facts["license"]]
    weight = facts.get("preferred_weight") or ""
    fmt = weight.rsplit(".", 1)[-1].lower() if "." in weight.rsplit("/", 1)[-1] else ""
    config: dict[str, Any] = {"format": {"pt": "pytorch", "pth": "pytorch"}.get(fmt, fmt)}
    return {
        "descriptor": descriptor,
        "config": config if fmt else {},
        "modelfs": {"type": "layers", "diffIds": [layer.digest for layer in layers]},
        "regctl": {"format_version": CONFIG_FORMAT, "manifest": facts},
    }


def artifact_of(facts: dict[str, Any]) -> Artifact:
    """The OCI artifact of a version from its ``manifest.json`` document."""
    name, version = facts.get("name"), facts.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise BadInput("a version's manifest without its name and version")
    layers = [
        Layer(f["path"], f["sha256"], int(f["size"]), media_type_of(f["path"]))
        for f in facts.get("files", [])
    ]
    config = canonical(_config_doc(facts, layers))
    annotations = {CREATED: str(facts.get("created_at") or ""), MODEL: name, VERSION: version}
    if facts.get("license"):
        annotations[LICENSES] = str(facts["license"])
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": layer.media_type,
                "digest": layer.digest,
                "size": layer.size,
                "annotations": {CNCF_FILEPATH: layer.title, TITLE: layer.title},
            }
            for layer in layers
        ],
        "annotations": dict(sorted(annotations.items())),
    }
    return Artifact(name, version, config, canonical(doc), tuple(layers), facts)


def descriptor_annotations(
    artifact: Artifact,
    stages: list[str],
    latest_of: list[str],
    aliases: list[str],
    *,
    archived: bool = False,
) -> dict[str, str]:
    """What moves, for the descriptor pointing at the manifest (never in its bytes)."""
    out = {MODEL: artifact.name, VERSION: artifact.version}
    if archived:
        out[STATUS] = "archived"
    if stages:
        out[STAGES] = ",".join(stages)
    if latest_of:
        out[LATEST_OF] = ",".join(latest_of)
    if aliases:
        out[ALIASES] = ",".join(sorted(aliases))
    return out


def listed(annotations: dict[str, Any], key: str) -> list[str]:
    value = annotations.get(key)
    return [v for v in value.split(",") if v] if isinstance(value, str) else []


def tags_of(version: str, stages_latest: list[str], aliases: list[str]) -> list[str]:
    """The tags of a version: ``vN``, each alias, each stage whose LATEST it is."""
    return [version, *sorted(aliases), *stages_latest]


# ------------------------------------------------------------------ signatures
def signature_tag(subject_digest: str) -> str:
    """``sha256-<hex>.sig``: the tag that carries a manifest's signatures."""
    return subject_digest.replace(":", "-", 1) + ".sig"


@dataclass(frozen=True)
class SignatureArtifact:
    manifest: bytes
    blobs: tuple[tuple[str, bytes], ...]  # (signer, signature bytes), as the layers

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def signature_artifact(subject: Artifact, signatures: list[tuple[str, bytes]]) -> SignatureArtifact:
    """Every signature of a version as one artifact: one layer per signer, ``subject``
    the model manifest (a registry with the referrers API lists it there too)."""
    ordered = sorted(signatures)
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": digest_of(EMPTY_BLOB),
            "size": len(EMPTY_BLOB),
        },
        "layers": [
            {
                "mediaType": SIGNATURE_MEDIA_TYPE,
                "digest": digest_of(data),
                "size": len(data),
                "annotations": {SIGNER: signer, TITLE: f"signatures/{signer}.sig"},
            }
            for signer, data in ordered
        ],
        "subject": {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {MODEL: subject.name, VERSION: subject.version},
    }
    return SignatureArtifact(canonical(doc), tuple(ordered))


def parse_signatures(data: bytes, where: str) -> list[tuple[str, str, int]]:
    """``(signer, digest, size)`` of each layer of a signature artifact."""
    doc = _json(data, where)
    if doc.get("artifactType") != SIGNATURE_ARTIFACT_TYPE:
        raise BadInput(f"{where}: not a regctl signature artifact")
    out = []
    for layer in _list(doc, "layers", where):
        signer = (layer.get("annotations") or {}).get(SIGNER)
        if layer.get("mediaType") != SIGNATURE_MEDIA_TYPE or not isinstance(signer, str):
            raise BadInput(f"{where}: a signature layer without its signer")
        out.append((signer, _digest(layer, where), _size(layer, where)))
    return out


# ------------------------------------------------------------------ reading back
def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """An image manifest that is a regctl model, else :class:`BadInput` (exit 2)
    naming the foreign media type."""
    doc = _json(data, where)
    media = doc.get("mediaType")
    if media != MANIFEST_MEDIA_TYPE:
        raise BadInput(
            f"{where}: media type {media!r} is not an OCI image manifest of a model",
            hint=f"regctl reads {MANIFEST_MEDIA_TYPE} with artifactType {ARTIFACT_TYPE}",
        )
    if doc.get("artifactType") != ARTIFACT_TYPE:
        raise BadInput(
            f"{where}: artifactType {doc.get('artifactType')!r} is not a model ({ARTIFACT_TYPE})"
        )
    config = doc.get("config")
    if not isinstance(config, dict) or config.get("mediaType") != CONFIG_MEDIA_TYPE:
        got = config.get("mediaType") if isinstance(config, dict) else None
        raise BadInput(f"{where}: config media type {got!r} is not {CONFIG_MEDIA_TYPE}")
    _digest(config, where)
    _size(config, where)
    for layer in _list(doc, "layers", where):
        if layer.get("mediaType") not in LAYER_MEDIA_TYPES:
            raise BadInput(
                f"{where}: layer media type {layer.get('mediaType')!r} is not a model file"
            )
        _digest(layer, where)
        _size(layer, where)
    return doc


def facts_of(manifest_data: bytes, config_data: bytes, where: str) -> Artifact:
    """The version behind a manifest and its config blob, checked: the config's digest,
    and every layer against the facts (same paths, sha256, sizes, media types).
    A mismatch is :class:`IntegrityError` (exit 5); the rebuilt bytes equal the input."""
    from registry_cli.core.documents import ManifestFormatError, validate_manifest

    doc = parse_manifest(manifest_data, where)
    if digest_of(config_data) != doc["config"]["digest"]:
        raise IntegrityError(f"{where}: the config blob does not match its digest")
    config = _json(config_data, f"{where} config")
    embedded = config.get("regctl")
    if not isinstance(embedded, dict) or embedded.get("format_version") != CONFIG_FORMAT:
        raise BadInput(
            f"{where}: the model config carries no regctl facts (format_version "
            f"{embedded.get('format_version') if isinstance(embedded, dict) else None!r})",
            hint="regctl imports artifacts that regctl wrote",
        )
    try:
        facts = validate_manifest(embedded.get("manifest"), where)
    except ManifestFormatError as exc:
        raise BadInput(str(exc)) from None
    rebuilt = artifact_of(facts)
    if rebuilt.manifest != manifest_data:
        raise IntegrityError(
            f"{where}: the manifest does not match the facts in its config",
            hint="the layout was changed after export; export it again",
        )
    return rebuilt


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise BadInput(f"{where}: not JSON") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: not a JSON object")
    return doc


def _list(doc: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadInput(f"{where}: {key!r} is not a list of descriptors")
    return value


def _digest(desc: dict[str, Any], where: str) -> str:
    value = desc.get("digest")
    if not isinstance(value, str) or not value.startswith("sha256:"):
        raise BadInput(f"{where}: digest {value!r} is not sha256:<hex>")
    hexpart = value[len("sha256:") :]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise BadInput(f"{where}: digest {value!r} is not sha256:<hex>")
    return value


def _size(desc: dict[str, Any], where: str) -> int:
    value = desc.get("size")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadInput(f"{where}: size {value!r} is not a byte count")
    return value
