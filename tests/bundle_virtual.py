"""Test support: turn a published level-0 version into one whose bundle is not stored.

A level-0 publish records ``bundle: {mtime, stored: false}`` itself, and then
:func:`make_bundle_virtual` changes nothing; for a version with a bundle file
(an older root, or a test that wrote one)
:func:`make_bundle_virtual` records the mtime from the real file's gzip header,
adds ``stored: false`` and removes every ``bundle.tar.gz`` of that version
(``models/`` and each stage of ``dist/``). The recorded sha256 and size stay
those of the bundle that was written, so every check against them is a check
that the assembled bytes equal what publish wrote.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

import yaml


def bundle_facts(root: Path, name: str, version: int) -> dict:
    vdir = root / "models" / name / f"v{version}"
    return yaml.safe_load((vdir / "version.yaml").read_text())["bundle"]


def make_bundle_virtual(root: Path, name: str, version: int) -> dict:
    """Record ``mtime`` + ``stored: false`` and delete the bundle files; returns the entry."""
    vdir = root / "models" / name / f"v{version}"
    if bundle_facts(root, name, version).get("stored") is False:
        return bundle_facts(root, name, version)  # published so: nothing to remove
    real = vdir / "bundle.tar.gz"
    with open(real, "rb") as fh:
        head = fh.read(10)
    yaml_path = vdir / "version.yaml"
    doc = yaml.safe_load(yaml_path.read_text())
    doc["bundle"]["mtime"] = struct.unpack("<I", head[4:8])[0]
    doc["bundle"]["stored"] = False
    _writable(yaml_path)
    yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    for path in [real, *root.glob(f"dist/*/{name}/versions/v{version}/bundle.tar.gz")]:
        _writable(path.parent)
        path.unlink()
    return doc["bundle"]


def _writable(path: Path) -> None:
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_with_bundle_file(root: Path, name: str, paths: list[Path]) -> None:
    """Publish a version that keeps a real ``bundle.tar.gz`` (``bundle: {compression:
    1}``), as every version of an older root does; the root's config is restored."""
    from registry_cli.core.registry import ModelRegistry

    config = root / "registry.yaml"
    before = config.read_text() if config.exists() else None
    config.write_text((before or "") + "bundle: {compression: 1}\n")
    try:
        ModelRegistry(root).publish(name, paths)
    finally:
        if before is None:
            config.unlink()
        else:
            config.write_text(before)
