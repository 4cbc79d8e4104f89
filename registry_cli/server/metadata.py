"""The ``metadata`` of a publish over HTTP: checked, then turned into the keyword
arguments of :meth:`ModelRegistry.publish` (see docs/server.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry_cli.core.signature import signature_from_shape
from registry_cli.errors import BadInput

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.core.types import VersionInfo

METADATA_LIMIT = 1 << 20
METADATA_KEYS = {
    "metrics",
    "params",
    "tags",
    "description",
    "derived_from",
    "example_shape",
    "example_dtype",
    "signature",
    "no_latest",
    "no_alias",
    "convert",
    "task",
    "num_classes",
    "sha256",
    "source_paths",
    "stage",
}
MLFLOW_KEYS = {"from_mlflow", "tracking_uri", "artifact_path"}
CODE_RUNNING = {"arch", "trust_pickle"}


def parse_metadata(raw: bytes, allowed: set[str]) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadInput("metadata is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadInput("metadata must be a JSON object")
    refused = CODE_RUNNING & set(doc)
    if refused:
        raise BadInput(
            f"{' and '.join(sorted(refused))} refused over HTTP: they run code on the server",
            hint="convert on a trusted machine and publish there, or publish without them",
        )
    unknown = set(doc) - allowed
    if unknown:
        raise BadInput(
            f"unknown metadata key(s): {', '.join(sorted(unknown))}",
            hint=f"known: {', '.join(sorted(allowed))}",
        )
    return doc


def mapping(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise BadInput(f"metadata {key} must be an object")
    return value


def publish_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    """``ModelRegistry.publish`` keyword arguments from a metadata document."""
    metrics = mapping(doc, "metrics")
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"metric {key}: {value!r} is not a number")
    for key in ("description", "derived_from", "example_shape", "example_dtype", "stage"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise BadInput(f"metadata {key} must be a string")
    signature = doc.get("signature")
    if signature is not None and not isinstance(signature, dict):
        raise BadInput("metadata signature must be an object")
    if doc.get("example_shape"):
        signature = signature_from_shape(
            doc["example_shape"], doc.get("example_dtype") or "float32"
        )
    return dict(
        metrics=metrics,
        params={k: str(v) for k, v in mapping(doc, "params").items()},
        tags={k: str(v) for k, v in mapping(doc, "tags").items()},
        description=doc.get("description"),
        stage=doc.get("stage"),
        set_latest=not doc.get("no_latest", False),
        set_alias=not doc.get("no_alias", False),
        derived_from=doc.get("derived_from"),
        signature=signature,
    )


def conversion(doc: dict[str, Any]) -> Any:
    if not doc.get("convert"):
        if doc.get("task") is not None or doc.get("num_classes") is not None:
            raise BadInput("task and num_classes need convert: torch-standard")
        return None
    from registry_cli.formats.publish_sources import ConversionOptions

    num_classes = doc.get("num_classes")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int)
    ):
        raise BadInput("num_classes must be a whole number")
    return ConversionOptions(
        task=doc.get("task"), num_classes=num_classes, target=str(doc["convert"])
    ).validate()


def publish_from_mlflow_body(reg: ModelRegistry, name: str, doc: dict[str, Any]) -> VersionInfo:
    """A JSON publish: ``{"from_mlflow": URI, "tracking_uri"?, "artifact_path"?, ...}``."""
    from registry_cli.formats.publish_sources import publish_from_mlflow

    uri = doc.get("from_mlflow")
    if not isinstance(uri, str) or not uri:
        raise BadInput("a JSON publish needs from_mlflow: URI")
    meta = {k: v for k, v in doc.items() if k not in MLFLOW_KEYS}
    for key in ("tracking_uri", "artifact_path"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise BadInput(f"{key} must be a string")
    return publish_from_mlflow(
        reg,
        name,
        uri,
        tracking_uri=doc.get("tracking_uri"),
        artifact_path=doc.get("artifact_path"),
        convert=conversion(meta),
        **publish_kwargs(meta),
    )
