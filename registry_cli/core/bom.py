"""``regctl bom``: a CycloneDX 1.6 ML-BOM (JSON) of one version.

Built with ``cyclonedx-python-lib`` (imported here only): the model is the
BOM's subject (``metadata.component``, type ``machine-learning-model``) with
the sha256 of its manifest and bundle, its license, its lineage
(``pedigree.ancestors`` from ``derived_from``) and its facts as properties;
each payload file is a ``file`` component with its sha256, and the model
depends on them. The library has no model-card model, so the ``modelCard``
(metrics as ``quantitativeAnalysis.performanceMetrics``, the card text and
facts as properties) is added to the serialized subject; the whole document
is then checked with the library's strict JSON validator. See docs/trust.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry_cli.errors import RegctlError

if TYPE_CHECKING:
    from registry_cli.core.types import VersionInfo

PREFIX = "regctl"


def build_bom(info: VersionInfo, manifest_sha256: str | None = None) -> dict[str, Any]:
    """The ML-BOM of ``info`` as a JSON document, valid against the CycloneDX 1.6 schema."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6

    facts = info.manifest
    ref = f"{info.name}:{info.vname}"
    hashes = []
    if manifest_sha256:
        hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=manifest_sha256))
    if info.bundle.get("sha256"):
        hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=str(info.bundle["sha256"])))
    props = [  # which hash is which: both are sha256
        Property(name=f"{PREFIX}:{what}.sha256", value=str(sha))
        for what, sha in (("manifest", manifest_sha256), ("bundle", info.bundle.get("sha256")))
        if sha
    ]
    props += [Property(name=f"{PREFIX}:tag:{k}", value=str(v)) for k, v in info.tags.items()]
    props += [Property(name=f"{PREFIX}:param:{k}", value=str(v)) for k, v in info.params.items()]
    props += [
        Property(name=f"{PREFIX}:{key}", value=str(value))
        for key, value in (
            ("created_at", info.created_at),
            ("created_by", info.created_by),
            ("source.type", info.source.get("type")),
            *((f"source.ci.{k}", v) for k, v in (info.source.get("ci") or {}).items()),
        )
        if value
    ]
    pedigree = None
    if info.derived_from:
        parent_name, _, parent_version = info.derived_from.rpartition(":")
        pedigree = Pedigree(
            ancestors=[
                Component(
                    type=ComponentType.MACHINE_LEARNING_MODEL,
                    name=parent_name,
                    version=parent_version,
                    bom_ref=info.derived_from,
                )
            ]
        )
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=info.name,
        version=info.vname,
        bom_ref=ref,
        description=info.description or None,
        hashes=hashes,
        licenses=[LicenseExpression(str(facts["license"]))] if facts.get("license") else None,
        properties=props,
        pedigree=pedigree,
    )
    files = [
        Component(
            type=ComponentType.FILE,
            name=f["path"],
            bom_ref=f"{ref}/{f['path']}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f["sha256"])],
            properties=[Property(name=f"{PREFIX}:size", value=str(f["size"]))],
        )
        for f in info.files
    ]
    bom = Bom(components=files)
    bom.metadata.component = model
    bom.register_dependency(model, files)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    card = model_card(info)
    if card:
        doc["metadata"]["component"]["modelCard"] = card
    validate(doc)
    return doc


def model_card(info: VersionInfo) -> dict[str, Any]:
    """The CycloneDX ``modelCard`` of a version: its metrics and card facts."""
    card: dict[str, Any] = {}
    if info.metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": k, "value": f"{float(v):g}"} for k, v in sorted(info.metrics.items())
            ]
        }
    task = info.tags.get("task") or info.params.get("task")
    if task:
        card["modelParameters"] = {"task": str(task)}
    props = []
    if info.manifest.get("card"):
        props.append({"name": f"{PREFIX}:card", "value": str(info.manifest["card"])})
    if info.preferred_weight:
        props.append({"name": f"{PREFIX}:preferred_weight", "value": info.preferred_weight})
    if props:
        card["properties"] = props
    return card


def validate(doc: dict[str, Any]) -> None:
    """Check ``doc`` against the CycloneDX 1.6 JSON schema (strict); RegctlError if not."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if error is not None:
        raise RegctlError(f"the ML-BOM is not valid CycloneDX 1.6: {error}")
