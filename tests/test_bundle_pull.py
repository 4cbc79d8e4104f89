"""``pull --bundle`` of a version whose bundle is assembled when read: from a
folder, over FTP (the virtual file) and from an s3:// root (the blobs, on moto)."""

from __future__ import annotations

import json
import random

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.served.bundle_files import stream_digest, version_stream
from registry_cli.storage import layout
from tests.bundle_virtual import make_bundle_virtual
from tests.ftp_helpers import PASSWORD, FtpServer
from tests.test_bundle_stream import artifact, published


def _payload(cache):
    """{relative path: bytes} of the payload files the pull put in the cache."""
    found = {}
    for path in cache.rglob("*"):
        if path.is_file() and "payload" in path.parts:
            rel = "/".join(path.parts[path.parts.index("payload") :])
            found[rel] = path.read_bytes()
    return found


def _source_payload(root):
    base = root / "models/team/demo/v1"
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()
            and "payload" in p.parts}  # fmt: skip


@pytest.fixture
def virtual_release(tmp_path):
    root, reg = published(tmp_path)
    reg.promote("team/demo", version=1, to="release", reason="test")
    entry = make_bundle_virtual(root, "team/demo", 1)
    return root, entry


def test_pull_bundle_from_a_folder(virtual_release, cli, tmp_path):
    root, _entry = virtual_release
    cache = tmp_path / "c"
    res = cli("pull", "team/demo", "--from", str(root), "--bundle", "--cache-dir", str(cache),
              root_dir=None)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert _payload(cache) == _source_payload(root)


def test_pull_bundle_over_ftp(virtual_release, cli, tmp_path, monkeypatch):
    root, _entry = virtual_release
    monkeypatch.setenv("FTP_PW", PASSWORD)
    cache = tmp_path / "c"
    with FtpServer(
        root, "--user", "mlops", "--password-env", "FTP_PW", env={"FTP_PW": PASSWORD}
    ) as srv:
        res = cli("pull", "team/demo", "--from", srv.user_url(), "--password-env", "FTP_PW",
                  "--bundle", "--cache-dir", str(cache), root_dir=None)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert _payload(cache) == _source_payload(root)


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_pull_bundle_from_an_s3_root_of_blobs(root, cli, tmp_path):
    """On an s3 root the version folder keeps version.yaml + manifest.json only and the
    payload lives in blob objects: the bundle is assembled from those."""
    reg = ModelRegistry(root)
    reg.init()
    src = artifact(tmp_path, sizes=(2_000_000, 65_535, 0, 12))
    reg.publish("team/demo", [src])
    reg.promote("team/demo", version=1, to="release", reason="test")
    client, bucket = root.client, root.bucket
    vkey = f"{root.key}/{layout.version_key('team/demo', 1)}"
    import yaml

    doc = yaml.safe_load(
        client.get_object(Bucket=bucket, Key=f"{vkey}/version.yaml")["Body"].read()
    )
    assert doc["bundle"]["stored"] is False
    # what the content-addressed layout holds: blobs, no payload or bundle objects
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{root.key}/")["Contents"]
    assert not [
        o["Key"]
        for o in listed
        if ("/payload/" in o["Key"] or o["Key"].endswith("/bundle.tar.gz"))
        and "/blobs/" not in o["Key"]
    ]
    manifest = json.loads(
        client.get_object(Bucket=bucket, Key=f"{vkey}/manifest.json")["Body"].read()
    )
    for f in manifest["files"]:
        assert client.head_object(Bucket=bucket, Key=f"{root.key}/{layout.blob_key(f['sha256'])}")
    stream = version_stream(ModelRegistry(root).store, "team/demo", 1)
    assert stream is not None
    # the writer hashed it at publish; the assembler reproduces those bytes
    assert stream_digest(stream) == (doc["bundle"]["size"], doc["bundle"]["sha256"])
    whole = stream.read(0, stream.size)
    at = random.Random(5).randrange(stream.size)
    assert stream.read(at, 100_000) == whole[at : at + 100_000]

    cache = tmp_path / "c"
    res = cli("pull", "team/demo", "--from", str(root), "--bundle", "--cache-dir", str(cache),
              root_dir=None)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    want = {
        f"payload/{p.relative_to(src.parent)}": p.read_bytes()
        for p in src.rglob("*")
        if p.is_file()
    }
    assert _payload(cache) == want
