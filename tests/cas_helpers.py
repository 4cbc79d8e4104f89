"""Helpers of the content-addressed storage tests: a version's bundle bytes.

A level-0 bundle is not stored as a file; these tests rebuild it from the
payload the way publish framed it (directories first, then each file in
manifest order fed in 1 MiB pieces, then manifest.json) and check it against
the sha256 and size version.yaml recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import yaml

from registry_cli.storage.bundle import BundleWriter, bundle_folders
from registry_cli.storage.hashing import CHUNK


def bundle_bytes(vdir: Path) -> bytes:
    """The bundle of the version folder ``vdir``: its file, else assembled; checked."""
    facts = yaml.safe_load((vdir / "version.yaml").read_text())
    entry = facts["bundle"]
    if entry.get("stored", True) is not False:
        data = (vdir / "bundle.tar.gz").read_bytes()
    else:
        data = assemble(vdir, int(entry["mtime"]))
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    return data


def assemble(vdir: Path, mtime: int) -> bytes:
    manifest = (vdir / "manifest.json").read_bytes()
    files = [f["path"] for f in json.loads(manifest)["files"]]
    folders = bundle_folders(files)
    with tempfile.TemporaryFile() as out:
        writer = BundleWriter(out.fileno(), level=0, mtime=mtime)
        for folder in folders:
            writer.add_dir(folder)
        for rel in files:
            size = os.path.getsize(vdir / rel)
            writer.begin_file(rel, size)
            with open(vdir / rel, "rb") as fh:
                while piece := fh.read(CHUNK):
                    writer.feed(memoryview(piece))
            writer.end_file(size)
        writer.add_bytes("manifest.json", manifest)
        writer.close()
        out.seek(0)
        return out.read()
