"""Test support: turn a freshly published root into the layout regctl wrote before
content-addressed storage (docs/layout.md), to test what ``gc --dedup`` and ``du`` do
with such roots.

Old layout: every version holds its own payload files and a ``bundle.tar.gz`` file,
each stage's served tree holds its own copies of both (hard links on a folder), no
``blobs/`` folder, no ``"blobs"`` pointer in ``LATEST.json``/``index.json`` and no
``mtime``/``stored`` in a version's bundle entry. The recorded sha256 and size of
each bundle stay those publish computed, and the bundle file written here is checked
against them, so the converted root verifies as the old one did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import yaml

from registry_cli.storage import layout
from registry_cli.storage.bundle_stream import BundleLayout, BundleStream, FolderSource


def to_legacy(root: Any) -> None:
    if isinstance(root, Path):
        _folder(root)
    else:
        _s3(root)


def _writable(path: Path) -> None:
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)


def _old_entry(doc: dict) -> None:
    doc["bundle"].pop("stored", None)
    doc["bundle"].pop("mtime", None)


def _folder(root: Path) -> None:
    for ydoc in sorted((root / "models").rglob("v*/version.yaml")):
        vdir = ydoc.parent
        name = vdir.parent.relative_to(root / "models").as_posix()
        doc = yaml.safe_load(ydoc.read_text())
        entry = doc["bundle"]
        manifest = (vdir / "manifest.json").read_bytes()
        _writable(vdir)
        if entry.get("stored") is False:
            stream = BundleStream(
                BundleLayout.from_manifest(manifest, entry["mtime"]), FolderSource(vdir)
            )
            data = stream.read(0, stream.size)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
            (vdir / "bundle.tar.gz").write_bytes(data)
            os.chmod(vdir / "bundle.tar.gz", 0o444)
        for f in json.loads(manifest)["files"]:  # a file of its own, not a blob's link
            path = vdir / f["path"]
            _writable(path.parent)
            data = path.read_bytes()
            path.unlink()
            path.write_bytes(data)
            os.chmod(path, 0o444)
        _old_entry(doc)
        _writable(ydoc)
        ydoc.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.chmod(ydoc, 0o444)
        for served in root.glob(f"dist/*/{name}/versions/{vdir.name}"):
            _writable(served)
            for rel in ["bundle.tar.gz"] + [f["path"] for f in json.loads(manifest)["files"]]:
                target = served / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _writable(target.parent)
                if target.exists():
                    target.unlink()
                os.link(vdir / rel, target)
    blobs = root / "blobs"
    if blobs.exists():
        for d in [blobs, *blobs.rglob("*")]:
            if d.is_dir():
                _writable(d)
        shutil.rmtree(blobs)


def _s3(root: Any) -> None:
    client, bucket, prefix = root.client, root.bucket, root.key
    keys = [k[len(prefix) + 1 :] for k in root._below()]

    def get(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)

    for ykey in [k for k in keys if k.startswith("models/") and k.endswith("/version.yaml")]:
        vkey = ykey.rsplit("/", 1)[0]
        name, vname = vkey[len("models/") :].rsplit("/", 1)
        doc = yaml.safe_load(get(ykey))
        manifest = get(f"{vkey}/manifest.json")
        files = json.loads(manifest)["files"]
        local = Path(os.environ.get("TMPDIR", "/tmp")) / f"legacy-{os.getpid()}-{vname}"
        for f in files:
            (local / f["path"]).parent.mkdir(parents=True, exist_ok=True)
            (local / f["path"]).write_bytes(get(layout.blob_key(f["sha256"])))
        entry = doc["bundle"]
        stream = BundleStream(
            BundleLayout.from_manifest(manifest, entry["mtime"]), FolderSource(local)
        )
        bundle = stream.read(0, stream.size)
        assert (len(bundle), hashlib.sha256(bundle).hexdigest()) == (entry["size"], entry["sha256"])
        served = sorted(
            {
                k.split("/versions/")[0]
                for k in keys
                if k.startswith("dist/") and f"/{name}/versions/{vname}/" in k
            }
        )
        for base in [vkey, *(f"{s}/versions/{vname}" for s in served)]:
            put(f"{base}/bundle.tar.gz", bundle)
            for f in files:
                put(f"{base}/{f['path']}", (local / f["path"]).read_bytes())
        shutil.rmtree(local)
        _old_entry(doc)
        put(ykey, yaml.safe_dump(doc, sort_keys=False).encode())
    for dkey in [
        k
        for k in keys
        if k.startswith("dist/") and k.rsplit("/", 1)[-1] in ("LATEST.json", "index.json")
    ]:
        doc = json.loads(get(dkey))
        doc.pop("blobs", None)
        for v in doc.get("versions", []):
            v.pop("blobs", None)
        put(dkey, json.dumps(doc).encode())
    for key in [k for k in keys if k.startswith("blobs/")]:
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
