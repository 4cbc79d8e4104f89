"""Content-addressed storage on a folder root: blobs, hard links, dedup, crash safety,
the hard-link fallback, and remote publishes through a real serve-registry."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.remote.registry import RemoteRegistry
from registry_cli.server.launch import ServeRegistryProcess
from registry_cli.storage import fs_blobs
from registry_cli.storage.atomic import is_temp_sibling
from tests.cas_helpers import bundle_bytes
from tests.conftest import regctl_cmd
from tests.test_server import make_root, server_env


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blobs(root: Path) -> dict[str, Path]:
    """Every final blob name -> path (temporary names excluded)."""
    folder = root / "blobs" / "sha256"
    return {p.name: p for p in folder.glob("??/*")} if folder.is_dir() else {}


def leftovers(root: Path) -> list[str]:
    """Temporary blobs and pending markers left behind."""
    temps = [p.name for p in (root / "blobs" / "sha256").glob(".*") if is_temp_sibling(p.name)]
    pending = [p.name for p in (root / ".regctl" / "pending").glob("*")]
    return temps + pending


def stored_bytes(root: Path) -> int:
    """What ``du`` counts: the blocks of every distinct inode below ``root``."""
    out = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def same_file(a: Path, b: Path) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def test_payload_files_are_hard_links_of_read_only_blobs(tmp_path):
    src = tmp_path / "run"
    (src / "sub").mkdir(parents=True)
    big = os.urandom(3 * (1 << 20) + 7)
    (src / "w.bin").write_bytes(big)
    (src / "sub" / "c.txt").write_text("config")
    (src / "empty").write_bytes(b"")
    reg = ModelRegistry(tmp_path / "r")
    info = reg.publish("m", [src])
    found = blobs(reg.root)
    assert set(found) == {sha(big), sha(b"config"), sha(b"")}
    for f in json.loads((info.path / "manifest.json").read_text())["files"]:
        assert same_file(info.path / f["path"], found[f["sha256"]])
        assert os.stat(found[f["sha256"]]).st_mode & 0o777 == 0o444
    assert not (info.path / "bundle.tar.gz").exists()  # level 0: assembled when read
    facts = info.bundle
    assert facts["stored"] is False and isinstance(facts["mtime"], int)
    bundle_bytes(info.path)  # the recorded sha256 and size are those of the bundle
    # the served tree keeps hard links of the payload, as before
    served = reg.root / "dist/dev/m/versions/v1/payload/run/w.bin"
    assert same_file(served, found[sha(big)])
    assert leftovers(reg.root) == []
    assert reg.verify().ok


def test_the_same_bytes_are_stored_once_across_models_and_versions(tmp_path):
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(4 << 20))
    first = reg.publish("team/a", [weights])
    before = stored_bytes(reg.root)
    assert before <= (4 << 20) * 1.05 + 256 * 1024  # no second copy for the bundle
    copy = tmp_path / "other" / "w.bin"
    copy.parent.mkdir()
    copy.write_bytes(weights.read_bytes())
    second = reg.publish("team/a", [copy])
    third = reg.publish("team/b", [weights])
    assert len(blobs(reg.root)) == 1
    assert same_file(first.path / "payload/w.bin", second.path / "payload/w.bin")
    assert same_file(first.path / "payload/w.bin", third.path / "payload/w.bin")
    assert stored_bytes(reg.root) - before < 256 * 1024  # documents only
    assert reg.verify().ok


def test_republishing_known_bytes_writes_no_temporary_blob(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(2 << 20))
    reg.publish("m", [weights])
    written: list[Path] = []
    real = fs_blobs.incoming
    monkeypatch.setattr(
        fs_blobs, "incoming", lambda root: written.append(real(root)) or written[-1]
    )
    reg.publish("m", [weights])
    assert written == []  # hashed first (a blob of its size exists), found, linked
    other = tmp_path / "x.bin"
    other.write_bytes(os.urandom(2 << 20))  # the same size, other bytes: copied after all
    reg.publish("m", [other])
    assert len(written) == 1 and not written[0].exists()
    assert len(blobs(reg.root)) == 2 and reg.verify().ok


def test_a_pending_marker_lists_the_blobs_while_a_publish_runs(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    seen: list[dict] = []
    real = fs_blobs.adopt

    def adopt(root, tmp, sha256, **kw):
        for marker in (root / ".regctl" / "pending").glob("*.json"):
            seen.append(json.loads(marker.read_text()))
        return real(root, tmp, sha256, **kw)

    monkeypatch.setattr(fs_blobs, "adopt", adopt)
    reg.publish("m", [weights])
    assert len(seen) == 1 and seen[0]["blobs"] == [sha(b"weights")]
    assert isinstance(seen[0]["created"], str)
    assert leftovers(reg.root) == []


def test_a_failed_publish_leaves_no_marker_and_no_temporary_blob(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))

    def boom(*a, **k):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fs_blobs, "adopt", boom)
    with pytest.raises(OSError):
        reg.publish("m", [weights])
    monkeypatch.undo()
    assert leftovers(reg.root) == [] and blobs(reg.root) == {}
    assert reg.list_versions("m") == []


@pytest.mark.parametrize("refused", [errno.EXDEV, errno.EPERM])
def test_without_hard_links_payload_files_are_copies_and_doctor_says_so(
    tmp_path, monkeypatch, refused
):
    def no_links(*a, **k):
        raise OSError(refused, os.strerror(refused))

    monkeypatch.setattr(fs_blobs, "hard_link", no_links)  # every blob link fails
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))
    info = reg.publish("m", [weights])
    again = reg.publish("m", [weights])
    blob = blobs(reg.root)[sha(weights.read_bytes())]
    assert len(blobs(reg.root)) == 1 and leftovers(reg.root) == []
    for v in (info, again):
        payload = v.path / "payload/w.bin"
        assert payload.read_bytes() == weights.read_bytes() and not same_file(payload, blob)
        assert os.stat(payload).st_mode & 0o222 == 0
    assert reg.verify().ok
    monkeypatch.undo()
    out = subprocess.run(
        regctl_cmd("--root", str(reg.root), "doctor", "--json"), capture_output=True, text=True
    )
    checks = {c["check"]: c for c in json.loads(out.stdout)}
    assert checks["blob links"]["status"] == "warn"
    assert "copies" in checks["blob links"]["detail"]


def test_doctor_is_quiet_about_blob_links_where_they_work(tmp_path):
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    reg.publish("m", [weights])
    out = subprocess.run(
        regctl_cmd("--root", str(reg.root), "doctor", "--json"), capture_output=True, text=True
    )
    names = {c["check"] for c in json.loads(out.stdout)}
    assert "hard links" in names and "blob links" not in names


def test_concurrent_publishers_of_the_same_bytes_all_succeed_with_one_blob(tmp_path):
    root = tmp_path / "r"
    ModelRegistry(root).init()
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(8 << 20))
    procs = [
        subprocess.Popen(
            regctl_cmd("--root", str(root), "publish", f"m{i % 2}", str(weights)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    reg = ModelRegistry(root)
    assert len(reg.list_versions("m0")) == 2 and len(reg.list_versions("m1")) == 2
    (blob,) = blobs(root).values()
    assert sha(blob.read_bytes()) == blob.name
    for name in ("m0", "m1"):
        for v in reg.list_versions(name):
            assert same_file(v.path / "payload/w.bin", blob)
    assert leftovers(root) == [] and reg.verify().ok


def test_sigkill_mid_publish_leaves_no_half_blob_under_its_name(tmp_path):
    root = tmp_path / "r"
    ModelRegistry(root).init()
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(96 << 20))
    proc = subprocess.Popen(
        regctl_cmd("--root", str(root), "publish", "m", str(weights)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    folder = root / "blobs" / "sha256"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in folder.glob(".*")] if folder.is_dir() else []
            if temps and temps[0].stat().st_size > 0:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL  # killed while it was copying
    for name, path in blobs(root).items():  # whatever made it under a final name is whole
        assert sha(path.read_bytes()) == name
    temps = [p for p in (root / "blobs" / "sha256").glob(".*") if is_temp_sibling(p.name)]
    for temp in temps:  # gc removes a dead writer's temporary blob once it is old enough
        os.utime(temp, (time.time() - 7200, time.time() - 7200))
    gc = subprocess.run(regctl_cmd("--root", str(root), "gc"), capture_output=True, text=True)
    assert gc.returncode == 0, gc.stderr
    assert not [p for p in temps if p.exists()]
    reg = ModelRegistry(root)
    assert [v.version for v in reg.list_versions("m")] in ([], [1])
    info = reg.publish("m", [weights])  # the rerun completes
    assert sha((info.path / "payload/w.bin").read_bytes()) == sha(weights.read_bytes())
    assert reg.verify().ok


def test_old_versions_with_payload_files_and_bundle_keep_working(tmp_path):
    """A version written before blobs: real payload files and a bundle.tar.gz file."""
    root = tmp_path / "r"
    ModelRegistry(root).init()
    (root / "registry.yaml").write_text("bundle: {compression: 1}\n")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))
    reg = ModelRegistry(root)
    old = reg.publish("m", [weights])
    payload = old.path / "payload/w.bin"  # as the old layout had it: a file of its own
    os.chmod(old.path / "payload", 0o755)
    data = payload.read_bytes()
    os.unlink(payload)
    payload.write_bytes(data)
    os.chmod(payload, 0o444)
    os.chmod(old.path / "payload", 0o555)
    for blob in blobs(root).values():
        os.chmod(blob.parent, 0o755)
        os.unlink(blob)
    (root / "registry.yaml").write_text("")
    reg = ModelRegistry(root)
    assert reg.verify().ok
    new = reg.publish("m", [weights])
    assert (old.path / "bundle.tar.gz").is_file() and not (new.path / "bundle.tar.gz").exists()
    bundle_bytes(old.path)
    bundle_bytes(new.path)
    reg.rebuild_dist()
    assert (root / "dist/dev/m/versions/v1/bundle.tar.gz").is_file()
    assert reg.verify().ok


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    tokens = make_root(root)
    proc = ServeRegistryProcess(root, log=tmp_path / "server.log", env=server_env(tmp_path))
    proc.start()
    yield {"url": proc.url, "token": tokens["admin"], "root": root}
    assert proc.stop() == 0


def test_remote_publish_through_serve_registry_stores_blobs(server, tmp_path):
    remote = RemoteRegistry(server["url"], token=server["token"])
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(3 << 20))
    remote.publish("m", [weights])
    remote.publish("n", [weights])
    root = server["root"]
    (blob,) = blobs(root).values()
    assert blob.name == sha(weights.read_bytes())
    local = ModelRegistry(root)
    for name in ("m", "n"):
        vdir = local.get(name).path
        assert same_file(vdir / "payload/w.bin", blob)
        bundle_bytes(vdir)
    assert leftovers(root) == [] and local.verify().ok
    assert not list((root / ".regctl" / "tmp").glob("*"))  # the upload was moved, not left


def test_a_source_rewritten_in_place_is_hashed_again(tmp_path):
    """A file published before is found by its identity without a second hash; any write
    to it (even of the same size, with its mtime put back) is noticed."""
    reg = ModelRegistry(tmp_path / "r")
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))
    first = reg.publish("m", [weights])
    again = reg.publish("m", [weights])
    assert again.files == first.files
    st = os.stat(weights)
    new = os.urandom(1 << 20)
    with open(weights, "r+b") as fh:
        fh.write(new)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves
    third = reg.publish("m", [weights])
    assert third.files[0]["sha256"] == sha(new)
    assert (third.path / "payload/w.bin").read_bytes() == new
    bundle_bytes(third.path)
    assert len(blobs(reg.root)) == 2 and reg.verify().ok
