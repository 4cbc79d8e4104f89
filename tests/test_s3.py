"""The registry in object storage (see docs/object-storage.md) against moto's S3 server on loopback.

The shared suites (test_publish, test_read, test_lifecycle, test_config_audit_verify)
run on an s3 root too (see conftest.py); this file covers what only s3 has:
the first-use probe, concurrent writers on many processes, a killed multipart
publish, the served tree without locks, fetching into the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from registry_cli import ModelRegistry
from registry_cli.storage import layout, s3_client
from registry_cli.storage.open import local_version
from registry_cli.storage.s3_audit import commit_order
from tests.s3_helpers import ForgetfulProxy, S3Root


@pytest.fixture
def backend() -> str:
    """``root``, ``reg`` and ``cli`` of conftest.py name the s3 root in this file."""
    return "s3"


def regctl(root: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "registry_cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )


def publish_small(root: str, name: str, tmp_path: Path, n: int = 1, **metrics: float) -> None:
    src = tmp_path / f"w-{name.replace('/', '_')}-{n}.pt"
    src.write_bytes(os.urandom(2048))
    reg = ModelRegistry(root)
    reg.publish(name, [src], metrics=metrics)


def test_layout_under_the_prefix_follows_the_folder_layout(s3_root: S3Root, cli, tmp_path):
    src = tmp_path / "model.pt"
    src.write_bytes(os.urandom(3000))
    assert cli("publish", "m", str(src), "--metric", "acc=0.9").exit_code == 0
    assert cli("promote", "m").exit_code == 0
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    keys = s3_root.keys()
    for key in (
        "models/m/model.yaml",
        "models/m/v1/manifest.json",
        "models/m/v1/version.yaml",
        f"blobs/sha256/{sha[:2]}/{sha}",  # the payload file, once
        "dist/dev/m/LATEST",
        "dist/dev/m/LATEST.json",
        "dist/dev/m/index.json",
        "dist/release/m/versions/v1/manifest.json",
    ):
        assert key in keys
    # no copies per version or stage; a level-0 bundle is assembled when read
    assert not [k for k in keys if "/payload/" in k or k.endswith("bundle.tar.gz")]
    latest = json.loads((s3_root / "dist/release/m/LATEST.json").read_text())
    assert latest["blobs"] == "../../../blobs/sha256"
    index = json.loads((s3_root / "dist/release/m/index.json").read_text())
    assert index["versions"][0]["blobs"] == "../../../blobs/sha256"
    assert (s3_root / "dist/release/m/LATEST").read_text() == "v1\n"
    assert not [k for k in keys if k.startswith(".regctl/tmp/")]  # scratch markers removed
    audit = [k for k in keys if k.startswith("audit/")]
    assert len(audit) == 2  # one object per entry
    # show --json: path and bundle.path name the local cache copy, not a folder of the root
    doc = json.loads(cli("show", "m", "--json").stdout)
    assert doc["path"].endswith("/s3/" + s3_root.bucket + "/registry/models/m/v1")
    assert Path(doc["path"]).is_absolute()


def test_serve_ftp_refuses_an_s3_root(s3_root, cli):
    res = cli("serve-ftp", "--anonymous")
    assert res.exit_code == 2
    assert "object storage" in res.stderr and "serve-registry" in res.stderr


def test_a_store_that_ignores_conditional_writes_is_refused(s3_server, s3_root, tmp_path):
    proxy = ForgetfulProxy(s3_server.port)
    try:
        src = tmp_path / "model.pt"
        src.write_bytes(b"weights")
        env = {"REGCTL_S3_ENDPOINT_URL": proxy.endpoint}
        res = regctl(s3_root, "publish", "m", str(src), env=env)
        assert res.returncode == 6, res.stderr
        assert proxy.endpoint in res.stderr and "conditional writes" in res.stderr
        assert "Traceback" not in res.stderr
        assert not (s3_root / "models").exists()  # refused before the first write
        # the same through the real store works; the opt-out is explicit
        unsafe = dict(env, REGCTL_S3_UNSAFE_SINGLE_WRITER="true")
        assert regctl(s3_root, "publish", "m", str(src), env=unsafe).returncode == 0
    finally:
        proxy.stop()
    assert regctl(s3_root, "resolve", "m").stdout.strip() == "v1"


def test_reads_do_not_probe_and_take_a_handful_of_requests(s3_root, tmp_path):
    publish_small(s3_root, "m", tmp_path)
    s3_client.forget_probes()
    reg = ModelRegistry(s3_root)
    calls: list[str] = []
    reg.store.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.s3.*", lambda model, **kw: calls.append(model.name)
    )
    assert reg.get("m").version == 1
    assert "PutObject" not in calls and len(calls) <= 4, calls


def test_eight_concurrent_publishers_get_distinct_versions(s3_root, tmp_path):
    srcs = []
    for i in range(8):
        src = tmp_path / f"w{i}.pt"
        src.write_bytes(os.urandom(4096))
        srcs.append(src)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "registry_cli", "--root", s3_root, "publish", "m", str(s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in srcs
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    reg = ModelRegistry(s3_root)
    versions = [v.version for v in reg.list_versions("m")]
    assert versions == list(range(1, 9))
    state = reg.model_state("m")
    assert state.latest["dev"] == 8 and state.aliases["candidate"] == 8
    shas = {reg.get(f"m:v{v}").files[0]["sha256"] for v in versions}
    assert len(shas) == 8  # every publisher's own file, none lost or doubled
    entries = reg.audit("m").entries
    assert sorted(e["version"] for e in entries if e["action"] == "publish") == [
        f"v{i}" for i in range(1, 9)
    ]
    assert reg.verify().problems == []
    assert replay(entries) == (state.all_aliases(), {k: v for k, v in state.latest.items() if v})


def test_eight_concurrent_promote_and_rollback_keep_one_champion(s3_root, tmp_path):
    for i in range(6):
        publish_small(s3_root, "m", tmp_path, i)
    reg = ModelRegistry(s3_root)
    reg.promote("m", version="v1")
    reg.promote("m", version="v2")
    commands = [
        ["promote", "m", "--version", "v3"],
        ["promote", "m", "--version", "v4"],
        ["promote", "m", "--version", "v5"],
        ["promote", "m", "--version", "v6"],
        ["rollback", "m"],
        ["rollback", "m"],
        ["rollback", "m"],
        ["alias", "set", "m", "canary", "v2"],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "registry_cli", "--root", s3_root, *c],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode in (0, 4), err  # 4: nothing left to roll back to, told as such
        assert "Traceback" not in err
    assert all(p.returncode == 0 for p in procs[:4])
    state = reg.model_state("m")
    champions = [v for a, v in state.all_aliases().items() if a == "champion"]
    assert len(champions) == 1 and champions[0] in state.stages["release"]
    assert state.latest["release"] == champions[0]
    assert reg.verify().problems == []
    entries = reg.audit("m").entries
    promotes = [e for e in entries if e["action"] == "promote"]
    assert len(promotes) == 6  # 2 before, 4 concurrent: none lost
    rollbacks_ok = sum(1 for p, c in zip(procs, commands, strict=True) if c[0] == "rollback"
                       and p.returncode == 0)  # fmt: skip
    assert len([e for e in entries if e["action"] == "rollback"]) == rollbacks_ok
    assert replay(entries) == (state.all_aliases(), {k: v for k, v in state.latest.items() if v})
    # the served tree ends on the last committed state
    assert (s3_root / "dist/release/m/LATEST").read_text() == f"v{champions[0]}\n"


def replay(entries: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Rebuild aliases and LATEST pointers from the audit log alone; every change must
    start from the value the previous entries left (the log is in commit order)."""
    aliases: dict[str, int] = {}
    latest: dict[str, int] = {}
    for e in entries:
        details = e["details"]
        for table, changes in ((aliases, details.get("aliases")), (latest, details.get("latest"))):
            for key, (old, new) in (changes or {}).items():
                have = table.get(key)
                assert (f"v{have}" if have else None) == old, (e, table)
                if new is None:
                    table.pop(key, None)
                else:
                    table[key] = int(new[1:])
    return aliases, latest


def test_sigkill_during_a_multipart_publish_leaves_nothing_visible(s3_server, s3_root, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(48):
            fh.write(os.urandom(1 << 20))
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry_cli", "--root", s3_root, "publish", "m", str(big)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = s3_server.client()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ups = client.list_multipart_uploads(Bucket=s3_root.bucket).get("Uploads", [])
            if ups:
                break
            assert proc.poll() is None, "publish finished before its upload could be cut"
            time.sleep(0.01)
        else:
            pytest.fail("no multipart upload started")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    reg = ModelRegistry(s3_root)
    assert reg.list_versions("m") == []  # nothing visible
    assert regctl(s3_root, "resolve", "m").returncode == 3
    assert client.list_multipart_uploads(Bucket=s3_root.bucket).get("Uploads")
    res = regctl(s3_root, "gc")
    assert res.returncode == 0, res.stderr
    keys = s3_root.keys()
    assert not [k for k in keys if k.startswith("models/m/v")], keys
    assert not [k for k in keys if k.startswith((".regctl/tmp/", ".regctl/probe/"))], keys
    assert not client.list_multipart_uploads(Bucket=s3_root.bucket).get("Uploads")
    src = tmp_path / "small.pt"
    src.write_bytes(b"w")
    assert reg.publish("m", [src]).version == 2  # the reserved number is never reused


def test_verify_rehashes_objects_read_back(s3_root, tmp_path, cli):
    publish_small(s3_root, "m", tmp_path)
    assert cli("verify").exit_code == 0
    (s3_root / "models/m/v1/payload/w-m-1.pt").write_bytes(b"tampered")
    res = cli("verify", "--json")
    assert res.exit_code == 5
    problems = json.loads(res.stdout)["problems"]
    assert any(p["path"].endswith("models/m/v1/payload/w-m-1.pt") for p in problems)
    assert all(p["path"].startswith(str(s3_root)) for p in problems)


def test_fetch_into_the_cache_is_verified_and_reused(s3_root, tmp_path):
    publish_small(s3_root, "m", tmp_path)
    publish_small(s3_root, "m", tmp_path, 2)
    reg = ModelRegistry(s3_root)
    info = reg.get("m:v1")
    folder = local_version(reg.store, "models/m/v1")
    assert folder == info.path
    assert (folder / "payload/w-m-1.pt").stat().st_size == 2048
    assert local_version(reg.store, "models/m/v1") == folder  # cached: no second download
    (s3_root / "models/m/v2/payload/w-m-2.pt").write_bytes(b"tampered")
    from registry_cli.errors import IntegrityError

    with pytest.raises(IntegrityError):
        local_version(reg.store, "models/m/v2")
    assert not reg.get("m:v2").path.exists()  # nothing half-fetched is left as the copy


def test_dist_ends_on_the_last_committed_state(s3_root, tmp_path):
    for i in range(3):
        publish_small(s3_root, "m", tmp_path, i)
    reg = ModelRegistry(s3_root)
    reg.promote("m", version="v1")
    old = reg.model_state("m")
    reg.promote("m", version="v2")
    # a slow writer syncs dist/ from the older state after the newer commit
    reg.served.sync(old, ["release"])
    assert (s3_root / "dist/release/m/LATEST").read_text() == "v2\n"
    index = json.loads((s3_root / "dist/release/m/index.json").read_text())
    assert [e["version"] for e in index["versions"]] == ["v1", "v2"]
    assert reg.verify().problems == []


def test_audit_keeps_each_models_commit_order():
    def line(model: str, n: int) -> bytes:
        return json.dumps({"model": model, "n": n}).encode() + b"\n"

    # b's entries were appended out of commit order (seq 5 after seq 6)
    bodies = [line("a", 1), line("b", 6), line("a", 2), line("b", 5), line("-", 0)]
    seqs = [3, 6, 4, 5, 0]
    out = [json.loads(x)["n"] for x in commit_order(bodies, seqs)]
    assert out == [1, 5, 2, 6, 0]


def test_concurrent_threads_share_nothing_but_the_bucket(s3_root, tmp_path):
    """Commits from one process's threads (no lock at all) still never lose a tag."""
    publish_small(s3_root, "m", tmp_path)

    def tag(i: int) -> None:
        ModelRegistry(s3_root).tag("m", "v1", {f"k{i}": str(i)})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(tag, range(6)))
    tags = ModelRegistry(s3_root).get("m:v1").tags
    assert {f"k{i}" for i in range(6)} <= set(tags)


def test_pull_from_a_bucket_is_verified_and_cached(s3_root, tmp_path, cli):
    publish_small(s3_root, "team/faq", tmp_path)
    ModelRegistry(s3_root).promote("team/faq")
    res = cli("pull", "team/faq", "--from", s3_root, "--json", root_dir=None)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["version"] == "v1" and doc["stage"] == "release" and doc["cached"] is False
    pulled = Path(doc["preferred_weight_path"])
    (entry,) = json.loads((s3_root / "models/team/faq/v1/manifest.json").read_text())["files"]
    assert pulled.read_bytes() == (s3_root / layout.blob_key(entry["sha256"])).read_bytes()
    assert "/s3_" + s3_root.bucket + "_" in doc["path"]
    again = json.loads(cli("pull", "team/faq", "--from", s3_root, "--json", root_dir=None).stdout)
    assert again["cached"] is True and again["path"] == doc["path"]
    # bytes that do not match the manifest: exit 5, nothing cached for that version
    publish_small(s3_root, "team/faq", tmp_path, 2)
    ModelRegistry(s3_root).promote("team/faq")
    (entry,) = json.loads((s3_root / "models/team/faq/v2/manifest.json").read_text())["files"]
    (s3_root / layout.blob_key(entry["sha256"])).write_bytes(b"bad")  # per-file pulls read it
    res = cli("pull", "team/faq", "--from", s3_root, root_dir=None)
    assert res.exit_code == 5, res.stderr
    assert cli("pull", "nope", "--from", s3_root, root_dir=None).exit_code == 3


def test_resolve_path_fetches_the_version_into_the_cache(s3_root, tmp_path, cli):
    publish_small(s3_root, "m", tmp_path)
    res = cli("resolve", "m", "--path")
    assert res.exit_code == 0, res.stderr
    local = Path(res.stdout.strip())
    assert local.is_absolute() and local.name == "w-m-1.pt"
    (entry,) = json.loads((s3_root / "models/m/v1/manifest.json").read_text())["files"]
    blob = s3_root / f"blobs/sha256/{entry['sha256'][:2]}/{entry['sha256']}"
    assert local.read_bytes() == blob.read_bytes()
    assert local.parent.parent == ModelRegistry(s3_root).get("m").path


def test_predict_fetches_the_version_first(s3_root, tmp_path, cli):
    from tests import _predict_models as pm

    pt2 = pm.save_exported(tmp_path / "model.pt2")
    sig = {"inputs": [{"shape": [None, pm.T, pm.F], "dtype": "float32"}], "batch_dim": 0}
    ModelRegistry(s3_root).publish("tiny", [pt2], signature=sig)
    x = pm.example(3)
    res = cli("predict", "tiny", "--input", "-", input=json.dumps({"X": x.tolist()}))
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["model"], out["version"]) == ("tiny", "v1")
    import numpy as np

    np.testing.assert_allclose(out["prediction"], pm.expected_torch(x[None])[0], rtol=1e-5)
    assert (ModelRegistry(s3_root).get("tiny").path / "payload/model.pt2").is_file()
