"""pull --require-signed --trust KEY (and pull: {require_signed, trust}): the check runs
before anything enters the cache. Real CLI subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.test_sign import make_key, tamper

pytest.importorskip("model_signing")


@pytest.fixture
def keys(tmp_path):
    return {n: make_key(tmp_path / "keys", n) for n in ("alice", "mallory")}


@pytest.fixture
def registry(regctl_proc, tmp_path, model_file):
    regctl_proc("publish", "team/det", str(model_file), check=True)
    return tmp_path / "registry"


def cached_files(cache: Path) -> list[Path]:
    if not cache.exists():
        return []
    return [p for p in cache.rglob("*") if p.is_file() and ".locks" not in p.parts]


def pull(regctl_proc, source: Path, cache: Path, *extra: str, env=None):
    return regctl_proc(
        "pull", "team/det", "--from", str(source), "--stage", "dev",
        "--cache-dir", str(cache), "--json", *extra, env=env,
    )  # fmt: skip


def test_signed_and_trusted_pulls(regctl_proc, registry, keys, tmp_path):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    cache = tmp_path / "cache"
    proc = pull(regctl_proc, registry, cache, "--require-signed", "--trust", str(keys["alice"][1]))
    assert proc.returncode == 0, proc.stderr
    assert (Path(json.loads(proc.stdout)["path"]) / "payload" / "model.pt").is_file()
    # a cached version is checked again (the signature is read from the source)
    proc = pull(
        regctl_proc, registry, cache, "--require-signed", "--trust", str(keys["mallory"][1])
    )
    assert proc.returncode == 5


def test_unsigned_is_refused_and_the_cache_untouched(regctl_proc, registry, keys, tmp_path):
    cache = tmp_path / "cache"
    proc = pull(regctl_proc, registry, cache, "--require-signed", "--trust", str(keys["alice"][1]))
    assert proc.returncode == 5 and "not signed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cached_files(cache) == []


def test_wrong_key_is_refused_and_the_cache_untouched(regctl_proc, registry, keys, tmp_path):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["mallory"][0]), check=True)
    cache = tmp_path / "cache"
    proc = pull(regctl_proc, registry, cache, "--require-signed", "--trust", str(keys["alice"][1]))
    assert proc.returncode == 5 and "no valid signature by a trusted key" in proc.stderr
    assert cached_files(cache) == []


def test_swapped_model_with_consistent_hashes_is_refused(regctl_proc, registry, keys, tmp_path):
    """Whoever can write the served tree can swap the bytes and their hashes: only the
    signature catches it."""
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    served = tmp_path / "served"
    shutil.copytree(registry / "dist", served)
    vdir = served / "dev" / "team" / "det" / "versions" / "v1"
    tamper(vdir / "payload" / "model.pt")
    manifest = json.loads((vdir / "manifest.json").read_text())
    data = (vdir / "payload" / "model.pt").read_bytes()
    for f in manifest["files"]:
        if f["path"] == "payload/model.pt":
            f["sha256"] = hashlib.sha256(data).hexdigest()
    os.chmod(vdir / "manifest.json", 0o644)
    raw = (json.dumps(manifest, indent=2) + "\n").encode()
    (vdir / "manifest.json").write_bytes(raw)
    new_sha = hashlib.sha256(raw).hexdigest()
    for doc_name in ("index.json", "LATEST.json"):
        path = served / "dev" / "team" / "det" / doc_name
        doc = json.loads(path.read_text())
        for entry in doc.get("versions", [doc]):
            entry["manifest_sha256"] = new_sha
        os.chmod(path, 0o644)
        path.write_text(json.dumps(doc))
    cache = tmp_path / "cache"
    proc = pull(regctl_proc, served, cache, "--require-signed", "--trust", str(keys["alice"][1]))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "no valid signature by a trusted key" in proc.stderr
    assert cached_files(cache) == []
    # without --require-signed the swapped model would have been accepted: the hash
    # alone vouches for nothing
    proc = pull(regctl_proc, served, tmp_path / "cache2")
    assert proc.returncode == 0, proc.stderr


def test_config_require_signed(regctl_proc, registry, keys, tmp_path):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    conf = tmp_path / "keys" / "pull.yaml"
    conf.write_text("pull:\n  require_signed: true\n  trust: [mallory.pub]\n")
    cache = tmp_path / "cache"
    proc = pull(regctl_proc, registry, cache, env={"REGCTL_CONFIG": str(conf)})
    assert proc.returncode == 5, proc.stderr
    assert cached_files(cache) == []
    conf.write_text("pull:\n  require_signed: true\n  trust: [mallory.pub, alice.pub]\n")
    proc = pull(regctl_proc, registry, cache, env={"REGCTL_CONFIG": str(conf)})
    assert proc.returncode == 0, proc.stderr


def test_require_signed_without_trust_is_bad_input(regctl_proc, registry, tmp_path):
    proc = pull(regctl_proc, registry, tmp_path / "cache", "--require-signed")
    assert proc.returncode == 2 and "--trust" in proc.stderr


@pytest.mark.slow
def test_require_signed_over_http_from_serve_registry(regctl_proc, registry, keys, tmp_path):
    from registry_cli.server.launch import ServeRegistryProcess

    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    server = ServeRegistryProcess(
        registry, "--anonymous-read", log=tmp_path / "server.log", env={"HOME": str(tmp_path)}
    )
    server.start()
    try:
        cache = tmp_path / "cache"
        url = server.url
        proc = regctl_proc(
            "pull", "team/det", "--from", url, "--stage", "dev", "--cache-dir", str(cache),
            "--require-signed", "--trust", str(keys["mallory"][1]),
        )  # fmt: skip
        assert proc.returncode == 5, proc.stderr
        assert cached_files(cache) == []
        proc = regctl_proc(
            "pull", "team/det", "--from", url, "--stage", "dev", "--cache-dir", str(cache),
            "--require-signed", "--trust", str(keys["alice"][1]), "--json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["version"] == "v1"
    finally:
        assert server.stop() == 0, server.log
