"""``gc --dedup`` SIGKILLed at many points of its run on an old folder root: every
version stays readable under every name at each point, and a rerun finishes the move
into blobs with ``verify`` green and every version pullable."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from registry_cli.storage import layout
from tests.conftest import regctl_cmd
from tests.legacy_layout import to_legacy

pytestmark = pytest.mark.slow

VERSIONS = ("v1", "v2", "v3")


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        regctl_cmd("--root", str(root), *args), capture_output=True, text=True, timeout=300
    )


def old_root(tmp_path: Path) -> Path:
    root = tmp_path / "template"
    shared = os.urandom(1 << 20)
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "shared.bin").write_bytes(shared)
        for j in range(6):
            (src / f"f{j}.bin").write_bytes(os.urandom(1 << 19))
        assert run(root, "publish", "m", str(src)).returncode == 0
    assert run(root, "promote", "m", "--version", "v2").returncode == 0
    to_legacy(root)  # as an older regctl wrote it: payload files and bundles, no blobs
    return root


def readable_everywhere(root: Path) -> None:
    """Every file of every version, under models/ and in every served copy, whole."""
    for v in VERSIONS:
        manifest = json.loads((root / "models/m" / v / "manifest.json").read_text())
        places = [root / "models/m" / v] + [
            d for d in (root / "dist/dev/m/versions" / v, root / "dist/release/m/versions" / v)
            if d.is_dir()
        ]  # fmt: skip
        for f in manifest["files"]:
            for base in places:
                data = (base / f["path"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == f["sha256"], base / f["path"]


def test_sigkill_at_many_points_then_rerun(tmp_path):
    template = old_root(tmp_path)
    # how long a whole run takes here, to spread the kills over it
    probe = tmp_path / "probe"
    subprocess.run(["cp", "-a", str(template), str(probe)], check=True)
    started = time.monotonic()
    assert run(probe, "gc", "--dedup").returncode == 0
    whole = time.monotonic() - started
    killed_mid_run = 0
    for point in range(12):
        root = tmp_path / f"kill{point}"
        subprocess.run(["cp", "-a", str(template), str(root)], check=True)
        proc = subprocess.Popen(
            regctl_cmd("--root", str(root), "gc", "--dedup"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(whole * point / 12)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        killed_mid_run += code == -signal.SIGKILL
        readable_everywhere(root)
        again = run(root, "gc", "--dedup", "--json")
        assert again.returncode == 0, again.stderr
        readable_everywhere(root)
        res = run(root, "verify")
        assert res.returncode == 0, res.stdout + res.stderr
        for v in VERSIONS:
            manifest = json.loads((root / "models/m" / v / "manifest.json").read_text())
            for f in manifest["files"]:
                blob = root / layout.blob_key(f["sha256"])
                assert (root / "models/m" / v / f["path"]).stat().st_ino == blob.stat().st_ino
            leftovers = [
                p.name for p in (root / "models/m" / v / "payload").iterdir() if p.name[0] == "."
            ]
            assert leftovers == []
        assert not [p for p in (root / layout.BLOBS).rglob(".*")]
        rerun = json.loads(run(root, "gc", "--dedup", "--json").stdout)
        assert rerun["deduped"] == 0
    assert killed_mid_run >= 6  # most kills landed inside a run
    cache = tmp_path / "cache"
    for v in VERSIONS:
        res = run(root, "pull", "m", "--stage", "dev", "--version", v, "--from", str(root),
                  "--cache-dir", str(cache))  # fmt: skip
        assert res.returncode == 0, res.stderr
