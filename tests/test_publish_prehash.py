"""A re-publish's bundle hashed from the start of `regctl publish` (storage/fs_prehash.py):
used only for exactly the planned files, unchanged, on the same root, with a level-0
bundle; the same bundle bytes and sha256 as the publish's own pass; a file written to
meanwhile is refused or read again, never recorded with another file's hash."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.publishing import Produced
from registry_cli.errors import BadInput
from registry_cli.storage import fs_blobs, fs_prehash, payload_copy
from tests.cas_helpers import bundle_bytes
from tests.conftest import regctl_cmd


@pytest.fixture
def used(monkeypatch):
    """Records, per publish, whether the prehash was used."""
    seen: list[bool] = []
    real = payload_copy._from_prehash

    def spy(*args, **kwargs):
        done = real(*args, **kwargs)
        seen.append(done is not None)
        return done

    monkeypatch.setattr(payload_copy, "_from_prehash", spy)
    return seen


def make_run(tmp_path):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "w.bin").write_bytes(os.urandom(3 * (1 << 20) + 5))
    (run / "sub" / "c.txt").write_text("config")
    (run / "empty").write_bytes(b"")
    return run


def publish_with_prehash(reg, name, paths):
    pre = fs_prehash.start([str(p) for p in paths], lambda: reg.root)
    try:
        return reg.publish(name, paths, produced=Produced(prehash=pre))
    finally:
        pre.cancel()


def test_a_republish_uses_the_prehash_and_records_the_same_bundle(tmp_path, used):
    run = make_run(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    first = reg.publish("m", [run])
    again = publish_with_prehash(reg, "n", [run])
    assert used == [True]
    assert again.files == first.files
    data = bundle_bytes(again.path)  # assembled from the blobs, checked against version.yaml
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.extractfile("payload/run/w.bin").read() == (run / "w.bin").read_bytes()
    for f in again.files:  # payload files are links to the blobs
        blob = fs_blobs.blob_path(reg.root, f["sha256"])
        assert os.stat(again.path / f["path"]).st_ino == os.stat(blob).st_ino
    assert reg.verify().ok


def test_new_bytes_or_a_compressed_bundle_do_not_use_it(tmp_path, used):
    run = make_run(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    publish_with_prehash(reg, "m", [run])  # nothing hashed before: the pass gives up
    assert used == [False]
    (reg.root / "registry.yaml").write_text("format_version: 1\nbundle: {compression: 1}\n")
    reg = ModelRegistry(tmp_path / "r")
    info = publish_with_prehash(reg, "n", [run])
    assert used == [False]  # never even tried: the bundle is compressed
    bundle_bytes(info.path)
    assert reg.verify().ok


def test_other_files_than_the_pass_framed_are_read_as_usual(tmp_path, used):
    run = make_run(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [run])
    pre = fs_prehash.start([str(run)], lambda: reg.root)
    info = reg.publish("n", [run / "w.bin"], produced=Produced(prehash=pre))
    assert used == [False]
    assert [f["path"] for f in info.files] == ["payload/w.bin"]
    bundle_bytes(info.path)


def test_a_file_written_to_before_the_publish_plans_it_is_read_again(tmp_path, used):
    run = make_run(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [run])
    pre = fs_prehash.start([str(run)], lambda: reg.root)
    assert pre.result() is not None
    (run / "sub" / "c.txt").write_text("CONFIG")  # same size, another inode state
    info = reg.publish("n", [run], produced=Produced(prehash=pre))
    assert used == [False]
    data = bundle_bytes(info.path)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.extractfile("payload/run/sub/c.txt").read() == b"CONFIG"


def test_a_file_written_to_while_the_version_is_staged_is_refused(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    reg = ModelRegistry(tmp_path / "r")
    reg.init()
    reg.publish("m", [run])
    real = fs_blobs.link_payload

    def link_then_write(blob, dst):
        done = real(blob, dst)
        with open(run / "w.bin", "r+b") as fh:
            fh.write(b"X")
        return done

    monkeypatch.setattr(fs_blobs, "link_payload", link_then_write)
    # (the prehash's own check: the publish's pass would read the new bytes instead)
    with pytest.raises(BadInput, match="changed while being published"):
        publish_with_prehash(reg, "n", [run])
    assert reg.list_versions("n") == []  # nothing committed


def test_the_cli_republish_uses_it_and_loads_no_signing_code(tmp_path):
    run = make_run(tmp_path)
    root = tmp_path / "r"
    env = dict(os.environ, NO_COLOR="1", REGCTL_ACTOR="tester")
    cmd = regctl_cmd("--root", str(root), "init")
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tmp_path, timeout=120)
    for name in ("m", "n"):
        cmd = regctl_cmd("--root", str(root), "publish", name, str(run))
        cmd[1:1] = ["-X", "importtime"]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "registry_cli.storage.fs_prehash" in names
    for module in ("registry_cli.core.signatures", "registry_cli.core.webhooks", "zipfile",
                   "registry_cli.formats.torch_program"):  # fmt: skip
        assert module not in names
    reg = ModelRegistry(root)
    assert bundle_bytes(reg.get("n:v1").path) and reg.verify().ok
