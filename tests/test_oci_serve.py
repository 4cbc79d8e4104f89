"""serve-registry speaks the OCI distribution API (read side) at /v2/: a real server
process, read with httpx and with skopeo as the independent OCI client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

from registry_cli import ModelRegistry
from registry_cli.core import signatures
from registry_cli.core.tokens import Tokens
from registry_cli.oci import mapping
from registry_cli.server.launch import ServeRegistryProcess
from tests.oci_registry import have_registry, skopeo
from tests.test_server import server_env
from tests.test_sign import make_key

pytestmark = pytest.mark.slow
needs_skopeo = pytest.mark.skipif(not have_registry(), reason="skopeo missing")


class Served:
    def __init__(self, proc: ServeRegistryProcess, root: Path, tokens: dict[str, str]) -> None:
        self.proc, self.root, self.tokens = proc, root, tokens

    @property
    def host(self) -> str:
        return self.proc.url.split("://", 1)[1]

    def get(self, path: str, token: str | None = "read", method: str = "GET", **kw):
        headers = dict(kw.pop("headers", {}))
        if token:
            headers.setdefault("Authorization", f"Bearer {self.tokens[token]}")
        return httpx.request(method, f"{self.proc.url}{path}", headers=headers, timeout=60, **kw)


def _publish(root: Path, keys: Path) -> None:
    reg = ModelRegistry(root)
    src = root.parent / "src"
    src.mkdir()
    (src / "model.pt").write_bytes(os.urandom(300_000))
    (src / "README.md").write_text("# ppe\n")
    reg.publish("team/ppe", [src / "model.pt", src / "README.md"], metrics={"acc": 0.9})
    reg.promote("team/ppe")
    (src / "model.pt").write_bytes(os.urandom(1000))
    reg.publish("team/ppe", [src / "model.pt"])
    key, _pub = make_key(keys, "alice")
    signatures.sign(reg, "team/ppe:v1", key, "alice")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oci-serve")
    root = tmp / "registry"
    reg = ModelRegistry(root)
    reg.init()
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "report")}
    _publish(root, tmp / "keys")
    proc = ServeRegistryProcess(root, log=tmp / "server.log", env=server_env(tmp))
    proc.start()
    yield Served(proc, root, tokens)
    assert proc.stop() == 0, proc.log


def _artifact(root: Path, v: int) -> mapping.Artifact:
    facts = json.loads((root / "models/team/ppe" / f"v{v}" / "manifest.json").read_bytes())
    return mapping.artifact_of(facts)


def _oci_error(reply: httpx.Response, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    assert reply.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    errors = reply.json()["errors"]
    assert len(errors) == 1 and errors[0]["code"] == code, errors
    return errors[0]["message"]


def test_base_endpoint_and_auth(srv):
    ok = srv.get("/v2/")
    assert ok.status_code == 200 and ok.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    basic = base64.b64encode(f"anyone:{srv.tokens['read']}".encode()).decode()
    assert (
        srv.get("/v2/", token=None, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    )
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!"}):
        reply = srv.get("/v2/team/ppe/tags/list", token=None, headers=headers)
        _oci_error(reply, 401, "UNAUTHORIZED")
        assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert srv.get("/v2/", token="report").status_code == 200  # every scope includes read


def test_tags_are_versions_aliases_stages_and_signatures(srv):
    reply = srv.get("/v2/team/ppe/tags/list")
    assert reply.status_code == 200
    digest = _artifact(srv.root, 1).digest
    assert reply.json() == {
        "name": "team/ppe",
        "tags": sorted(["v1", "v2", "dev", "release", "champion", "candidate",
                        mapping.signature_tag(digest)]),
    }  # fmt: skip
    page = srv.get("/v2/team/ppe/tags/list?n=2")
    assert len(page.json()["tags"]) == 2 and 'rel="next"' in page.headers["Link"]


def test_manifests_by_tag_and_digest_and_blobs_with_range(srv):
    art = _artifact(srv.root, 1)
    for ref in ("v1", "champion", "release", art.digest):
        for method in ("GET", "HEAD"):
            reply = srv.get(f"/v2/team/ppe/manifests/{ref}", method=method)
            assert reply.status_code == 200, (ref, reply.text)
            assert reply.headers["Content-Type"] == mapping.MANIFEST_MEDIA_TYPE
            assert reply.headers["Docker-Content-Digest"] == art.digest
            assert int(reply.headers["Content-Length"]) == len(art.manifest)
            assert reply.content == (art.manifest if method == "GET" else b"")
    assert srv.get("/v2/team/ppe/manifests/dev").content == _artifact(srv.root, 2).manifest
    config = srv.get(f"/v2/team/ppe/blobs/{art.config_digest}")
    assert config.status_code == 200 and config.content == art.config
    weight = next(layer for layer in art.layers if layer.title == "model.pt")
    data = (srv.root / "models/team/ppe/v1" / weight.path).read_bytes()
    head = srv.get(f"/v2/team/ppe/blobs/{weight.digest}", method="HEAD")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Docker-Content-Digest"] == weight.digest
    part = srv.get(f"/v2/team/ppe/blobs/{weight.digest}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    whole = srv.get(f"/v2/team/ppe/blobs/{weight.digest}")
    assert hashlib.sha256(whole.content).hexdigest() == weight.sha256
    sig = srv.get(f"/v2/team/ppe/manifests/{mapping.signature_tag(art.digest)}")
    assert sig.status_code == 200 and json.loads(sig.content)["subject"]["digest"] == art.digest
    signer, digest, _size = mapping.parse_signatures(sig.content, "x")[0]
    assert signer == "alice"
    stored = (srv.root / "models/team/ppe/v1/signatures/alice.sig").read_bytes()
    assert srv.get(f"/v2/team/ppe/blobs/{digest}").content == stored


def test_unknown_names_tags_digests_and_pushes(srv):
    _oci_error(srv.get("/v2/team/nope/tags/list"), 404, "NAME_UNKNOWN")
    _oci_error(srv.get("/v2/team/manifests/v1"), 404, "NAME_UNKNOWN")  # a prefix, not a model
    _oci_error(srv.get("/v2/team/ppe/manifests/v9"), 404, "MANIFEST_UNKNOWN")
    _oci_error(srv.get("/v2/team/ppe/manifests/sha256:" + "0" * 64), 404, "MANIFEST_UNKNOWN")
    _oci_error(srv.get("/v2/team/ppe/blobs/sha256:" + "0" * 64), 404, "BLOB_UNKNOWN")
    _oci_error(srv.get("/v2/team/ppe/blobs/sha256:xyz"), 400, "DIGEST_INVALID")
    _oci_error(srv.get("/v2/Bad Name!/tags/list"), 400, "NAME_INVALID")
    for method, path in (
        ("POST", "/v2/team/ppe/blobs/uploads/"),
        ("PUT", "/v2/team/ppe/manifests/v3"),
        ("PATCH", "/v2/team/ppe/blobs/uploads/x"),
        ("DELETE", "/v2/team/ppe/manifests/v1"),
    ):
        reply = srv.get(path, method=method)
        message = _oci_error(reply, 405, "UNSUPPORTED")
        assert "regctl publish" in message and reply.headers["Allow"] == "GET, HEAD"
    assert (srv.root / "models/team/ppe/v3").exists() is False


@needs_skopeo
def test_skopeo_inspects_and_copies_what_regctl_serves(srv, tmp_path, cli):
    creds = f"--creds=ci:{srv.tokens['read']}"
    art = _artifact(srv.root, 1)
    got = skopeo(
        "inspect", "--raw", "--tls-verify=false", creds, f"docker://{srv.host}/team/ppe:v1"
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.encode() == art.manifest
    out = tmp_path / "copied"
    got = skopeo(
        "copy", "--src-tls-verify=false", f"--src-creds=ci:{srv.tokens['read']}",
        f"docker://{srv.host}/team/ppe:champion", f"oci:{out}:champion",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    for layer in art.layers:  # byte for byte
        copied = (out / "blobs/sha256" / layer.sha256).read_bytes()
        assert copied == (srv.root / "models/team/ppe/v1" / layer.path).read_bytes()
    assert (out / "blobs/sha256" / art.digest[7:]).read_bytes() == art.manifest
    dest = tmp_path / "b"  # and regctl imports what skopeo copied: the same facts
    got = cli("import", f"oci-layout:{out}", "--json", root_dir=dest)
    assert got.exit_code == 0, got.stderr
    mine = dest / "models/team/ppe/v1/manifest.json"
    assert mine.read_bytes() == (srv.root / "models/team/ppe/v1/manifest.json").read_bytes()
    bad = skopeo(
        "inspect", "--tls-verify=false", "--creds=ci:wrong", f"docker://{srv.host}/team/ppe:v1"
    )
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()


@needs_skopeo
def test_anonymous_read_opens_v2(tmp_path):
    root = tmp_path / "registry"
    _publish(root, tmp_path / "keys")
    proc = ServeRegistryProcess(
        root, "--anonymous-read", log=tmp_path / "s.log", env=server_env(tmp_path)
    )
    proc.start()
    try:
        host = proc.url.split("://", 1)[1]
        # (plain `skopeo inspect` decodes image configs only: for an artifact it needs --raw)
        got = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/team/ppe:release")
        assert got.returncode == 0, got.stderr
        assert mapping.digest_of(got.stdout.encode()) == _artifact(root, 1).digest
        push = httpx.post(f"{proc.url}/v2/team/ppe/blobs/uploads/")
        assert push.status_code == 405
    finally:
        assert proc.stop() == 0, proc.log
