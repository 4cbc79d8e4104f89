"""A cut HTTP pull resumed by a NEW ``regctl pull`` process sends ``If-Range`` with the
validator of the first attempt, kept beside the partial file: an unchanged file resumes
with exactly the remaining bytes; a file replaced on the server in between (same size,
other bytes, new ETag) is never spliced."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from tests.conftest import regctl_cmd
from tests.http_static import StaticServer, add_manifest_sha256

MiB = 1 << 20
SERVED = "/release/big/versions/v1/payload/model.pt"


@pytest.fixture
def big(root, tmp_path) -> ModelRegistry:
    """big v1 (released): one 4 MiB file."""
    reg = ModelRegistry(root)
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pt").write_bytes(os.urandom(4 * MiB))
    reg.publish("big", [src / "model.pt"])
    reg.promote("big")
    add_manifest_sha256(root / "dist")
    return reg


def etag_of(path: Path) -> str:
    """The ETag tests/http_static.py sends for ``path``."""
    st = path.stat()
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def partial_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.incomplete") if p.is_file()]


def pull(web: StaticServer, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        regctl_cmd("pull", "big", "--from", web.url, "--cache-dir", str(cache), "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def cut_halfway(web: StaticServer, cache: Path, size: int) -> Path:
    """Start a pull, SIGKILL it once about half the file is in; the partial file."""
    web.delay_per_chunk = 0.01
    proc = subprocess.Popen(
        regctl_cmd("pull", "big", "--from", web.url, "--cache-dir", str(cache)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            parts = partial_files(cache)
            if parts and parts[0].stat().st_size >= size // 2:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    web.delay_per_chunk = 0.0
    kept = partial_files(cache)
    assert len(kept) == 1
    assert 0 < kept[0].stat().st_size < size
    web.reset_counts()
    return kept[0]


def range_requests(web: StaticServer) -> list[dict[str, str]]:
    return [h for p, h in web.requests if p == SERVED]


def test_an_unchanged_file_resumes_with_if_range_and_the_rest_only(big, root, tmp_path):
    entry = big.get("big:v1").files[0]
    size, cache = entry["size"], tmp_path / "c"
    served = root / "dist" / SERVED.lstrip("/")
    with StaticServer(root / "dist") as web:
        part = cut_halfway(web, cache, size)
        have = part.stat().st_size
        sidecar = part.with_name(part.name + "-etag")
        assert sidecar.read_text() == etag_of(served)  # kept on disk by the killed process
        res = pull(web, cache)
        assert res.returncode == 0, res.stderr
        [asked] = range_requests(web)
        assert asked["Range"] == f"bytes={have}-"
        assert asked["If-Range"] == etag_of(served)
        assert web.sent_to[SERVED] == size - have
    vdir = cache / "regctl" / f"http_127.0.0.1_{web.port}" / "release" / "big" / "v1"
    data = (vdir / "payload" / "model.pt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert partial_files(cache) == []
    assert not list(cache.rglob("*.incomplete-etag"))


def test_a_file_replaced_between_the_tries_is_never_spliced(big, root, tmp_path):
    entry = big.get("big:v1").files[0]
    size, cache = entry["size"], tmp_path / "c"
    served = root / "dist" / SERVED.lstrip("/")
    with StaticServer(root / "dist") as web:
        part = cut_halfway(web, cache, size)
        first = etag_of(served)
        mtime_ns = served.stat().st_mtime_ns
        os.unlink(served)  # a hard link into models/: never write through it
        new = os.urandom(size)
        served.write_bytes(new)
        os.utime(served, ns=(mtime_ns + 10**10, mtime_ns + 10**10))  # a new ETag for sure
        assert etag_of(served) != first
        res = pull(web, cache)
        [asked] = range_requests(web)
        assert asked["If-Range"] == first
        assert asked["Range"].startswith("bytes=")
        # the server said 200 (the validator changed): the whole new file came, from 0
        assert web.sent_to[SERVED] == size
    # the manifest still records the old sha256: the new file is refused (exit 5), and
    # nothing (neither a splice nor the refused file) stays in the cache
    assert res.returncode == 5, res.stderr
    assert "sha256" in res.stderr and "Traceback" not in res.stderr
    vdir = cache / "regctl" / f"http_127.0.0.1_{web.port}" / "release" / "big" / "v1"
    assert not vdir.exists()
    assert partial_files(cache) == []
    assert not part.exists()  # the first partial went with its work folder
