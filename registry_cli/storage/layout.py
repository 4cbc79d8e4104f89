"""Where everything lives under a registry root (see docs/layout.md), and safe path joins.

<root>/
  registry.yaml        optional config
  audit.jsonl          append-only audit log
  models/<name>/       <name> may be nested (team/project/task)
    model.yaml         mutable model state
    .lock              per-model writer lock
    vN/                immutable version: payload/, version.yaml, manifest.json, bundle.tar.gz
  dist/<stage>/<name>/ the served tree, derived from models/
  blobs/sha256/xx/<sha256>  each distinct payload file once, read-only
  .regctl/
    registry.lock      taken to create a model (name-prefix conflicts)
    tmp/               publishes in progress; leftovers are removed by `regctl gc`
"""

from __future__ import annotations

import os
from pathlib import Path

from registry_cli.errors import BadInput


def inside(base: Path, *parts: str) -> Path:
    """Join ``parts`` under ``base`` and refuse anything that would leave it."""
    check_key_parts(*parts)
    joined = base.joinpath(*parts)
    base_real = os.path.realpath(base)
    if os.path.commonpath([base_real, os.path.realpath(joined)]) != base_real:
        raise BadInput(f"path {'/'.join(parts)!r} escapes {base}")
    return joined


# Keys of a root (``/``-separated, relative to the root), as every Store names them.
MODELS = "models"
DIST = "dist"
AUDIT = "audit.jsonl"
CONFIG = "registry.yaml"
REGISTRY_LOCK = ".regctl/registry.lock"
BLOBS = "blobs/sha256"
PENDING = ".regctl/pending"  # blobs a publish in progress will reference (gc spares them)


def check_key_parts(*parts: str) -> None:
    """Refuse empty, ``.``/``..``, backslash and NUL segments before they form a key."""
    for part in parts:
        for seg in part.split("/"):
            if seg in ("", ".", "..") or "\\" in seg or "\0" in seg:
                raise BadInput(f"unsafe path component {part!r}")


def model_key(name: str) -> str:
    check_key_parts(name)
    return f"{MODELS}/{name}"


def state_key(name: str) -> str:
    return f"{model_key(name)}/model.yaml"


def model_lock_key(name: str) -> str:
    return f"{model_key(name)}/.lock"


def version_key(name: str, version: int) -> str:
    return f"{model_key(name)}/v{version}"


def dist_key(stage: str, name: str) -> str:
    check_key_parts(stage, name)
    return f"{DIST}/{stage}/{name}"


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def blob_key(sha256: str) -> str:
    """``blobs/sha256/<first two hex>/<sha256>``: where a payload file's bytes live."""
    if not is_sha256(sha256):
        raise BadInput(f"not a sha256: {sha256[:80]!r}")
    return f"{BLOBS}/{sha256[:2]}/{sha256}"


class Layout:
    """Local paths of a folder root (the FS backend and FS-only callers)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def dist(self) -> Path:
        return self.root / "dist"

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def internal(self) -> Path:
        return self.root / ".regctl"

    @property
    def tmp(self) -> Path:
        return self.internal / "tmp"

    @property
    def registry_lock(self) -> Path:
        return self.internal / "registry.lock"

    def model_dir(self, name: str) -> Path:
        return inside(self.models, name)

    def model_state(self, name: str) -> Path:
        return self.model_dir(name) / "model.yaml"

    def model_lock(self, name: str) -> Path:
        return self.model_dir(name) / ".lock"

    def version_dir(self, name: str, version: int) -> Path:
        return self.model_dir(name) / f"v{version}"

    def dist_model(self, stage: str, name: str) -> Path:
        return inside(self.dist, stage, name)
