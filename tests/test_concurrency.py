"""Real processes: concurrent publishers and promoters, and SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from registry_cli import ModelRegistry
from tests.cas_helpers import bundle_bytes
from tests.conftest import regctl_cmd

pytestmark = pytest.mark.slow


def spawn(root, *args, env=None):
    return subprocess.Popen(
        regctl_cmd("--root", str(root), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, **(env or {})),
    )


def finish(procs, timeout=180):
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.append((p.returncode, stdout, stderr))
    return out


def test_sixteen_concurrent_publishers(root, model_file):
    ModelRegistry(root).init()
    procs = [
        spawn(
            root,
            "publish",
            "shared",
            str(model_file),
            "--metric",
            f"run={i}",
            "--json",
            env={"REGCTL_ACTOR": f"ci-{i}"},
        )
        for i in range(16)
    ]
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
    versions = sorted(json.loads(out)["version"] for _c, out, _e in results)
    assert sorted(int(v[1:]) for v in versions) == list(range(1, 17))
    reg = ModelRegistry(root)
    state = reg.model_state("shared")
    assert list(state.versions) == list(range(1, 17))
    # LATEST and candidate end on the highest version whatever the finishing order
    assert state.latest["dev"] == 16 and state.aliases["candidate"] == 16
    entries = [e for e in reg.audit("shared").entries if e["action"] == "publish"]
    assert len(entries) == 16
    assert sorted(e["actor"] for e in entries) == sorted(f"ci-{i}" for i in range(16))
    assert reg.verify().ok
    assert not list((root / ".regctl" / "tmp").iterdir())


def test_concurrent_promote_and_rollback_keep_one_champion(root, model_file):
    reg = ModelRegistry(root)
    for _ in range(4):
        reg.publish("m", [model_file])
        reg.promote("m")
    before = reg.model_state("m")
    start_aliases = before.all_aliases()
    start_audit = len(reg.audit("m").entries)
    procs = []
    for i in range(8):
        if i % 2:
            procs.append(spawn(root, "rollback", "m"))
        else:
            procs.append(spawn(root, "promote", "m", "--version", f"v{1 + i // 2}"))
    results = finish(procs)
    for code, _out, err in results:
        assert code in (0, 4), err  # a rollback may find nothing left to roll back to
    state = reg.model_state("m")
    champions = [v for v in state.versions if state.aliases.get("champion") == v]
    assert len(champions) == 1
    # replay the audit log: each change starts from the value the previous one left
    entries = reg.audit("m").entries[start_audit:]
    assert len(entries) == sum(1 for c, _o, _e in results if c == 0)
    current = {a: f"v{v}" for a, v in start_aliases.items()}
    for e in entries:
        assert e["action"] in ("promote", "rollback")
        for alias, (old, new) in (e["details"].get("aliases") or {}).items():
            assert current.get(alias) == old, (e, current)
            if new is None:
                current.pop(alias, None)
            else:
                current[alias] = new
    assert current == {a: f"v{v}" for a, v in state.all_aliases().items()}
    assert reg.verify().ok


def assert_served_tree_consistent(dist):
    """Every index.json names only versions whose files are there; LATEST is listed."""
    for index in dist.rglob("index.json"):
        doc = json.loads(index.read_text())
        listed = {e["version"] for e in doc["versions"]}
        for v in listed:
            served = index.parent / "versions" / v
            bundle_stored = (served / "bundle.tar.gz").is_file() or all(
                (served / f["path"]).is_file()  # a level-0 bundle: assembled from these
                for f in json.loads((served / "manifest.json").read_text())["files"]
            )
            assert bundle_stored, (index, v)
            assert (index.parent / "versions" / v / "manifest.json").is_file(), (index, v)
        latest = index.parent / "LATEST"
        if latest.exists():
            assert latest.read_text().strip() in listed


def test_sigkill_mid_publish_never_leaves_a_visible_partial_version(root, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(24):
            fh.write(os.urandom(1 << 20))
    reg = ModelRegistry(root)
    reg.publish("m", [big])
    # calibrate: how long a whole publish process takes here
    t0 = time.monotonic()
    finish([spawn(root, "publish", "m", str(big))])
    span = time.monotonic() - t0
    rng = random.Random(1234)
    seen_max = 0
    killed_mid_way = 0
    for _ in range(24):
        p = spawn(root, "publish", "m", str(big))
        time.sleep(rng.uniform(0.0, span * 1.1))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed_mid_way += 1
        p.communicate(timeout=60)
        # readers see only complete versions
        state = ModelRegistry(root).model_state("m")
        for v in state.versions:
            vdir = root / "models" / "m" / f"v{v}"
            assert (vdir / "manifest.json").is_file()
            bundle_bytes(vdir)  # complete: the bundle matches its recorded sha256
            assert (vdir / "version.yaml").is_file()
        # models/ is always intact; dist/ may lag behind a writer killed after its
        # commit (gc repairs that), but what it serves is never torn
        problems = ModelRegistry(root).verify("m").problems
        assert [p for p in problems if "dist" not in p.problem] == []
        assert_served_tree_consistent(root / "dist")
        assert state.versions.max() >= seen_max
        seen_max = state.versions.max()
    assert killed_mid_way >= 10  # the test really interrupted publishes
    report = ModelRegistry(root).gc()
    assert report.kept_in_use == []
    assert not list((root / ".regctl" / "tmp").iterdir())
    state = ModelRegistry(root).model_state("m")
    on_disk = sorted(int(p.name[1:]) for p in (root / "models" / "m").glob("v*"))
    assert on_disk == list(state.versions)  # no unrecorded vN folders remain
    # numbers are never reused: the next publish is above every number ever reserved
    info = ModelRegistry(root).publish("m", [big])
    assert info.version >= state.next_version
    assert ModelRegistry(root).verify().ok


def test_gc_keeps_a_publish_that_is_still_running(root, tmp_path):
    from registry_cli.storage import locks

    reg = ModelRegistry(root)
    reg.init()
    live = root / ".regctl" / "tmp" / "publish-live"
    live.mkdir(parents=True)
    dead = root / ".regctl" / "tmp" / "publish-dead"
    (dead / "version" / "payload").mkdir(parents=True)
    (dead / "version" / "payload" / "x").write_bytes(b"x")
    os.chmod(dead / "version" / "payload", 0o555)
    with locks.hold(live / ".alive", what="test"):
        report = reg.gc()
    assert report.kept_in_use == [str(live)]
    assert report.removed == [str(dead)]
    assert live.exists() and not dead.exists()


def test_gc_keeps_a_scratch_folder_made_a_moment_before_its_lock(root, tmp_path):
    """A publish makes its scratch folder, then locks it: a gc in between must not take
    the folder of a process that runs, but takes one whose process is gone."""
    reg = ModelRegistry(root)
    reg.init()
    scratch = root / ".regctl" / "tmp"
    unlocked = scratch / f"publish-{os.getpid()}-0123456789ab"
    (unlocked / "version").mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid no longer runs
    orphan = scratch / f"publish-{gone.pid}-ba9876543210"
    (orphan / "version").mkdir(parents=True)
    report = reg.gc()
    assert report.kept_in_use == [str(unlocked)]
    assert report.removed == [str(orphan)]
    old = time.time() - 120  # and a folder that never got its lock goes after a minute
    os.utime(unlocked, (old, old))
    assert reg.gc().removed == [str(unlocked)]


def test_unrecorded_version_folder_is_invisible_and_collected(reg, root, model_file):
    reg.publish("m", [model_file])
    ghost = root / "models" / "m" / "v2"
    ghost.mkdir()
    (ghost / "manifest.json").write_text("{}")
    assert [v.vname for v in reg.list_versions("m")] == ["v1"]
    assert reg.get("m").vname == "v1"
    report = reg.gc()
    assert str(ghost) in report.removed and not ghost.exists()
    # and the number is not reused either
    assert reg.publish("m", [model_file]).vname == "v3"
