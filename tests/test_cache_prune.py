"""``regctl cache prune`` (docs/pull.md, "The cache"): --keep-last, --max-size, unused blobs
removed, a version another process uses stays, bad input is one line and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from tests.conftest import regctl_cmd

MiB = 1 << 20


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        regctl_cmd(*args), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def cached(tmp_path):
    """m v1..v3 (shared.bin the same in all, own.bin 1 MiB new in each) pulled from a folder
    into one cache, oldest first; (root, cache, {vN: path})."""
    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    src = tmp_path / "src"
    src.mkdir()
    (src / "shared.bin").write_bytes(os.urandom(MiB // 4))
    for _ in range(3):
        own = src / "own.bin"
        if own.exists():
            os.unlink(own)
        own.write_bytes(os.urandom(MiB))
        reg.publish("m", [src / "shared.bin", own])
    cache = tmp_path / "cache"
    paths = {}
    for v in ("v1", "v2", "v3"):
        res = run("pull", "m", "--stage", "dev", "--version", v, "--from", str(root),
                  "--cache-dir", str(cache), "--json")  # fmt: skip
        assert res.returncode == 0, res.stderr
        paths[v] = Path(json.loads(res.stdout)["path"])
    return root, cache, paths


def blobs(cache: Path) -> list[Path]:
    return sorted((cache / "regctl/blobs/sha256").glob("*/*"))


def prune(cache: Path, *args: str) -> dict:
    res = run("cache", "prune", "--cache-dir", str(cache), "--json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_keep_last_removes_old_versions_and_their_unshared_blobs(cached):
    _root, cache, paths = cached
    assert len(blobs(cache)) == 4  # shared once + three own
    dry = prune(cache, "--keep-last", "1", "--dry-run")
    assert [e["version"] for e in dry["removed"]] == ["v2", "v1"] and dry["dry_run"]
    assert all(p.is_dir() for p in paths.values()) and len(blobs(cache)) == 4
    doc = prune(cache, "--keep-last", "1")
    assert sorted(e["version"] for e in doc["removed"]) == ["v1", "v2"]
    assert doc["blobs_removed"] == 2 and doc["in_use"] == []
    assert doc["freed"] == 2 * MiB and doc["size_after"] == MiB + MiB // 4
    assert not paths["v1"].exists() and not paths["v2"].exists()
    assert sorted(os.listdir(paths["v3"].parent)) == ["v3"]  # nothing hidden left behind
    assert {b.name for b in blobs(cache)} == {_sha(p) for p in (paths["v3"] / "payload").iterdir()}
    again = run("pull", "m", "--stage", "dev", "--version", "v3", "--from", str(_root),
                "--cache-dir", str(cache), "--json")  # fmt: skip
    assert json.loads(again.stdout)["cached"] is True  # the kept version is intact


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_max_size_removes_the_version_used_longest_ago(cached):
    root, cache, paths = cached
    time.sleep(0.05)
    hit = run("pull", "m", "--stage", "dev", "--version", "v1", "--from", str(root),
              "--cache-dir", str(cache), "--json")  # fmt: skip
    assert json.loads(hit.stdout)["cached"] is True  # v1 is now the most recently used
    doc = prune(cache, "--max-size", f"{2 * MiB + MiB // 4}")
    assert [e["version"] for e in doc["removed"]] == ["v2"]
    assert doc["size_after"] <= 2 * MiB + MiB // 4
    assert paths["v1"].is_dir() and paths["v3"].is_dir() and not paths["v2"].exists()
    human = run("cache", "prune", "--cache-dir", str(cache), "--max-size", "1.5M")
    assert human.returncode == 0 and "removed m:v3 (dev," in human.stdout


READER = """
import sys
from pathlib import Path
from registry_cli.pull import Puller, parse_source
p = Puller(parse_source(sys.argv[1]), cache_root=Path(sys.argv[2]))
r = p.pull("m", stage="dev", version="v1")
print(r.path, flush=True)
sys.stdin.readline()  # keeps the version in use until told to go
print(len((r.path / "payload/own.bin").read_bytes()), flush=True)
"""


def test_a_version_in_use_by_another_process_stays(cached):
    root, cache, paths = cached
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(root), str(cache)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert Path(reader.stdout.readline().strip()) == paths["v1"]
        doc = prune(cache, "--keep-last", "0")
        assert doc["in_use"] == [str(paths["v1"])]
        assert sorted(e["version"] for e in doc["removed"]) == ["v2", "v3"]
        assert (paths["v1"] / "payload/own.bin").stat().st_size == MiB
        assert len(blobs(cache)) == 2  # v1's files: its blobs are still linked
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == str(MiB)
        assert reader.wait(timeout=60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    doc = prune(cache, "--keep-last", "0")
    assert [e["version"] for e in doc["removed"]] == ["v1"]
    assert blobs(cache) == [] and doc["size_after"] == 0


def test_a_pull_after_a_prune_fetches_again(cached):
    root, cache, paths = cached
    prune(cache, "--keep-last", "0")
    res = run("pull", "m", "--stage", "dev", "--version", "v2", "--from", str(root),
              "--cache-dir", str(cache), "--json")  # fmt: skip
    doc = json.loads(res.stdout)
    assert doc["cached"] is False and Path(doc["path"]) == paths["v2"]
    assert len(blobs(cache)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-size", "12Q"), "error: invalid size '12Q'"),
        (("--max-size", "-5M"), "error: invalid size '-5M'"),
        (("--keep-last", "-1"), "error: --keep-last must be 0 or more"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cached, args, message):
    _root, cache, paths = cached
    res = run("cache", "prune", "--cache-dir", str(cache), *args)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].startswith(message), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert all(p.is_dir() for p in paths.values()) and len(blobs(cache)) == 4


def test_an_empty_or_missing_cache_is_fine(tmp_path):
    doc = prune(tmp_path / "nothing-here", "--keep-last", "1", "--max-size", "1G")
    assert doc["removed"] == [] and doc["size_after"] == 0


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("500M", 500 * MiB), ("2G", 2 << 30), ("1.5GiB", 3 << 29), ("10kb", 10240)],
)
def test_sizes(text, size):
    from registry_cli.pull.prune import parse_size

    assert parse_size(text) == size
