"""``serve-registry``'s ``/dist/`` serves a bundle assembled from the payload like a
file: HEAD with its size, GET byte for byte as recorded, ``Range`` (resume with
curl ``-C -``), ``ETag`` and 304, ``If-Range``; a damaged source breaks the body."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from registry_cli.server.launch import ServeRegistryProcess
from tests.bundle_virtual import make_bundle_virtual, publish_with_bundle_file
from tests.test_bundle_stream import artifact, published
from tests.test_server import server_env
from tests.test_server_files import reg_token

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
BUNDLE = "dist/dev/team/demo/versions/v1/bundle.tar.gz"


@pytest.fixture
def served(tmp_path):
    root, reg = published(tmp_path)
    entry = make_bundle_virtual(root, "team/demo", 1)
    publish_with_bundle_file(
        root, "team/demo", [artifact(tmp_path / "two", sizes=(5000, 20, 30, 40))]
    )
    secret = reg_token(reg)
    with ServeRegistryProcess(root, log=tmp_path / "srv.log", env=server_env(tmp_path)) as srv:
        yield root, entry, f"http://127.0.0.1:{srv.port}", secret


def curl(secret: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "-H", f"Authorization: Bearer {secret}", *args],
        capture_output=True,
        timeout=60,
    )


def headers_of(out: bytes) -> dict[str, str]:
    lines = out.decode().split("\r\n")
    found = {"status": lines[0].split()[1]}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            found[k.strip().lower()] = v.strip()
    return found


def test_head_get_range_etag(served, tmp_path):
    _root, entry, base, secret = served
    url = f"{base}/{BUNDLE}"
    head = headers_of(curl(secret, "-I", url).stdout)
    assert head["status"] == "200" and int(head["content-length"]) == entry["size"]
    assert head["etag"] == f'"{entry["sha256"]}"' and "immutable" in head["cache-control"]
    out = tmp_path / "b.tar.gz"
    assert curl(secret, "-f", "-o", str(out), url).returncode == 0
    whole = out.read_bytes()
    assert hashlib.sha256(whole).hexdigest() == entry["sha256"]
    part = curl(secret, "-f", "-r", "65540-2000000", url).stdout
    assert part == whole[65_540:2_000_001]
    assert curl(secret, "-f", "-r", "-8", url).stdout == whole[-8:]
    got = curl(secret, "-s", "-D", "-", "-o", "/dev/null", "-r", "65540-65549", url).stdout
    assert headers_of(got)["content-range"] == f"bytes 65540-65549/{entry['size']}"
    resumed = tmp_path / "resumed.tar.gz"
    resumed.write_bytes(whole[:777_777])
    assert curl(secret, "-f", "-C", "-", "-o", str(resumed), url).returncode == 0
    assert resumed.read_bytes() == whole
    cached = curl(
        secret,
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        f"If-None-Match: {head['etag']}",
        url,
    ).stdout
    assert cached == b"304"
    stale = curl(secret, "-f", "-r", "0-9", "-H", 'If-Range: "other"', url).stdout
    assert stale == whole  # If-Range that does not match: the whole file
    beyond = curl(
        secret, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-r", f"{entry['size']}-", url
    ).stdout
    assert beyond == b"416"
    assert curl("wrong", "-s", "-o", "/dev/null", "-w", "%{http_code}", url).stdout == b"401"
    # a version with a real bundle file: served from it, as before
    real = _root / "dist/dev/team/demo/versions/v2/bundle.tar.gz"
    v2 = curl(secret, "-f", url.replace("/v1/", "/v2/")).stdout
    assert v2 == real.read_bytes()


def test_a_damaged_source_breaks_the_body(served, tmp_path):
    root, entry, base, secret = served
    target = root / "dist/dev/team/demo/versions/v1/payload/art/w.bin"
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    os.chmod(target, 0o644)
    with open(target, "r+b") as fh:
        fh.write(data)
    out = tmp_path / "b.tar.gz"
    res = curl(secret, "-o", str(out), f"{base}/{BUNDLE}")
    assert res.returncode != 0  # curl: transfer closed with bytes remaining
    assert out.stat().st_size < entry["size"]
    log = (tmp_path / "srv.log").read_text()
    assert "transfer aborted: " in log and "payload/art/w.bin is damaged" in log
