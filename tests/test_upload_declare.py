"""A publish over HTTP that declares its files first (see docs/server.md): the server
frames and hashes the level-0 bundle as the bytes arrive. The recorded bundle must be
the bytes ``/dist/`` and ``serve-ftp`` send, whether the declaration held or the parts
contradicted it (then the bundle is framed from the files after receipt), and a
refused or cut upload leaves nothing behind.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import json
import os
import time
from pathlib import Path

import httpx
import pytest
import yaml

from registry_cli import RemoteRegistry
from registry_cli.server.launch import ServeRegistryProcess
from registry_cli.storage.bundle import BundleWriter, HashOnly, bundle_folders
from registry_cli.storage.bundle_receipt import BundleReceipt
from tests.cas_helpers import bundle_bytes
from tests.ftp_helpers import PASSWORD, FtpServer
from tests.test_server import error_of, make_root, scratch_entries, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("declare")
    root = tmp / "registry"
    tokens = make_root(root, ("publish", "read"))
    log = tmp / "server.log"
    proc = ServeRegistryProcess(root, log=log, env=server_env(tmp))
    proc.start()
    yield proc, root, tokens, log
    assert proc.stop() == 0


def post(srv, name: str, parts: list, **kw) -> httpx.Response:
    proc, _root, tokens, _log = srv
    with httpx.Client(
        base_url=proc.url, headers={"Authorization": f"Bearer {tokens['publish']}"}, timeout=60
    ) as c:
        return c.post(f"/api/v1/models/{name}/-/versions", files=parts, **kw)


def declare(*files: tuple[str, int]) -> tuple[str, tuple[None, str, str]]:
    doc = {"files": [{"path": p, "size": n} for p, n in files]}
    return ("declare", (None, json.dumps(doc), "application/json"))


def file_part(path: str, data: bytes) -> tuple[str, tuple[str, bytes, str]]:
    return ("file", (path, data, "application/octet-stream"))


def log_line(log: Path, name: str) -> str:
    lines = [line for line in log.read_text().splitlines() if f"publish {name}:" in line]
    assert len(lines) == 1, lines
    return lines[0]


def served_bundle(srv, name: str, version: int = 1) -> bytes:
    """The bundle as ``/dist/`` sends it, checked against the recorded sha256 and size and
    against the bundle assembled from the payload."""
    proc, root, tokens, _log = srv
    vdir = root / "models" / name / f"v{version}"
    recorded = yaml.safe_load((vdir / "version.yaml").read_text())["bundle"]
    assert recorded["stored"] is False
    reply = httpx.get(
        f"{proc.url}/dist/dev/{name}/versions/v{version}/bundle.tar.gz",
        headers={"Authorization": f"Bearer {tokens['read']}"},
    )
    assert reply.status_code == 200
    sent = reply.content
    assert len(sent) == recorded["size"]
    assert hashlib.sha256(sent).hexdigest() == recorded["sha256"]
    assert sent == bundle_bytes(vdir)
    return sent


def nothing_left(root: Path, name: str, *contents: bytes) -> None:
    deadline = time.monotonic() + 10
    while scratch_entries(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not scratch_entries(root)
    assert not (root / "models" / name).exists()
    blobs = root / "blobs" / "sha256"
    for data in contents:
        sha = hashlib.sha256(data).hexdigest()
        assert not (blobs / sha[:2] / sha).exists()
    if blobs.is_dir():
        assert not [p for p in blobs.rglob("*") if p.is_file() and "incoming" in p.name]


# ----------------------------------------------------------------- in process
def test_a_receipt_frames_the_bundle_the_writer_frames():
    a, b = os.urandom(70_001), os.urandom(3 * 65_535)
    declared = [("a.bin", len(a)), ("d/b.bin", len(b)), ("d/e/empty", 0)]
    receipt = BundleReceipt(declared, mtime=1_700_000_000)
    for path, data, cut in (("a.bin", a, 4097), ("d/b.bin", b, 65_535), ("d/e/empty", b"", 1)):
        receipt.begin(path)
        for start in range(0, len(data), cut):  # pieces of any size
            receipt.feed(memoryview(data)[start : start + cut])
        receipt.end()
    got = receipt.result()
    receipt.close()
    assert got is not None and got.members == declared
    got.writer.add_bytes("manifest.json", b"{}")
    writer = BundleWriter(HashOnly(), level=0, mtime=1_700_000_000)
    for folder in bundle_folders([f"payload/{p}" for p, _ in declared]):
        writer.add_dir(folder)
    for path, data in (("a.bin", a), ("d/b.bin", b), ("d/e/empty", b"")):
        writer.begin_file(f"payload/{path}", len(data))
        writer.feed(memoryview(data))
        writer.end_file(len(data))
    writer.add_bytes("manifest.json", b"{}")
    assert got.writer.close() == writer.close()


@pytest.mark.parametrize(
    "case",
    ["short", "long", "unsorted", "other order", "missing", "undeclared", "not ended"],
)
def test_a_receipt_the_parts_contradict_gives_nothing(case):
    declared = [("a", 3), ("b", 3)]
    if case == "unsorted":
        declared = [("b", 3), ("a", 3)]
    receipt = BundleReceipt(declared, mtime=0)
    sends = {
        "short": [("a", b"xyz"), ("b", b"xy")],
        "long": [("a", b"xyzw"), ("b", b"xyz")],
        "unsorted": [("b", b"xyz"), ("a", b"xyz")],
        "other order": [("b", b"xyz"), ("a", b"xyz")],
        "missing": [("a", b"xyz")],
        "undeclared": [("a", b"xyz"), ("b", b"xyz"), ("c", b"xyz")],
        "not ended": [("a", b"xyz"), ("b", b"xyz")],
    }[case]
    for i, (path, data) in enumerate(sends):
        receipt.begin(path)
        receipt.feed(memoryview(data))
        if not (case == "not ended" and i == len(sends) - 1):
            receipt.end()
    assert receipt.result() is None
    receipt.close()


# ----------------------------------------------------------------- a real server
def test_remote_publish_frames_the_bundle_on_receipt(srv, tmp_path):
    proc, root, tokens, log = srv
    src = tmp_path / "model"
    (src / "weights" / "deep").mkdir(parents=True)
    (src / "weights" / "best.pt").write_bytes(os.urandom(3 * (1 << 20) + 17))  # > 1 batch
    (src / "weights" / "deep" / "empty").write_bytes(b"")
    (src / "config.json").write_bytes(b'{"lr": 0.1}')
    reg = RemoteRegistry(proc.url, token=tokens["publish"])
    reg.publish("decl/cli", [src / "weights", src / "config.json"])
    assert "(bundle framed on receipt)" in log_line(log, "decl/cli")
    sent = served_bundle(srv, "decl/cli")
    with FtpServer(
        root, "--user", "mlops", "--password-env", "FTP_PW", env={"FTP_PW": PASSWORD}
    ) as ftp_srv:
        ftp = ftp_srv.ftp()
        try:
            out = io.BytesIO()
            ftp.retrbinary("RETR dev/decl/cli/versions/v1/bundle.tar.gz", out.write)
        finally:
            with_quit(ftp)
    assert out.getvalue() == sent
    assert not scratch_entries(root)


def with_quit(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except ftplib.Error:
        ftp.close()


@pytest.mark.parametrize(
    ("case", "parts", "published"),
    [
        (
            "size-wrong",
            [declare(("a.bin", 5), ("b.bin", 4)), file_part("a.bin", b"12345"),
             file_part("b.bin", b"123")],
            {"a.bin", "b.bin"},
        ),
        (
            "order-differs",
            [declare(("a.bin", 5), ("b.bin", 3)), file_part("b.bin", b"123"),
             file_part("a.bin", b"12345")],
            {"a.bin", "b.bin"},
        ),
        (
            "declared-unsorted",
            [declare(("b.bin", 3), ("a.bin", 5)), file_part("b.bin", b"123"),
             file_part("a.bin", b"12345")],
            {"a.bin", "b.bin"},
        ),
        (
            "file-missing",
            [declare(("a.bin", 5), ("b.bin", 3)), file_part("a.bin", b"12345")],
            {"a.bin"},
        ),
        (
            "undeclared-extra",
            [declare(("a.bin", 5)), file_part("a.bin", b"12345"), file_part("c/x", b"extra")],
            {"a.bin", "c/x"},
        ),
    ],
)  # fmt: skip
def test_a_declaration_the_parts_contradict_still_records_the_right_bundle(
    srv, case, parts, published
):
    _proc, root, _tokens, log = srv
    name = f"decl/{case}"
    reply = post(srv, name, parts)
    assert reply.status_code == 201, reply.text
    assert "(bundle declared, framed again)" in log_line(log, name)
    manifest = json.loads((root / "models" / name / "v1" / "manifest.json").read_text())
    assert {f["path"].removeprefix("payload/") for f in manifest["files"]} == published
    served_bundle(srv, name)


def test_an_upload_without_declaration_still_works(srv):
    _proc, _root, _tokens, log = srv
    reply = post(srv, "decl/old-client", [file_part("w.bin", b"old client bytes")])
    assert reply.status_code == 201, reply.text
    assert "(bundle framed after receipt)" in log_line(log, "decl/old-client")
    served_bundle(srv, "decl/old-client")


@pytest.mark.parametrize(
    ("case", "parts"),
    [
        ("not-json", [("declare", (None, "{nope", "application/json")), file_part("a", b"1")]),
        ("no-files", [("declare", (None, '{"f": []}', "application/json")), file_part("a", b"1")]),
        ("bad-size", [declare(("a", -1)), file_part("a", b"1")]),
        ("bad-path", [declare(("../a", 1)), file_part("a", b"1")]),
        ("after-a-file", [file_part("a", b"1"), declare(("a", 1))]),
        ("twice", [declare(("a", 1)), declare(("a", 1)), file_part("a", b"1")]),
    ],
)
def test_a_malformed_declaration_is_refused_and_leaves_nothing(srv, case, parts):
    _proc, root, _tokens, _log = srv
    name = f"decl/bad-{case}"
    reply = post(srv, name, parts)
    assert reply.status_code == 400, reply.text
    assert error_of(reply)["code"] == "bad_input"
    nothing_left(root, name, b"1")


def test_a_declared_upload_with_a_wrong_sha256_is_422_and_leaves_nothing(srv):
    _proc, root, _tokens, _log = srv
    data = os.urandom(10_000)
    meta = {"sha256": {"a.bin": "0" * 64}}
    parts = [
        declare(("a.bin", len(data))),
        file_part("a.bin", data),
        ("metadata", (None, json.dumps(meta), "application/json")),
    ]
    reply = post(srv, "decl/badsha", parts)
    assert reply.status_code == 422
    nothing_left(root, "decl/badsha", data)


def test_a_declared_upload_cut_mid_stream_leaves_nothing(srv):
    import socket
    from urllib.parse import urlsplit

    proc, root, tokens, _log = srv
    url = urlsplit(proc.url)
    body = (
        b'--cut\r\nContent-Disposition: form-data; name="declare"\r\n\r\n'
        + json.dumps({"files": [{"path": "big.bin", "size": 40_000_000}]}).encode()
        + b'\r\n--cut\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        + os.urandom(3_000_000)
    )
    request = (
        f"POST /api/v1/models/decl/cut/-/versions HTTP/1.1\r\nHost: {url.hostname}\r\n"
        f"Authorization: Bearer {tokens['publish']}\r\n"
        "Content-Type: multipart/form-data; boundary=cut\r\n"
        "Content-Length: 50000000\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request + body)
        time.sleep(0.5)
    nothing_left(root, "decl/cut")


def test_a_server_older_than_the_declare_part_gets_the_upload_again_without_it(tmp_path):
    """A server that refuses the declare part as an unknown field (as servers before it
    did) is sent the same upload again without it, whole and with the right length."""
    import http.server
    import threading

    from registry_cli import RuleViolation

    bodies: list[bytes] = []

    class OldServer(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(body)
            if b'name="declare"' in body:
                status, code, message = 400, "bad_input", "unknown form field 'declare'"
            else:
                status, code, message = 409, "refused", "refused by the fake server"
            doc = json.dumps({"error": {"code": code, "message": message, "hint": None}})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc.encode())

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OldServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = os.urandom(100_000)
        (tmp_path / "w.bin").write_bytes(data)
        reg = RemoteRegistry(f"http://127.0.0.1:{server.server_port}", token="rgt_x")
        with pytest.raises(RuleViolation, match="refused by the fake server"):
            reg.publish("old/server", [tmp_path / "w.bin"])
    finally:
        server.shutdown()
        server.server_close()
    assert len(bodies) == 2
    assert b'name="declare"' in bodies[0] and b'name="declare"' not in bodies[1]
    assert data in bodies[1] and bodies[1].endswith(b"--\r\n")
