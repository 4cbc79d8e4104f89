"""``gc`` of unreferenced blobs on folder and S3 roots: the grace period, pending markers
of publishes in progress, the re-check right before a delete, ``--dry-run``, ``--json``,
and ``gc --dedup`` turning an old root into the blob layout."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import blob_gc, blob_refs
from registry_cli.storage import layout
from tests.legacy_layout import to_legacy
from tests.test_retention import publish, snapshot

BOTH = pytest.mark.parametrize("backend", ["folder", "s3"], indirect=True)


def blob_root(proc, root, tmp_path: Path, shared: bytes, count: int = 3) -> None:
    """A root in the blob layout: published, then ``gc --dedup``."""
    publish(proc, tmp_path, "m", count, shared)
    to_legacy(root)
    res = json.loads(proc("gc", "--dedup", "--json", check=True).stdout)
    # each payload file on a folder; each distinct object on S3 (copied into its blob)
    assert res["deduped"] == 2 * count  # every payload file (S3: every payload object)


def own_sha(root, version: str) -> str:
    manifest = json.loads((root / "models/m" / version / "manifest.json").read_text())
    return next(f["sha256"] for f in manifest["files"] if f["path"] == "payload/own.bin")


def blob_exists(root, sha: str) -> bool:
    return (root / layout.blob_key(sha)).is_file()


@BOTH
def test_dedup_leaves_the_blob_layout_and_everything_readable(regctl_proc, root, tmp_path):
    shared = os.urandom(5000)
    publish(regctl_proc, tmp_path, "m", 3, shared)
    regctl_proc("promote", "m", "--version", "v2", check=True)
    to_legacy(root)
    before = snapshot(root)
    moved = 6  # every payload file (S3: each object copied into its blob, then dropped)
    dry = json.loads(regctl_proc("gc", "--dedup", "--dry-run", "--json", check=True).stdout)
    assert dry["dry_run"] is True and dry["deduped"] == moved
    assert snapshot(root) == before
    done = json.loads(regctl_proc("gc", "--dedup", "--json", check=True).stdout)
    assert done["deduped"] == moved
    blobs = [k for k in _keys(root / layout.BLOBS)]
    assert len(blobs) == 4  # the shared file once, three own files
    if isinstance(root, Path):
        for v in ("v1", "v2", "v3"):
            for f in ("shared.bin", "own.bin"):
                payload = root / "models/m" / v / "payload" / f
                manifest = json.loads((root / "models/m" / v / "manifest.json").read_text())
                sha = next(x["sha256"] for x in manifest["files"] if x["path"].endswith(f))
                blob = root / layout.blob_key(sha)
                assert payload.stat().st_ino == blob.stat().st_ino
                assert oct(blob.stat().st_mode & 0o777) == "0o444"
        served = root / "dist/release/m/versions/v2/payload/own.bin"
        assert served.stat().st_ino == (root / layout.blob_key(own_sha(root, "v2"))).stat().st_ino
    else:  # every blob verified; no payload object of a version or stage is left
        for k in root.keys():
            if k.startswith("blobs/"):
                assert layout.blob_key(k.rsplit("/", 1)[1]) == k
            assert "/payload/" not in k, k
        latest = json.loads((root / "dist/release/m/LATEST.json").read_text())
        assert latest["blobs"] == "../../../blobs/sha256"
    again = json.loads(regctl_proc("gc", "--dedup", "--json", check=True).stdout)
    assert again["deduped"] == 0 and again["removed"] == []
    assert regctl_proc("verify").returncode == 0
    cache = tmp_path / "cache"
    for v in ("v1", "v2", "v3"):
        res = regctl_proc(
            "pull", "m", "--stage", "dev", "--version", v, "--from", str(root),
            "--cache-dir", str(cache), "--json",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        got = Path(json.loads(res.stdout)["path"])
        assert (got / "payload/shared.bin").read_bytes() == shared


def _keys(base) -> list[str]:
    if isinstance(base, Path):
        return [p.name for p in base.rglob("*") if p.is_file()]
    return base.keys()


@BOTH
def test_gc_removes_an_unreferenced_blob_only_past_grace(regctl_proc, root, tmp_path):
    blob_root(regctl_proc, root, tmp_path, os.urandom(5000))
    regctl_proc("archive", "m", "v1", check=True)
    regctl_proc("purge", "m", "v1", "--reason", "old", check=True)
    sha = own_sha(root, "v1")
    assert blob_exists(root, sha)  # the purge leaves bytes to gc
    kept = json.loads(regctl_proc("gc", "--json", check=True).stdout)
    assert kept["blobs"] == {"removed": 0, "bytes": 0, "kept_young": 1, "kept_pending": 0}
    assert blob_exists(root, sha)
    before = snapshot(root)
    dry = json.loads(regctl_proc("gc", "--grace", "0s", "--dry-run", "--json", check=True).stdout)
    assert dry["removed"] == [f"{root}/{layout.blob_key(sha)}"] and dry["blobs"]["bytes"] == 2000
    assert snapshot(root) == before
    human = regctl_proc("gc", "--grace", "0s", "--dry-run", check=True).stdout
    assert f"would remove {root}/{layout.blob_key(sha)}" in human
    done = json.loads(regctl_proc("gc", "--grace", "0s", "--json", check=True).stdout)
    assert done["blobs"]["removed"] == 1 and done["blobs"]["bytes"] == 2000
    assert not blob_exists(root, sha)
    audit = json.loads(regctl_proc("audit", "--json", check=True).stdout)[-1]
    assert audit["action"] == "gc" and audit["details"]["blobs"] == 1
    assert regctl_proc("verify").returncode == 0
    before = snapshot(root)
    for bad in ("soon", "-1h", "3x", ""):
        res = regctl_proc("gc", "--grace", bad)
        assert res.returncode == 2 and res.stderr.startswith("error: --grace"), res.stderr
    assert snapshot(root) == before


def _age_everything(monkeypatch, age: float) -> None:
    """Blobs look ``age`` seconds old (ctime cannot be set back; unit tests may fake it)."""
    real_list, real_info = blob_refs.list_blobs, blob_refs.blob_info

    def old_list(store):
        return {s: blob_refs.BlobInfo(i.size, age) for s, i in real_list(store).items()}

    def old_info(store, sha):
        found = real_info(store, sha)
        return None if found is None else blob_refs.BlobInfo(found.size, age)

    monkeypatch.setattr(blob_gc, "list_blobs", old_list)
    monkeypatch.setattr(blob_gc, "blob_info", old_info)


def _marker(root, blobs: list[str], created: str) -> None:
    doc = {"created": created, "blobs": blobs}
    (root / layout.PENDING).mkdir(parents=True, exist_ok=True)
    (root / layout.PENDING / f"4242-{uuid.uuid4().hex[:8]}.json").write_text(json.dumps(doc))


def _iso(seconds_ago: float) -> str:
    import datetime as dt

    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    return when.isoformat().replace("+00:00", "Z")


@BOTH
def test_a_live_pending_marker_keeps_its_blobs(regctl_proc, root, tmp_path, monkeypatch):
    blob_root(regctl_proc, root, tmp_path, os.urandom(5000))
    regctl_proc("archive", "m", "v1", check=True)
    regctl_proc("purge", "m", "v1", "--reason", "old", check=True)
    sha = own_sha(root, "v1")
    _age_everything(monkeypatch, 7200.0)
    _marker(root, [sha], _iso(10))
    report = ModelRegistry(root).gc(grace_s=3600)
    assert report.kept_pending == 1 and report.blobs_removed == 0 and blob_exists(root, sha)
    for marker in (root / layout.PENDING).iterdir():
        marker.unlink()
    _marker(root, [sha], _iso(7200))  # a marker older than the grace period is dead
    report = ModelRegistry(root).gc(grace_s=3600)
    assert report.blobs_removed == 1 and not blob_exists(root, sha)


@BOTH
def test_references_are_checked_again_right_before_each_delete(
    regctl_proc, root, tmp_path, monkeypatch
):
    blob_root(regctl_proc, root, tmp_path, os.urandom(5000))
    regctl_proc("archive", "m", "v1", check=True)
    regctl_proc("purge", "m", "v1", "--reason", "old", check=True)
    sha = own_sha(root, "v1")
    _age_everything(monkeypatch, 7200.0)
    aged = blob_gc.blob_info
    calls = []

    def publish_starts_meanwhile(store, digest):
        calls.append(digest)
        if len(calls) == 1:  # after the scan, before the delete: a publish announces it
            _marker(root, [digest], _iso(0))
        return aged(store, digest)

    monkeypatch.setattr(blob_gc, "blob_info", publish_starts_meanwhile)
    report = ModelRegistry(root).gc(grace_s=3600)
    assert calls and report.blobs_removed == 0 and blob_exists(root, sha)


@pytest.mark.folder_only("processes racing on one folder root")
def test_gc_racing_publishes_never_breaks_a_version(regctl_proc, root, tmp_path):
    import subprocess

    from tests.conftest import regctl_cmd

    shared = os.urandom(200_000)
    blob_root(regctl_proc, root, tmp_path, shared, count=2)
    srcs = []
    for i in range(6):
        src = tmp_path / f"race-{i}"
        src.mkdir()
        (src / "shared.bin").write_bytes(shared)
        (src / "own.bin").write_bytes(os.urandom(100_000))
        srcs.append(src)
    publishers = [
        subprocess.Popen(
            regctl_cmd(
                "--root", str(root), "publish", "m", str(s / "shared.bin"), str(s / "own.bin")
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for s in srcs
    ]
    gcs = 0
    try:
        while any(p.poll() is None for p in publishers) or gcs < 3:
            res = regctl_proc("gc", "--dedup", "--json")
            assert res.returncode == 0, res.stderr
            gcs += 1
    finally:
        for p in publishers:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    assert regctl_proc("verify").returncode == 0
    regctl_proc("gc", "--dedup", check=True)
    state = json.loads((root / "models/m/model.yaml").read_text())
    assert state["versions"] == "1-8"
    for v in range(1, 9):
        manifest = json.loads((root / f"models/m/v{v}/manifest.json").read_text())
        for f in manifest["files"]:
            assert blob_exists(root, f["sha256"])
    assert regctl_proc("verify").returncode == 0
