"""Publishing: copy never move, checksums, bundle, read-only payload, bad input loses nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
import yaml

from registry_cli import BadInput, ModelRegistry, NotFound, RuleViolation
from tests.cas_helpers import bundle_bytes


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_snapshot(path: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = (p.stat().st_mode, sha(p))
    return out


@pytest.mark.folder_only("reads the version through its local folder (info.path)")
def test_publish_copies_file_and_records_checksums(reg, root, model_file):
    before = (model_file.stat().st_mode, sha(model_file), model_file.stat().st_mtime_ns)
    info = reg.publish(
        "faq-bot",
        [model_file],
        metrics={"accuracy": 0.9},
        tags={"dataset": "d1"},
        params={"lr": "0.1"},
        description="first",
    )
    # the source is untouched
    assert (model_file.stat().st_mode, sha(model_file), model_file.stat().st_mtime_ns) == before
    vdir = root / "models" / "faq-bot" / "v1"
    assert info.path == vdir and info.vname == "v1"
    copied = vdir / "payload" / "model.pt"
    assert copied.read_bytes() == model_file.read_bytes()
    # payload is read-only
    assert not copied.stat().st_mode & 0o222
    assert not (vdir / "payload").stat().st_mode & 0o222
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["files"] == [
        {"path": "payload/model.pt", "size": model_file.stat().st_size, "sha256": sha(model_file)}
    ]
    assert manifest["format_version"] == 1
    assert manifest["metrics"] == {"accuracy": 0.9}
    assert manifest["params"] == {"lr": "0.1"}
    assert manifest["tags"] == {"dataset": "d1"}
    assert manifest["description"] == "first"
    assert manifest["preferred_weight"] == "payload/model.pt"
    assert manifest["source"]["type"] == "local"
    assert manifest["created_by"] == "tester"
    facts = yaml.safe_load((vdir / "version.yaml").read_text())
    assert facts["format_version"] == 1
    assert facts["files"] == manifest["files"]
    data = bundle_bytes(vdir)  # the recorded sha256 and size are those of the bytes served
    assert facts["bundle"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert facts["bundle"]["size"] == len(data)
    assert info.bundle["sha256"] == facts["bundle"]["sha256"]


@pytest.mark.folder_only("opens the bundle through its local path")
def test_bundle_holds_exactly_payload_and_manifest(reg, root, tmp_path):
    src = tmp_path / "run"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"a" * 100)
    (src / "sub" / "deeper" / "b.txt").write_text("hello")
    info = reg.publish("nested/team/model", [src])
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(bundle_bytes(info.path))
    with gzip.open(bundle) as gz:
        gz.read(1)  # a real gzip stream
    with tarfile.open(bundle) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert names == ["manifest.json", "payload/run/a.bin", "payload/run/sub/deeper/b.txt"]
        assert all(not m.issym() and not m.islnk() for m in tar.getmembers())
        inner = json.load(tar.extractfile("manifest.json"))
    assert inner == json.loads((info.path / "manifest.json").read_text())
    assert [f["path"] for f in inner["files"]] == [
        "payload/run/a.bin",
        "payload/run/sub/deeper/b.txt",
    ]


def test_bundle_compression_is_configurable(tmp_path, model_file):
    root = tmp_path / "r"
    root.mkdir()
    (root / "registry.yaml").write_text("bundle: {compression: best}\n")
    model_file.write_bytes(b"\0" * 200_000)
    info = ModelRegistry(root).publish("m", [model_file])
    assert info.bundle["compression"] == "gzip-9"
    assert info.bundle["size"] < 10_000  # zeros compress at level 9
    info0 = ModelRegistry(tmp_path / "r0").publish("m", [model_file])
    assert info0.bundle["compression"] == "gzip-0"
    assert info0.bundle["size"] > 200_000  # stored blocks


def test_several_paths_and_duplicate_names(reg, tmp_path):
    a = tmp_path / "x" / "w.pt"
    b = tmp_path / "y" / "w.pt"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"1")
    with pytest.raises(BadInput, match="both be payload/w.pt"):
        reg.publish("m", [a, b])
    assert not (reg.root / "models" / "m" / "v1").exists()
    c = tmp_path / "x" / "extra.json"
    c.write_text("{}")
    info = reg.publish("m", [a, c])
    assert sorted(f["path"] for f in info.files) == ["payload/extra.json", "payload/w.pt"]


def test_symlink_escaping_source_dir_is_refused(reg, root, tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    (src / "ok.bin").write_bytes(b"ok")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish")
    (src / "leak").symlink_to(secret)
    with pytest.raises(BadInput, match="points outside"):
        reg.publish("m", [src])
    assert not (root / "models" / "m").exists() or not list((root / "models" / "m").glob("v*"))


@pytest.mark.folder_only("reads the payload through its local folder")
def test_symlink_inside_source_dir_is_copied_as_a_file(reg, tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    (src / "real.bin").write_bytes(b"weights")
    (src / "alias.bin").symlink_to("real.bin")
    info = reg.publish("m", [src])
    copied = info.path / "payload" / "run" / "alias.bin"
    assert not copied.is_symlink() and copied.read_bytes() == b"weights"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "bad name",
        "-lead",
        "a//b",
        "a/../b",
        "../x",
        "/abs",
        "m/v3",
        "v1",
        "a@b",
        "a:b",
        "x" * 65,
        "ok/./x",
        "é",
    ],
)
def test_invalid_names_are_refused_before_touching_disk(cli, root, model_file, name):
    res = cli("publish", "--", name, str(model_file))
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("error: ")
    assert "Traceback" not in res.stderr
    assert not root.exists()


def test_missing_source_is_exit_3_and_writes_nothing(cli, root, tmp_path):
    res = cli("publish", "m", str(tmp_path / "nope.pt"))
    assert res.exit_code == 3
    assert "does not exist" in res.stderr
    assert not root.exists()


def test_publish_into_later_stage_is_refused(cli, root, model_file):
    res = cli("publish", "m", str(model_file), "--stage", "release")
    assert res.exit_code == 4
    assert "promote" in res.stderr
    res = cli("publish", "m", str(model_file), "--stage", "nosuch")
    assert res.exit_code == 2
    assert not root.exists()


def test_bad_metric_is_exit_2(cli, root, model_file):
    res = cli("publish", "m", str(model_file), "--metric", "acc=high")
    assert res.exit_code == 2 and "not a number" in res.stderr
    res = cli("publish", "m", str(model_file), "--tag", "novalue")
    assert res.exit_code == 2 and "KEY=VALUE" in res.stderr
    assert not root.exists()


def test_versions_never_reused_after_gc(reg, root, model_file):
    reg.publish("m", [model_file])
    # simulate a crash after the number was reserved: next_version moved on, nothing committed
    state = yaml.safe_load((root / "models" / "m" / "model.yaml").read_text())
    state["next_version"] = 3
    (root / "models" / "m" / "model.yaml").write_text(yaml.safe_dump(state))
    info = reg.publish("m", [model_file])
    assert info.vname == "v3"
    assert [v.vname for v in reg.list_versions("m")] == ["v1", "v3"]


def test_derived_from_records_lineage_and_must_exist(reg, model_file):
    base = "donghwa/busan-plant1/welding/ppe"
    reg.publish(base, [model_file])
    reg.publish(base, [model_file])
    info = reg.publish(f"{base}__openvino_int8", [model_file], derived_from=f"{base}:v2")
    assert info.derived_from == f"{base}:v2"
    with pytest.raises(NotFound):
        reg.publish(f"{base}__onnx_fp16", [model_file], derived_from=f"{base}:v9")


def test_name_prefix_conflicts(reg, model_file, cli):
    reg.publish("a/b", [model_file])
    with pytest.raises(RuleViolation):
        reg.publish("a/b/c", [model_file])
    with pytest.raises(RuleViolation):
        reg.publish("a", [model_file])
    res = cli("publish", "a/b/c", str(model_file))
    assert res.exit_code == 4 and "conflicts" in res.stderr
    reg.publish("a/b__int8", [model_file])  # a variant is not a segment prefix
    assert sorted(m.name for m in reg.list_models()) == ["a/b", "a/b__int8"]


def test_preferred_weight_rules(reg, tmp_path):
    src = tmp_path / "run"
    (src / "sub").mkdir(parents=True)
    (src / "a.onnx").write_bytes(b"x")
    (src / "sub" / "model.pt2").write_bytes(b"x")
    assert reg.publish("m", [src]).preferred_weight == "payload/run/sub/model.pt2"
    (src / "sub" / "model-standard.pt").write_bytes(b"x")
    assert reg.publish("m", [src]).preferred_weight == "payload/run/sub/model-standard.pt"
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert reg.publish("n", [other]).preferred_weight == "payload"


def test_publish_json_document(cli, model_file):
    res = cli("publish", "m", str(model_file), "--metric", "acc=0.5", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    for key in (
        "name",
        "version",
        "status",
        "stages",
        "aliases",
        "tags",
        "metrics",
        "params",
        "description",
        "created_at",
        "created_by",
        "source",
        "files",
        "derived_from",
        "path",
        "preferred_weight",
        "bundle",
    ):
        assert key in doc
    assert doc["version"] == "v1" and doc["aliases"] == ["candidate"] and doc["stages"] == ["dev"]
    assert os.path.isabs(doc["path"])
    assert set(doc["bundle"]) >= {"path", "sha256", "size"}
    # a level-0 bundle is assembled from the payload when read: no file, no path
    assert doc["bundle"]["stored"] is False and doc["bundle"]["path"] is None


def test_no_latest_and_no_alias(reg, model_file):
    reg.publish("m", [model_file])
    reg.publish("m", [model_file], set_latest=False, set_alias=False)
    state = reg.model_state("m")
    assert state.latest["dev"] == 1 and state.aliases["candidate"] == 1


@pytest.mark.folder_only("file modes exist on a folder only")
def test_files_are_not_writable_by_group_or_others(reg, model_file):
    info = reg.publish("m", [model_file])
    for p in (info.path / "manifest.json", info.path / "version.yaml", *info.path.rglob("*.pt")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o444
    for p in (reg.root / "blobs").rglob("*"):
        assert p.is_dir() or stat.S_IMODE(p.stat().st_mode) == 0o444


@pytest.mark.parametrize("level", ["stored", "fast"])
def test_bundle_round_trips_large_and_empty_files(tmp_path, level):
    root = tmp_path / "r"
    root.mkdir()
    (root / "registry.yaml").write_text(f"bundle: {{compression: {level}}}\n")
    src = tmp_path / "run"
    src.mkdir()
    big = os.urandom(3 * (1 << 20) + 12345)  # crosses chunk and 64 KiB block boundaries
    (src / "big.bin").write_bytes(big)
    (src / "empty.txt").write_bytes(b"")
    (src / "ünïcode name.txt").write_text("x" * 511)
    info = ModelRegistry(root).publish("m", [src])
    out = tmp_path / "out"
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(bundle_bytes(info.path))
    with tarfile.open(bundle) as tar:
        tar.extractall(out, filter="data")
    assert (out / "payload" / "run" / "big.bin").read_bytes() == big
    assert (out / "payload" / "run" / "empty.txt").read_bytes() == b""
    assert (out / "payload" / "run" / "ünïcode name.txt").read_text() == "x" * 511
    with gzip.open(bundle) as gz:  # crc32 and length trailer check
        while gz.read(1 << 20):
            pass
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == info.bundle["sha256"]


def test_source_growing_while_published_is_refused(reg, tmp_path, monkeypatch):
    from registry_cli.storage import payload

    src = tmp_path / "grow.bin"
    src.write_bytes(b"a" * 1000)
    real_plan = payload.plan_payload

    def plan_then_grow(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        src.write_bytes(b"a" * 5000)  # the file changes after planning
        return planned

    monkeypatch.setattr(payload, "plan_payload", plan_then_grow)
    with pytest.raises(BadInput, match="changed size"):
        reg.publish("m", [src])
    assert reg.list_versions("m") == []
    assert not list((reg.root / ".regctl" / "tmp").iterdir())


def test_publish_with_fsync_configured(tmp_path, model_file):
    root = tmp_path / "r"
    root.mkdir()
    (root / "registry.yaml").write_text("publish: {fsync: true}\n")
    reg = ModelRegistry(root)
    assert reg.config.publish_fsync is True
    info = reg.publish("m", [model_file])
    assert (info.path / "payload" / "model.pt").read_bytes() == model_file.read_bytes()
    assert reg.verify().ok
