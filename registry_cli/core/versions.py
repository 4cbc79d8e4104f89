"""Reading published versions: their immutable facts joined with the model's state."""

from __future__ import annotations

from typing import Any

from registry_cli.core.documents import ManifestFormatError, parse_manifest, parse_version_yaml
from registry_cli.core.state import ModelState
from registry_cli.core.types import VersionInfo
from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.store import Missing, Store


class VersionReader:
    def __init__(self, store: Store, stages: tuple[str, ...]) -> None:
        self.store = store
        self.stages = stages

    def _read(self, key: str) -> tuple[bytes, str]:
        where = f"{self.store.location}/{key}"
        try:
            return self.store.read(key), where
        except Missing:
            raise IntegrityError(f"{where} is missing") from None

    def facts(self, name: str, version: int) -> dict[str, Any]:
        """``manifest.json`` of a version, validated."""
        data, where = self._read(f"{layout.version_key(name, version)}/manifest.json")
        try:
            return parse_manifest(data, where)
        except ManifestFormatError as exc:
            raise IntegrityError(str(exc)) from None

    def metrics(self, name: str, version: int) -> dict[str, Any]:
        return self.facts(name, version).get("metrics") or {}

    def bundle(self, name: str, version: int) -> dict[str, Any]:
        """The bundle's facts from ``version.yaml``, with its absolute path; the path is
        None for a bundle assembled from the payload when read (``stored: false``: no
        file, see docs/layout.md)."""
        vkey = layout.version_key(name, version)
        data, where = self._read(f"{vkey}/version.yaml")
        try:
            doc = parse_version_yaml(data, where)
        except ManifestFormatError as exc:
            raise IntegrityError(str(exc)) from None
        bundle = dict(doc["bundle"])
        stored = bundle.get("stored") is not False
        bundle["path"] = str(self.store.local_path(f"{vkey}/bundle.tar.gz")) if stored else None
        return bundle

    def current_tags(self, state: ModelState, version: int) -> dict[str, str]:
        """Tags after ``regctl tag``; the publish-time tags until a version is retagged."""
        if version in state.tags:
            return dict(state.tags[version])
        return dict(self.facts(state.name, version).get("tags") or {})

    def info(self, state: ModelState, version: int, *, with_bundle: bool = True) -> VersionInfo:
        facts = self.facts(state.name, version)
        return VersionInfo(
            name=state.name,
            version=version,
            status=state.status_of(version),
            stages=state.stages_of(version, self.stages),
            aliases=state.aliases_of(version),
            tags=dict(state.tags.get(version, facts.get("tags") or {})),
            metrics=dict(facts.get("metrics") or {}),
            params=dict(facts.get("params") or {}),
            description=facts.get("description"),
            created_at=facts["created_at"],
            created_by=facts.get("created_by", ""),
            source=facts.get("source") or {},
            files=facts["files"],
            derived_from=facts.get("derived_from"),
            path=self.store.local_path(layout.version_key(state.name, version)),
            preferred_weight=facts["preferred_weight"],
            bundle=self.bundle(state.name, version) if with_bundle else {},
            standard_artifacts=facts.get("standard_artifacts") or {},
            signature=facts.get("signature"),
            manifest=facts,
        )
