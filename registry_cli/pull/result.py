"""What a pull returns (``regctl pull --json`` prints :meth:`PullResult.to_json`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PullResult:
    name: str
    stage: str
    version: str
    path: Path
    preferred_weight_path: Path
    cached: bool
    sha256: str
    size: int
    source: str
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    offline: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "version": self.version,
            "path": str(self.path),
            "preferred_weight_path": str(self.preferred_weight_path),
            "cached": self.cached,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "offline": self.offline,
        }
