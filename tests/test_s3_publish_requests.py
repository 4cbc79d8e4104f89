"""What an S3 publish sends to moto's S3 server: how many requests and which, how the
parts of a blob are signed and checksummed, and that the bytes of the staged version
serve only the publish's own ``dist/`` copy (every later read goes to the store).

Requests are recorded from the store's own boto3 client once signed (botocore's
``request-created`` event, after its signer), so they are what goes on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any

import pytest

from registry_cli import ModelRegistry, errors
from registry_cli.storage import s3_client, s3_transfer

# a publish of bytes the store holds already, from the state read to the version read
# back for the caller (measured: 34; the served tree's reads and writes are most of it)
MOST_REQUESTS_REPUBLISH = 34


@dataclass
class Sent:
    op: str
    key: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def sent(monkeypatch) -> list[Sent]:
    """Every request the store's client signs from now on (a fresh client cache)."""
    log: list[Sent] = []
    real = s3_client._new_client

    def recording(options: s3_client.S3Options) -> Any:
        client = real(options)

        def created(request: Any, event_name: str, **_kwargs: Any) -> None:
            url = urllib.parse.urlsplit(request.url)
            key = url.path.lstrip("/").partition("/")[2]
            headers = {k.lower(): v for k, v in request.headers.items()}
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items()}
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            log.append(Sent(event_name.rsplit(".", 1)[1], key, query, headers, body_of(request)))

        client.meta.events.register("request-created.s3", created)  # after the signer
        return client

    monkeypatch.setattr(s3_client, "_CLIENTS", {})
    monkeypatch.setattr(s3_client, "_new_client", recording)
    return log


def body_of(request: Any) -> bytes:
    body = request.body
    if hasattr(body, "seek"):  # a file-like body: read it whole, then put it back
        where = body.tell()
        body.seek(0)
        data = body.read()
        body.seek(where)
        return bytes(data)
    return bytes(body or b"")


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_parts_go_up_unsigned_with_their_crc32_and_the_blob_matches_its_sha256(
    s3_root, sent, tmp_path
):
    data = os.urandom(2 * s3_transfer.PART + 12345)  # three parts
    weights = tmp_path / "w.bin"
    weights.write_bytes(data)
    ModelRegistry(s3_root).publish("m", [weights])

    parts = sorted(
        (s for s in sent if s.op == "UploadPart"), key=lambda s: int(s.query["partNumber"][0])
    )
    assert len(parts) == 3
    crcs = []
    for part in parts:
        number = int(part.query["partNumber"][0])
        piece = data[(number - 1) * s3_transfer.PART : number * s3_transfer.PART]
        assert part.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        # our CRC32, and the signature covers it (the store checks the body against it)
        assert part.headers["x-amz-checksum-crc32"] == crc32_b64(piece)
        assert "x-amz-checksum-crc32" in part.headers["authorization"]
        assert part.body == piece
        crcs.append(base64.b64decode(part.headers["x-amz-checksum-crc32"]))

    # every other request with a body signs its sha256 (the documents stay signed)
    bodies = [s for s in sent if s.op in ("PutObject", "CompleteMultipartUpload") and s.body]
    assert bodies and all(
        s.headers["x-amz-content-sha256"] == hashlib.sha256(s.body).hexdigest() for s in bodies
    )

    digest = hashlib.sha256(data).hexdigest()
    key = f"registry/blobs/sha256/{digest[:2]}/{digest}"
    stored = s3_root.client.get_object(Bucket=s3_root.bucket, Key=key, ChecksumMode="ENABLED")
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == digest
    # the object's checksum is composed from the part CRCs we sent
    assert stored["ChecksumCRC32"] == f"{crc32_b64(b''.join(crcs))}-3"


def test_publishing_bytes_the_store_holds_copies_nothing_and_marks_once(s3_root, sent, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(1 << 20))
    reg = ModelRegistry(s3_root)
    reg.publish("m", [weights])
    sent.clear()
    reg.publish("m", [weights])

    ops = [s.op for s in sent]
    assert "CopyObject" not in ops
    assert not {"UploadPart", "CreateMultipartUpload"} & set(ops)
    puts = [s.key for s in sent if s.op == "PutObject"]
    assert not [k for k in puts if k.startswith("registry/blobs/")]  # the blob is there
    # every blob exists: no pending marker at all; the scratch marker written once
    assert not [s for s in sent if "/.regctl/pending/" in f"/{s.key}"]
    assert len([k for k in puts if k.startswith("registry/.regctl/tmp/")]) == 1
    assert len(sent) <= MOST_REQUESTS_REPUBLISH, ops
    # the served copy of the manifest holds the bytes the version holds
    served = (s3_root / "dist/dev/m/versions/v2/manifest.json").read_bytes()
    assert served == (s3_root / "models/m/v2/manifest.json").read_bytes()
    assert reg.verify().ok


def test_the_staged_bytes_serve_no_later_read_or_copy(s3_root, sent, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    reg = ModelRegistry(s3_root)
    reg.publish("m", [weights])
    key = "models/m/v1/manifest.json"
    # a promotion after the publish copies the manifest on the store, not from memory
    sent.clear()
    reg.promote("m")
    copies = [s for s in sent if s.op == "CopyObject"]
    assert [c.headers["x-amz-copy-source"].endswith(key) for c in copies] == [True]
    # and a manifest damaged on the store afterwards is seen by the same process
    reg.store.put(key, b"{not json")
    with pytest.raises(errors.IntegrityError):
        reg.get("m:v1")


def test_the_client_loads_without_pyopenssl_which_stays_importable():
    """botocore loads pyOpenSSL only to find the standard SSLContext; a store's client
    is built without it (and without ``cryptography``), and it can be imported after."""
    code = (
        "import sys\n"
        "from registry_cli.storage import s3_client as sc\n"
        "sc.make_client(sc.S3Options(endpoint_url='http://127.0.0.1:9', region='us-east-1'))\n"
        "print(sorted(m for m in ('OpenSSL', 'cryptography') if m in sys.modules))\n"
        "import urllib3.contrib.pyopenssl\n"
        "print('importable')\n"
    )
    env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["[]", "importable"]
