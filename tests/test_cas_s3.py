"""Content-addressed storage on an s3:// root (moto's S3 server): one object per
distinct payload file, a served tree that points at the blobs, readers that find
them, concurrent publishers of the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from registry_cli import BadInput, ModelRegistry
from registry_cli.storage import s3_transfer
from tests.conftest import regctl_cmd


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_keys(s3_root) -> list[str]:
    return [k for k in s3_root.keys() if k.startswith("blobs/sha256/")]


def test_each_distinct_file_is_one_object_uploaded_once(s3_root, tmp_path, monkeypatch):
    src = tmp_path / "run"
    src.mkdir()
    big = os.urandom(20 << 20)  # above the multipart threshold
    (src / "w.bin").write_bytes(big)
    (src / "c.txt").write_text("config")
    uploads: list[str] = []
    for fn in ("_put_new", "_put_multipart"):
        real = getattr(s3_transfer, fn)

        def counted(store, path, key, *rest, _real=real):
            if key.startswith("blobs/"):
                uploads.append(key)
            return _real(store, path, key, *rest)

        monkeypatch.setattr(s3_transfer, fn, counted)
    reg = ModelRegistry(s3_root)
    reg.publish("a", [src])
    assert sorted(uploads) == sorted(
        f"blobs/sha256/{s[:2]}/{s}" for s in (sha(big), sha(b"config"))
    )
    uploads.clear()
    reg.publish("a", [src])
    reg.publish("b", [src / "w.bin"])
    assert uploads == []  # HEAD found every blob: nothing uploaded again
    assert sorted(blob_keys(s3_root)) == sorted(
        f"blobs/sha256/{s[:2]}/{s}" for s in (sha(big), sha(b"config"))
    )
    assert (s3_root / f"blobs/sha256/{sha(big)[:2]}/{sha(big)}").read_bytes() == big
    keys = s3_root.keys()
    assert not [k for k in keys if "/payload/" in k]  # neither in versions nor in dist/
    assert not [k for k in keys if k.startswith(".regctl/pending/")]
    assert reg.verify().ok


def test_served_documents_say_where_the_blobs_are(s3_root, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    reg = ModelRegistry(s3_root)
    reg.publish("team/ppe", [weights])
    reg.promote("team/ppe")
    base = "dist/release/team/ppe"
    for doc in (
        json.loads((s3_root / f"{base}/LATEST.json").read_text()),
        json.loads((s3_root / f"{base}/index.json").read_text())["versions"][0],
    ):
        assert doc["blobs"] == "../../../../blobs/sha256"
        assert {"version", "sha256", "size", "published_at"} <= doc.keys()  # as before
    # the pointer resolves, relative to the document's folder, to the payload file
    manifest = json.loads((s3_root / f"{base}/versions/v1/manifest.json").read_text())
    (entry,) = manifest["files"]
    rel = Path(base, "../../../../blobs/sha256", entry["sha256"][:2], entry["sha256"])
    assert (s3_root / os.path.normpath(rel)).read_bytes() == b"weights"


def test_readers_of_the_payload_find_it_in_the_blobs(s3_root, tmp_path, cli):
    weights = tmp_path / "w.pt"
    weights.write_bytes(os.urandom(4096))
    reg = ModelRegistry(s3_root)
    reg.publish("m", [weights])
    res = cli(
        "resolve", "m", "--path", root_dir=s3_root
    )  # the local cache copy, fetched from the blobs
    assert res.exit_code == 0, res.stderr
    assert Path(res.stdout.strip()).read_bytes() == weights.read_bytes()
    assert cli("verify", root_dir=s3_root).exit_code == 0
    (blob,) = blob_keys(s3_root)
    (s3_root / blob).write_bytes(b"tampered")
    res = cli("verify", "--json", root_dir=s3_root)
    assert res.exit_code == 5
    assert any(blob in p["path"] for p in json.loads(res.stdout)["problems"])


def test_a_blob_lost_during_the_publish_is_uploaded_again_after_the_commit(
    s3_root, tmp_path, monkeypatch
):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    reg = ModelRegistry(s3_root)
    calls: list[int] = []
    real = s3_transfer.put_blobs

    def racing_gc(store, blobs, stop=None, announce=None):
        real(store, blobs, stop, announce)
        calls.append(1)
        if len(calls) == 1:  # a gc elsewhere deletes it before this publish commits
            (s3_root / f"blobs/sha256/{sha(b'weights')[:2]}/{sha(b'weights')}").unlink()

    monkeypatch.setattr(s3_transfer, "put_blobs", racing_gc)
    reg.publish("m", [weights])
    assert len(calls) == 2
    assert len(blob_keys(s3_root)) == 1 and reg.verify().ok


def test_concurrent_publishers_of_the_same_bytes_on_s3(s3_root, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))
    procs = [
        subprocess.Popen(
            regctl_cmd("--root", str(s3_root), "publish", f"m{i}", str(weights)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    (blob,) = blob_keys(s3_root)
    assert blob.endswith(sha(weights.read_bytes()))
    assert ModelRegistry(s3_root).verify().ok


def test_a_source_changed_before_its_upload_is_refused_and_its_blob_removed(
    s3_root, tmp_path, monkeypatch
):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"first bytes")
    real = s3_transfer.put_blobs

    def rewrite_then_upload(store, blobs, stop=None, announce=None):
        weights.write_bytes(b"other bytes")  # after the hash, before the upload
        return real(store, blobs, stop, announce)

    monkeypatch.setattr(s3_transfer, "put_blobs", rewrite_then_upload)
    reg = ModelRegistry(s3_root)
    # the rewrite truncates first: the bundle pass, on its own thread, may see the file
    # short ("changed size") before the identity check sees it changed; both refuse
    with pytest.raises(BadInput, match="changed (size )?while being published"):
        reg.publish("m", [weights])
    assert blob_keys(s3_root) == []  # no blob whose bytes differ from its name
    assert not [k for k in s3_root.keys() if k.startswith(".regctl/pending/")]


def test_a_source_changed_while_its_blob_goes_up_is_refused_and_its_blob_removed(
    s3_root, tmp_path, monkeypatch
):
    from registry_cli.core import publishing

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"first bytes")
    real = publishing.write_payload_and_bundle

    def rewrite_then_bundle(*args, **kwargs):
        # the upload runs on its thread meanwhile; same size, so only the identity shows it
        weights.write_bytes(b"other bytes")
        return real(*args, **kwargs)

    monkeypatch.setattr(publishing, "write_payload_and_bundle", rewrite_then_bundle)
    reg = ModelRegistry(s3_root)
    with pytest.raises(BadInput, match="changed while being published"):
        reg.publish("m", [weights])
    assert blob_keys(s3_root) == []
    assert not [k for k in s3_root.keys() if k.startswith(".regctl/pending/")]
    assert reg.list_versions("m") == []


def test_a_failed_bundle_pass_waits_for_the_upload_and_leaves_no_marker(
    s3_root, tmp_path, monkeypatch
):
    from registry_cli.core import publishing

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    uploaded: list[str] = []
    real = s3_transfer.put_blobs

    def recording(store, blobs, stop=None, announce=None):
        done = real(store, blobs, stop, announce)
        uploaded.extend(done)
        return done

    def failing(*_args, **_kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(s3_transfer, "put_blobs", recording)
    monkeypatch.setattr(publishing, "write_payload_and_bundle", failing)
    with pytest.raises(OSError, match="disk gone"):
        ModelRegistry(s3_root).publish("m", [weights])
    assert uploaded == [sha(b"weights")]  # the upload ended before the publish did
    keys = s3_root.keys()
    assert not [k for k in keys if k.startswith((".regctl/pending/", ".regctl/tmp/"))]
    assert not [k for k in keys if k.startswith("models/m/v")]


def test_an_interrupted_publish_starts_no_more_parts_and_aborts_its_upload(
    s3_root, tmp_path, monkeypatch
):
    from registry_cli.core import publishing

    monkeypatch.setattr(s3_transfer, "PART", 5 << 20)
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(30 << 20))
    real = s3_transfer.put_blobs

    def after_the_interrupt(store, blobs, stop=None):
        assert stop is not None and stop.wait(30)
        return real(store, blobs, stop)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(s3_transfer, "put_blobs", after_the_interrupt)
    monkeypatch.setattr(publishing, "write_payload_and_bundle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ModelRegistry(s3_root).publish("m", [weights])
    assert blob_keys(s3_root) == []
    listing = s3_root.client.list_multipart_uploads(Bucket=s3_root.bucket)
    assert listing.get("Uploads", []) == []  # aborted, not left for gc
    assert not [k for k in s3_root.keys() if k.startswith(".regctl/pending/")]


def test_large_blobs_go_up_in_parts_each_with_a_checksum(s3_root, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_transfer, "PART", 5 << 20)  # the smallest part S3 takes
    big = os.urandom((11 << 20) + 7)
    weights = tmp_path / "w.bin"
    weights.write_bytes(big)
    reg = ModelRegistry(s3_root)
    reg.publish("m", [weights])
    key = f"{s3_root.key}/blobs/sha256/{sha(big)[:2]}/{sha(big)}"
    head = s3_root.client.head_object(Bucket=s3_root.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head.get("ChecksumCRC32")  # each part's CRC32 checked, the object's composed
    assert head.get("ChecksumType", "COMPOSITE") == "COMPOSITE"
    assert (s3_root / f"blobs/sha256/{sha(big)[:2]}/{sha(big)}").read_bytes() == big
    assert reg.verify().ok


def test_the_pending_marker_names_every_blob_before_one_goes_up(s3_root, tmp_path, monkeypatch):
    src = tmp_path / "run"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a")
    (src / "b.bin").write_bytes(b"b")
    ModelRegistry(s3_root).publish("old", [src / "a.bin"])  # a.bin's blob exists already
    seen: list[dict] = []
    real = s3_transfer._put_new

    def look_first(store, path, key, stop=None):
        for name in s3_root.keys() if key.startswith("blobs/") else []:
            if name.startswith(".regctl/pending/"):
                seen.append(json.loads((s3_root / name).read_text()))
        return real(store, path, key, stop)

    monkeypatch.setattr(s3_transfer, "_put_new", look_first)
    ModelRegistry(s3_root).publish("m", [src])
    # the blob found is named too: a gc between the look and the commit spares it
    assert [sorted(doc["blobs"]) for doc in seen] == [sorted([sha(b"a"), sha(b"b")])]
    assert not [k for k in s3_root.keys() if k.startswith(".regctl/pending/")]
