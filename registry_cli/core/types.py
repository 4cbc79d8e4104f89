"""Plain results the core returns; the CLI renders them, the core never prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class VersionInfo:
    """Everything known about one version: immutable facts plus current state."""

    name: str
    version: int
    status: str
    stages: list[str]
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    description: str | None
    created_at: str
    created_by: str
    source: dict[str, Any]
    files: list[dict[str, Any]]
    derived_from: str | None
    path: Path
    preferred_weight: str
    bundle: dict[str, Any]
    standard_artifacts: dict[str, str] = field(default_factory=dict)
    signature: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def vname(self) -> str:
        return f"v{self.version}"

    @property
    def preferred_weight_path(self) -> Path:
        return self.path / self.preferred_weight

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.vname,
            "status": self.status,
            "stages": self.stages,
            "aliases": self.aliases,
            "tags": self.tags,
            "metrics": self.metrics,
            "params": self.params,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "source": self.source,
            "files": self.files,
            "derived_from": self.derived_from,
            "path": str(self.path),
            "preferred_weight": self.preferred_weight,
            "bundle": self.bundle,
            "standard_artifacts": self.standard_artifacts,
            "signature": self.signature,
            **{k: self.manifest[k] for k in ("license", "card") if self.manifest.get(k)},
        }

    def to_summary_json(self) -> dict[str, Any]:
        return {
            "version": self.vname,
            "status": self.status,
            "stages": self.stages,
            "aliases": self.aliases,
            "tags": self.tags,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "derived_from": self.derived_from,
        }


@dataclass
class ModelSummary:
    name: str
    versions: int
    latest: str | None
    aliases: dict[str, str]
    stages: dict[str, str | None]
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": self.latest,
            "aliases": self.aliases,
            "stages": self.stages,
        }


@dataclass
class ChangeResult:
    """What a lifecycle command did: for human output and ``--json``."""

    action: str
    name: str
    version: str | None
    changed: dict[str, Any]
    noop: bool = False
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "name": self.name,
            "version": self.version,
            "noop": self.noop,
            "changed": self.changed,
            "message": self.message,
        }


@dataclass
class VerifyProblem:
    model: str | None
    version: str | None
    path: str
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "path": self.path,
            "problem": self.problem,
        }


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)  # with dry_run: what would go
    kept_in_use: list[str] = field(default_factory=list)
    dry_run: bool = False
    blobs_removed: int = 0
    bytes_freed: int = 0
    kept_young: int = 0  # unreferenced blobs younger than the grace period
    kept_pending: int = 0  # unreferenced blobs a publish in progress announced
    deduped: int = 0  # payload files turned into hard links of blobs (gc --dedup)

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": self.removed,
            "in_use": self.kept_in_use,
            "dry_run": self.dry_run,
            "blobs": {
                "removed": self.blobs_removed,
                "bytes": self.bytes_freed,
                "kept_young": self.kept_young,
                "kept_pending": self.kept_pending,
            },
            "deduped": self.deduped,
        }


@dataclass
class AuditLog:
    entries: list[dict[str, Any]]
    damaged_lines: list[int]
