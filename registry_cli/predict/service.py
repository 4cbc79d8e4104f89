"""One-shot predictions: resolve a reference (or a bundle folder), load, run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.predict.inputs import load_input_bytes
from registry_cli.predict.loader import LoadedModel, load_folder

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.core.types import VersionInfo


def is_bundle_folder(ref: str) -> bool:
    """A folder holding ``manifest.json`` and ``payload/`` (a pulled bundle or a vN folder)."""
    path = Path(ref)
    return path.is_dir() and (path / "manifest.json").is_file() and (path / "payload").is_dir()


def load_reference(
    ref: str, registry: Callable[[], ModelRegistry], *, stage: str | None = None
) -> LoadedModel:
    """Load ``ref``: a pulled bundle folder, else a registry reference (``NAME@alias``...).

    ``registry`` is called only for a reference, so predicting on a cache
    folder needs no registry root.
    """
    if is_bundle_folder(ref):
        return load_folder(Path(ref))
    reg = registry()
    info = reg.get(ref, stage=stage)
    alias = ref.rpartition("@")[2] if "@" in ref else None
    return load_folder(local_folder(reg, info), info.manifest, alias=alias)


def load_alias(registry: ModelRegistry, name: str, alias: str) -> LoadedModel:
    """Load the version ``name@alias`` points at now (the server's load step)."""
    info = registry.get(f"{name}@{alias}")
    return load_folder(local_folder(registry, info), info.manifest, alias=alias)


def local_folder(registry: ModelRegistry, info: VersionInfo) -> Path:
    """The version's folder; on an s3 root, its copy in the local cache, fetched and
    verified against the manifest first (see docs/object-storage.md)."""
    from registry_cli.core.retention import require_payload
    from registry_cli.storage.layout import version_key
    from registry_cli.storage.open import local_version

    require_payload(info.status, info.name, info.version)

    return local_version(registry.store, version_key(info.name, info.version))


def alias_version(registry: ModelRegistry, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points at now (``"v3"``), or None: ``serve --follow``'s poll.

    Reads only the model's state (no manifest, no payload), so polling is cheap.
    """
    from registry_cli.core.names import format_version
    from registry_cli.errors import NotFound

    try:
        number = registry.model_state(name).all_aliases().get(alias)
    except NotFound:
        return None
    return format_version(number) if number else None


def predict_bytes(model: LoadedModel, data: bytes, *, source: str = "input") -> dict[str, Any]:
    """Run ``model`` on JSON or ``.npy`` bytes; the ``predict`` JSON document."""
    x = load_input_bytes(data, source=source)
    return {"model": model.name, "version": model.version, "prediction": model.predict(x)}
