"""dist/: kept current by publish/promote/rollback/archive, rebuildable, verified."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.served import documents as dist_documents
from registry_cli.core.served import tree as dist_tree
from registry_cli.storage import fs_store


def publish(reg: ModelRegistry, name: str, tmp_path: Path, seed: int, **kw):
    src = tmp_path / "src" / f"{name.replace('/', '_')}-{seed}" / "model.pt"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(os.urandom(2048) + bytes([seed % 256]))
    return reg.publish(name, [src], **kw)


def dist_files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root / "dist"):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_publish_creates_the_served_layout(reg, root, tmp_path):
    v = publish(reg, "faq-bot", tmp_path, 1)
    mdir = root / "dist" / "dev" / "faq-bot"
    assert (mdir / "LATEST").read_text() == "v1\n"
    latest = json.loads((mdir / "LATEST.json").read_text())
    assert {k: latest[k] for k in ("version", "sha256", "size", "published_at")} == {
        "version": "v1",
        "sha256": v.bundle["sha256"],
        "size": v.bundle["size"],
        "published_at": v.created_at,
    }
    index = json.loads((mdir / "index.json").read_text())
    assert index["name"] == "faq-bot" and index["stage"] == "dev" and index["latest"] == "v1"
    assert index["versions"] == [
        {
            "version": "v1",
            "status": "active",
            "sha256": v.bundle["sha256"],
            "size": v.bundle["size"],
            "published_at": v.created_at,
            "manifest_sha256": hashlib.sha256((v.path / "manifest.json").read_bytes()).hexdigest(),
        }
    ]
    assert latest["manifest_sha256"] == index["versions"][0]["manifest_sha256"]
    vdir = mdir / "versions" / "v1"
    # a level-0 bundle is assembled from the payload when served: no file of its own
    assert sorted(p.name for p in vdir.iterdir()) == ["manifest.json", "payload"]
    for rel in ("manifest.json", "payload/model.pt"):
        served, source = os.stat(vdir / rel), os.stat(v.path / rel)
        assert (served.st_ino, served.st_dev) == (source.st_ino, source.st_dev), rel  # hard link
        assert not served.st_mode & 0o222
    assert not (root / "dist" / "release").exists()  # nothing released yet
    assert reg.verify().ok


def test_nested_names_and_promotion(reg, root, tmp_path):
    publish(reg, "team/plant1/ppe", tmp_path, 1)
    publish(reg, "team/plant1/ppe", tmp_path, 2)
    reg.promote("team/plant1/ppe", version="v1")
    rel = root / "dist" / "release" / "team" / "plant1" / "ppe"
    assert (rel / "LATEST").read_text() == "v1\n"
    index = json.loads((rel / "index.json").read_text())
    assert [e["version"] for e in index["versions"]] == ["v1"]
    entered = reg.model_state("team/plant1/ppe").stage_entered["release"][1]
    assert json.loads((rel / "LATEST.json").read_text())["published_at"] == entered
    assert index["versions"][0]["published_at"] == entered
    assert sorted(os.listdir(rel / "versions")) == ["v1"]
    dev = root / "dist" / "dev" / "team" / "plant1" / "ppe"
    assert (dev / "LATEST").read_text() == "v2\n"
    assert reg.verify().ok


def test_rollback_moves_latest_with_the_older_stage_entry_time(reg, root, tmp_path):
    for seed in (1, 2):
        publish(reg, "m", tmp_path, seed)
    reg.promote("m", version="v1")
    t1 = json.loads((root / "dist/release/m/LATEST.json").read_text())["published_at"]
    reg.promote("m", version="v2")
    assert (root / "dist/release/m/LATEST").read_text() == "v2\n"
    reg.rollback("m")
    latest = json.loads((root / "dist/release/m/LATEST.json").read_text())
    assert latest["version"] == "v1" and latest["published_at"] == t1
    assert (root / "dist/release/m/LATEST").read_text() == "v1\n"
    assert reg.verify().ok


def test_archive_keeps_the_version_served_and_marks_it(reg, root, tmp_path):
    for seed in (1, 2, 3):
        publish(reg, "m", tmp_path, seed)
    reg.archive("m", "v3")
    mdir = root / "dist/dev/m"
    index = json.loads((mdir / "index.json").read_text())
    assert [(e["version"], e["status"]) for e in index["versions"]] == [
        ("v1", "active"),
        ("v2", "active"),
        ("v3", "archived"),
    ]
    assert (mdir / "versions/v3/payload/model.pt").is_file()  # pinned clients keep working
    assert (mdir / "LATEST").read_text() == "v2\n"
    assert index["latest"] == "v2"
    reg.archive("m", "v2")
    reg.archive("m", "v1")
    assert not (mdir / "LATEST").exists() and not (mdir / "LATEST.json").exists()
    assert json.loads((mdir / "index.json").read_text())["latest"] is None
    assert reg.verify().ok


def test_rebuild_reproduces_the_tree_byte_for_byte(reg, root, tmp_path, cli):
    for seed in (1, 2, 3):
        publish(reg, "a/b", tmp_path, seed)
    publish(reg, "c", tmp_path, 1)
    reg.promote("a/b", version="v2")
    reg.archive("a/b", "v1")
    before = dist_files(root)
    import shutil

    shutil.rmtree(root / "dist")
    res = cli("verify")
    assert res.exit_code == 5 and "dist" in res.stderr
    res = cli("dist", "rebuild", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["models"] == 2 and len(report["linked"]) == 5
    assert dist_files(root) == before
    assert cli("verify").exit_code == 0


@pytest.mark.parametrize(
    "damage", ["index", "latest", "latest_json", "extra", "missing", "copy", "orphan", "stage"]
)
def test_verify_finds_drift_and_rebuild_repairs_it(reg, root, tmp_path, cli, damage):
    publish(reg, "m", tmp_path, 1)
    publish(reg, "m", tmp_path, 2)
    mdir = root / "dist/dev/m"
    if damage == "index":
        doc = json.loads((mdir / "index.json").read_text())
        doc["versions"][0]["sha256"] = "0" * 64
        (mdir / "index.json").write_text(json.dumps(doc))
    elif damage == "latest":
        (mdir / "LATEST").write_text("v1\n")
    elif damage == "latest_json":
        (mdir / "LATEST.json").write_text("{torn")
    elif damage == "extra":
        (mdir / "versions/v1/payload/evil.sh").write_text("echo hi")
    elif damage == "missing":
        os.unlink(mdir / "versions/v2/payload/model.pt")
    elif damage == "copy":  # an unlinked copy with other bytes
        p = mdir / "versions/v2/payload/model.pt"
        data = bytearray(p.read_bytes())
        os.unlink(p)
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))
    elif damage == "orphan":
        (root / "dist/dev/ghost/versions/v1").mkdir(parents=True)
    elif damage == "stage":
        (root / "dist/qa").mkdir()
    res = cli("verify", "--json")
    assert res.exit_code == 5
    problems = json.loads(res.stdout)["problems"]
    assert problems and all("dist drift" in p["problem"] for p in problems), problems
    res = cli("dist", "rebuild")
    assert res.exit_code == 0, res.stderr
    assert cli("verify").exit_code == 0, cli("verify").stdout


def test_copies_when_hard_links_fail(reg, root, tmp_path, monkeypatch):
    real_link = os.link

    def no_link(src, dst, *a, **k):  # dist/ on another filesystem than models/
        if "/dist/" in str(dst):
            raise OSError(18, "Invalid cross-device link")
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(fs_store.os, "link", no_link)
    v = publish(reg, "m", tmp_path, 1)
    served = root / "dist/dev/m/versions/v1/payload/model.pt"
    assert served.read_bytes() == (v.path / "payload/model.pt").read_bytes()
    assert os.stat(served).st_ino != os.stat(v.path / "payload/model.pt").st_ino
    assert not os.stat(served).st_mode & 0o222
    assert reg.verify().ok


def test_publish_is_incremental(reg, root, tmp_path, monkeypatch):
    """A publish reads version.yaml of the new version only, and links only that one."""
    for seed in range(1, 6):
        publish(reg, "m", tmp_path, seed)
    reg.promote("m", version="v2")
    read: list[str] = []
    linked: list[Path] = []
    real_read, real_link = dist_tree.parse_version_yaml, fs_store.link_or_copy
    monkeypatch.setattr(  # every version.yaml the served tree reads
        dist_tree,
        "parse_version_yaml",
        lambda data, where: read.append(where.split("/")[-2]) or real_read(data, where),
    )
    monkeypatch.setattr(fs_store, "link_or_copy", lambda s, d: linked.append(d) or real_link(s, d))
    publish(reg, "m", tmp_path, 6)
    assert read == ["v6"]
    assert linked and all("/.v6.tmp-" in str(p) for p in linked)  # built beside, renamed in
    read.clear()
    reg.promote("m", version="v6")
    assert read == ["v6"]
    read.clear()
    reg.archive("m", "v3")
    assert read == []
    assert reg.verify().ok


def test_readers_never_see_a_torn_file(reg, root, tmp_path):
    for seed in range(1, 4):
        publish(reg, "m", tmp_path, seed)
    reg.promote("m", version="v1")
    stop = threading.Event()
    errors: list[str] = []
    seen: set[str] = set()

    def reader() -> None:
        path = root / "dist/release/m/LATEST.json"
        while not stop.is_set():
            try:
                doc = json.loads(path.read_bytes())
                seen.add(doc["version"])
                vdir = root / "dist/release/m/versions" / doc["version"]
                if not (vdir / "manifest.json").is_file():
                    errors.append(f"LATEST names {doc['version']} before it is served")
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(5):
            reg.promote("m", version="v2")
            reg.promote("m", version="v3")
            reg.rollback("m", to="v1")
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert seen >= {"v1"}


def test_sync_failure_is_reported_with_a_rebuild_hint(reg, root, tmp_path, monkeypatch):
    publish(reg, "m", tmp_path, 1)

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs_store.FsStore, "put", broken)  # every dist/ document write
    from registry_cli import RegctlError

    with pytest.raises(RegctlError) as info:
        publish(reg, "m", tmp_path, 2)
    assert "dist rebuild" in (info.value.hint or "")
    assert reg.model_state("m").latest["dev"] == 2  # the change itself is committed
    monkeypatch.undo()
    assert not reg.verify().ok
    reg.rebuild_dist()
    assert reg.verify().ok


def test_index_with_many_versions_stays_compact(tmp_path):
    entries = [
        dist_documents.IndexEntry(v, "active", "a" * 64, 1000, "2026-01-01T00:00:00Z")
        for v in range(1, 10001)
    ]
    data = dist_documents.index_bytes("m", "dev", 10000, entries)
    assert data.count(b"\n") < 10010
    doc, parsed = dist_documents.parse_index(data, "x")
    assert parsed == entries and doc["latest"] == "v10000"


def test_a_writer_killed_before_its_rename_leaves_no_drift_and_gc_removes_it(
    reg, root, tmp_path, cli
):
    """A served-tree writer SIGKILLed between its temporary write and the rename leaves
    ``.index.json.tmp-PID-HEX``: not part of the tree (verify is clean), and gc removes it
    once its process is gone and it is old enough that no other machine still writes it."""
    publish(reg, "m", tmp_path, 1)
    mdir = root / "dist/dev/m"
    young = mdir / f".index.json.tmp-{os.getpid()}-0123abcd"  # this process: alive
    young.write_text("{half")
    dead = mdir / ".LATEST.json.tmp-999999999-89abcdef"  # no such process
    dead.write_text("{half")
    old = 1_000_000_000
    os.utime(dead, (old, old))
    assert cli("verify").exit_code == 0, cli("verify").stdout
    res = cli("gc", "--json")
    assert res.exit_code == 0, res.stderr
    assert not dead.exists()
    assert young.exists()  # its writer may still rename it into place
    assert str(dead) in json.loads(res.stdout)["removed"]
    assert cli("verify").exit_code == 0
