"""`regctl serve-registry` (see docs/server.md): a real server process on a loopback port, talked to
with httpx and curl. Routes, scopes, error documents, downloads and path safety.

One server (and root) per module, shared by the tests: each test uses its own model names.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from registry_cli import BadInput, ModelRegistry, RemoteError, RemoteRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd

pytestmark = pytest.mark.slow

SCOPES = ("read", "publish", "promote", "admin")


@dataclass
class Server:
    proc: ServeRegistryProcess
    root: Path
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.proc.url

    def client(self, scope: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def reg(self) -> ModelRegistry:
        return ModelRegistry(self.root)


def make_root(root: Path, scopes=SCOPES) -> dict[str, str]:
    reg = ModelRegistry(root)
    reg.init()
    book = Tokens(reg.store, reg.states, "setup")
    return {s: book.create(f"tok-{s}", [s]).secret for s in scopes}


def server_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "REGCTL_ACTOR": "server-user", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    root = tmp / "registry"
    tokens = make_root(root)
    proc = ServeRegistryProcess(root, log=tmp / "server.log", env=server_env(tmp))
    proc.start()
    yield Server(proc, root, tokens)
    assert proc.stop() == 0, proc.log  # SIGTERM: a clean stop


def upload(client: httpx.Client, name: str, files: dict[str, bytes], metadata=None, **kw):
    parts = [("file", (path, data, "application/octet-stream")) for path, data in files.items()]
    if metadata is not None:
        parts.append(("metadata", (None, json.dumps(metadata), "application/json")))
    return client.post(f"/api/v1/models/{name}/-/versions", files=parts, **kw)


def error_of(reply: httpx.Response) -> dict:
    doc = reply.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "hint"}, doc
    assert "Traceback" not in reply.text
    return doc["error"]


def scratch_entries(root: Path) -> list[str]:
    folder = root / ".regctl" / "tmp"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


# ----------------------------------------------------------------- auth
def test_health_is_open_and_ignores_tokens(srv):
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        reply = httpx.get(f"{srv.url}/api/v1/health", headers=headers)
        assert reply.status_code == 200
        assert reply.json()["status"] == "ok" and "version" in reply.json()


def test_missing_unknown_or_malformed_token_is_401_after_a_delay(srv):
    for headers in ({}, {"Authorization": "Bearer rgt_wrong"}, {"Authorization": "Basic abc"}):
        started = time.monotonic()
        reply = httpx.get(f"{srv.url}/api/v1/models", headers=headers)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert error_of(reply)["code"] == "unauthorized"
        assert time.monotonic() - started >= 0.25


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("read", {"read"}),
        ("publish", {"read", "publish", "tag"}),
        ("promote", {"read", "promote", "alias"}),
        ("admin", {"read", "publish", "tag", "promote", "alias", "ftp"}),
    ],
)
def test_each_scope_gets_403_for_what_it_may_not_do(srv, scope, allowed):
    name = f"scopes/{scope}"
    with srv.client("admin") as admin:
        assert upload(admin, name, {"m.pt": b"x"}).status_code == 201
    with srv.client(scope) as c:
        attempts = {
            "read": lambda: c.get("/api/v1/models"),
            "publish": lambda: upload(c, name, {"m.pt": b"y"}),
            "tag": lambda: c.post(
                f"/api/v1/models/{name}/-/versions/v1/tags", json={"set": {"a": "1"}}
            ),
            "promote": lambda: c.post(f"/api/v1/models/{name}/-/promote", json={"version": "v1"}),
            "alias": lambda: c.put(f"/api/v1/models/{name}/-/aliases/canary", json={"version": 1}),
            "ftp": lambda: c.get("/api/v1/ftp-servers"),
        }
        for action, attempt in attempts.items():
            reply = attempt()
            if action in allowed:
                assert reply.status_code in (200, 201), (action, reply.text)
            else:
                assert reply.status_code == 403, (action, reply.text)
                assert error_of(reply)["code"] == "forbidden"


def test_revoked_and_expired_tokens_are_401_on_the_next_request(srv):
    reg = srv.reg()
    book = Tokens(reg.store, reg.states, "setup")
    short = book.create("short-lived", ["read"], expires_days=1)
    gone = book.create("to-revoke", ["read"])
    for secret in (short.secret, gone.secret):
        assert (
            httpx.get(
                f"{srv.url}/api/v1/models", headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            == 200
        )
    book.revoke("to-revoke")
    key = srv.root / ".regctl/tokens/tokens.json"
    doc = json.loads(key.read_text())
    for t in doc["tokens"]:
        if t["name"] == "short-lived":
            t["expires_at"] = "2001-01-01T00:00:00Z"
    key.write_text(json.dumps(doc))
    for secret in (short.secret, gone.secret):
        reply = httpx.get(f"{srv.url}/api/v1/models", headers={"Authorization": f"Bearer {secret}"})
        assert reply.status_code == 401


def test_openapi_docs_are_served(srv):
    assert httpx.get(f"{srv.url}/docs").status_code == 200
    paths = httpx.get(f"{srv.url}/openapi.json").json()["paths"]
    assert "/api/v1/resolve" in paths and "/api/v1/models/{name}/-/promote" in paths


# ----------------------------------------------------------------- routes
def test_every_read_and_lifecycle_route(srv):
    name = "team/site-a/ppe"
    with srv.client("admin") as c:
        r1 = upload(c, name, {"weights/best.pt": b"one"}, {"metrics": {"map": 0.5}})
        assert r1.status_code == 201 and r1.json()["version"] == "v1"
        r2 = upload(
            c, name, {"weights/best.pt": b"two"}, {"metrics": {"map": 0.7}, "tags": {"ds": "d2"}}
        )
        assert r2.json()["version"] == "v2" and r2.json()["aliases"] == ["candidate"]

        models = {m["name"]: m for m in c.get("/api/v1/models").json()}
        assert models[name]["versions"] == 2 and models[name]["stages"] == {
            "dev": "v2",
            "release": None,
        }

        versions = c.get(f"/api/v1/models/{name}/-/versions").json()
        assert versions["name"] == name and [v["version"] for v in versions["versions"]] == [
            "v1",
            "v2",
        ]
        assert (
            c.get(f"/api/v1/models/{name}/-/versions", params={"stage": "release"}).json()[
                "versions"
            ]
            == []
        )

        shown = c.get(f"/api/v1/models/{name}/-/versions/2").json()
        assert shown == c.get(f"/api/v1/models/{name}/-/versions/v2").json()
        assert shown["bundle"]["sha256"] and shown["files"][0]["path"] == "payload/weights/best.pt"

        best = c.get("/api/v1/resolve", params={"ref": f"{name}:best", "metric": "map"}).json()
        assert best["version"] == "v2"
        assert (
            c.get("/api/v1/resolve", params={"ref": f"{name}:latest", "stage": "dev"}).json()[
                "version"
            ]
            == "v2"
        )

        promoted = c.post(f"/api/v1/models/{name}/-/promote", json={"version": "v1"}).json()
        assert set(promoted) == {"action", "name", "version", "noop", "changed", "message"}
        assert promoted["action"] == "promote" and promoted["version"] == "v1"
        assert c.post(f"/api/v1/models/{name}/-/promote").json()["version"] == "v2"  # @candidate
        assert (
            c.post(f"/api/v1/models/{name}/-/promote", json={"version": 2}).json()["noop"] is True
        )

        rolled = c.post(f"/api/v1/models/{name}/-/rollback").json()
        assert rolled["action"] == "rollback" and rolled["version"] == "v1"
        assert (
            c.get("/api/v1/resolve", params={"ref": f"{name}@candidate"}).json()["version"] == "v2"
        )

        alias = c.put(f"/api/v1/models/{name}/-/aliases/canary", json={"version": "v2"}).json()
        assert alias["action"] == "alias-set"
        assert c.get("/api/v1/resolve", params={"ref": f"{name}@canary"}).json()["version"] == "v2"
        assert c.delete(f"/api/v1/models/{name}/-/aliases/canary").json()["action"] == "alias-rm"

        tagged = c.post(
            f"/api/v1/models/{name}/-/versions/v2/tags", json={"set": {"owner": "qa"}, "rm": ["ds"]}
        )
        assert tagged.json()["changed"]["tags"] == {"set": {"owner": "qa"}, "removed": ["ds"]}
        assert c.get(f"/api/v1/models/{name}/-/versions/v2").json()["tags"] == {"owner": "qa"}

        archived = c.post(
            f"/api/v1/models/{name}/-/versions/v2/archive", json={"reason": "kpi down"}
        )
        assert archived.json()["action"] == "archive"

        audit = c.get("/api/v1/audit", params={"model": name}).json()
        assert [e["action"] for e in audit] == [
            "publish", "publish", "promote", "promote", "promote", "rollback",
            "alias-set", "alias-rm", "tag", "archive",
        ]  # fmt: skip
        assert {e["actor"] for e in audit} == {"tok-admin"}  # the token's name is the actor
        assert c.get("/api/v1/audit", params={"model": name, "limit": 2}).json() == audit[-2:]


def test_error_codes(srv):
    with srv.client("admin") as c:
        upload(c, "errs/m", {"m.pt": b"x"})
        cases = [
            (
                c.post(
                    "/api/v1/models/errs/m/-/promote",
                    content=b"{bad",
                    headers={"Content-Type": "application/json"},
                ),
                400,
            ),
            (c.post("/api/v1/models/errs/m/-/promote", json={"versoin": 1}), 400),
            (c.post("/api/v1/models/errs/m/-/promote", json={"force": True}), 400),  # no reason
            (c.get("/api/v1/audit", params={"limit": "-1"}), 400),
            (c.get("/api/v1/audit", params={"limit": "many"}), 400),
            (c.get("/api/v1/resolve"), 400),  # ref missing
            (c.get("/api/v1/resolve", params={"ref": "bad name!"}), 400),
            (c.get("/api/v1/models/nope/-/versions"), 404),
            (c.get("/api/v1/models/errs/m/-/versions/v9"), 404),
            (c.get("/api/v1/no-such-route"), 404),
            (c.post("/api/v1/models/errs/m/-/rollback"), 409),  # nothing to roll back to
            (c.put("/api/v1/models/errs/m/-/aliases/champion", json={"version": 1}), 409),
            (
                c.post(
                    "/api/v1/models/errs/m/-/versions",
                    content=b"x",
                    headers={"Content-Type": "text/plain"},
                ),
                400,
            ),
        ]
        for reply, status in cases:
            assert reply.status_code == status, (reply.request.url, reply.text)
            code = error_of(reply)["code"]
            assert code == {400: "bad_input", 404: "not_found", 409: "refused"}[status]


def test_publish_from_unreachable_mlflow_is_502(srv):
    with srv.client("publish") as c:
        reply = c.post(
            "/api/v1/models/from/mlflow/-/versions",
            json={
                "from_mlflow": "runs:/0123456789abcdef/model",
                "tracking_uri": "http://127.0.0.1:9",
            },
        )
    assert reply.status_code == 502, reply.text
    assert error_of(reply)["code"] == "remote"
    assert not (srv.root / "models/from/mlflow/v1").exists()


def test_internal_errors_are_500_without_a_traceback(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from registry_cli.core.registry import ModelRegistry as Reg
    from registry_cli.httpapp import create_app
    from registry_cli.server.context import ServerContext

    root = tmp_path / "r"
    tokens = make_root(root, ("read",))
    ctx = ServerContext(root, Reg(root).config)

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Reg, "list_models", boom)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        reply = client.get("/api/v1/models", headers={"Authorization": f"Bearer {tokens['read']}"})
    assert reply.status_code == 500
    assert error_of(reply)["code"] == "internal"
    assert "secret internals" not in reply.text


# ----------------------------------------------------------------- uploads
def test_multi_file_nested_upload(srv):
    files = {
        "weights/best.pt": os.urandom(300_000),
        "weights/extra/last.pt": os.urandom(1000),
        "config.json": b'{"a": 1}',
    }
    sha = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    with srv.client("publish") as c:
        reply = upload(
            c, "up/nested", files, {"sha256": sha, "params": {"lr": 0.1}, "description": "d"}
        )
    assert reply.status_code == 201, reply.text
    doc = reply.json()
    assert {f["path"]: f["sha256"] for f in doc["files"]} == {
        f"payload/{p}": h for p, h in sha.items()
    }
    vdir = Path(doc["path"])
    for path, data in files.items():
        assert (vdir / "payload" / path).read_bytes() == data
    assert doc["params"] == {"lr": "0.1"} and doc["created_by"] == "tok-publish"
    assert srv.reg().verify("up/nested").ok
    assert not scratch_entries(srv.root)


def test_sha256_mismatch_is_422_and_publishes_nothing(srv):
    with srv.client("publish") as c:
        reply = upload(c, "up/badsha", {"a.pt": b"real bytes"}, {"sha256": {"a.pt": "0" * 64}})
    assert reply.status_code == 422
    assert error_of(reply)["code"] == "integrity"
    assert not (srv.root / "models/up/badsha/v1").exists()
    assert not scratch_entries(srv.root)


@pytest.mark.parametrize(
    "filename", ["../evil.pt", "/etc/evil.pt", "a/../../evil.pt", "a//b.pt", "", "a/./b", "a\\b"]
)
def test_bad_upload_filenames_are_refused(srv, filename):
    with srv.client("publish") as c:
        reply = upload(c, "up/evil", {filename: b"x"})
    assert reply.status_code == 400, reply.text
    assert not (srv.root / "models/up/evil/v1").exists()
    assert not (srv.root.parent / "evil.pt").exists() and not Path("/etc/evil.pt").exists()
    assert not scratch_entries(srv.root)


@pytest.mark.parametrize("key", ["arch", "trust_pickle"])
def test_code_running_options_are_refused(srv, key):
    meta = {"convert": "torch-standard", key: "pkg:factory" if key == "arch" else True}
    with srv.client("publish") as c:
        reply = upload(c, "up/arch", {"m.pt": b"x"}, meta)
        assert reply.status_code == 400 and key in error_of(reply)["message"]
        reply = c.post(
            "/api/v1/models/up/arch/-/versions", json={"from_mlflow": "runs:/abc/m", key: True}
        )
        assert reply.status_code == 400
    assert not (srv.root / "models/up/arch/v1").exists()


def test_a_file_and_a_folder_of_the_same_name_are_400(srv):
    with srv.client("publish") as c:
        assert upload(c, "up/clash", {"a": b"file", "a/b.pt": b"under a"}).status_code == 400
        assert upload(c, "up/clash", {"a/b.pt": b"under a", "a": b"file"}).status_code == 400
        assert upload(c, "up/clash", {"a.pt": b"1", "a.pt ": b"2"}).status_code == 201
    assert not scratch_entries(srv.root)


def test_unknown_metadata_and_fields_are_400(srv):
    with srv.client("publish") as c:
        assert upload(c, "up/meta", {"m.pt": b"x"}, {"metricz": {}}).status_code == 400
        assert upload(c, "up/meta", {"m.pt": b"x"}, {"metrics": {"a": "high"}}).status_code == 400
        reply = c.post(
            "/api/v1/models/up/meta/-/versions",
            files=[("other", ("m.pt", b"x", "application/octet-stream"))],
        )
        assert reply.status_code == 400
        garbage = c.post(
            "/api/v1/models/up/meta/-/versions",
            content=b"--zz\r\nnot a part",
            headers={"Content-Type": "multipart/form-data; boundary=zz"},
        )
        assert garbage.status_code == 400
    assert not (srv.root / "models/up/meta/v1").exists()


def _partial_upload(url: str, token: str, name: str, declared: int, sent: bytes) -> None:
    """Send headers and part of a body over a raw socket, then hang up."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    boundary = "cut"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    ).encode()
    request = (
        f"POST /api/v1/models/{name}/-/versions HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(request + head + sent)
        time.sleep(0.5)


def test_upload_cut_mid_stream_publishes_nothing(srv):
    _partial_upload(srv.url, srv.tokens["publish"], "up/cut", 50_000_000, os.urandom(3_000_000))
    deadline = time.monotonic() + 10
    while scratch_entries(srv.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not scratch_entries(srv.root)  # the server removed its own scratch folder
    assert not (srv.root / "models/up/cut").exists()
    with srv.client("read") as c:
        assert c.get("/api/v1/models/up/cut/-/versions").status_code == 404


def test_upload_cut_by_a_killed_server_is_cleaned_by_gc(tmp_path):
    root = tmp_path / "registry"
    tokens = make_root(root, ("publish",))
    proc = ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)).start()
    try:
        t = threading.Thread(  # the same request; the server dies under it
            target=_partial_upload,
            args=(proc.url, tokens["publish"], "kill/me", 50_000_000, os.urandom(2_000_000)),
        )
        t.start()
        deadline = time.monotonic() + 10
        while not scratch_entries(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scratch_entries(root), "the upload never reached the scratch folder"
        proc.stop(signal.SIGKILL)
        t.join()
    finally:
        proc.stop()
    assert scratch_entries(root)  # left behind by the killed process
    gc = subprocess.run(
        regctl_cmd("--root", str(root), "gc", "--json"), capture_output=True, text=True, timeout=60
    )
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["removed"]
    assert not scratch_entries(root)
    assert not (root / "models/kill/me").exists()


def test_max_upload_size_is_413_and_writes_nothing(tmp_path):
    root = tmp_path / "registry"
    tokens = make_root(root, ("publish",))
    with ServeRegistryProcess(
        root, "--max-upload-size", "64KiB", log=tmp_path / "s.log", env=server_env(tmp_path)
    ) as proc:
        headers = {"Authorization": f"Bearer {tokens['publish']}"}
        with httpx.Client(base_url=proc.url, headers=headers, timeout=60) as c:
            reply = upload(c, "big/one", {"m.bin": os.urandom(200_000)})
            assert reply.status_code == 413
            assert error_of(reply)["code"] == "too_large"

            def chunks():  # no Content-Length: the limit is counted as bytes arrive
                yield b"--b\r\nContent-Disposition: form-data; "
                yield b'name="file"; filename="m.bin"\r\n\r\n'
                for _ in range(10):
                    yield os.urandom(20_000)

            streamed = c.post(
                "/api/v1/models/big/one/-/versions",
                content=chunks(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            assert streamed.status_code == 413
            assert upload(c, "big/one", {"m.bin": b"small"}).status_code == 201
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(3_000_000))
        with pytest.raises(BadInput, match="limit"):  # the remote client reads the early 413
            RemoteRegistry(proc.url, token=tokens["publish"]).publish("big/one", [big])
        with pytest.raises(RemoteError, match="refused"):  # and an early 401
            RemoteRegistry(proc.url, token="rgt_wrong").publish("big/one", [big])
    assert [n for n in os.listdir(root / "models/big/one") if n.startswith("v")] == ["v1"]
    assert not scratch_entries(root)


# ----------------------------------------------------------------- downloads
def test_dist_downloads_have_etag_range_and_cache_control(srv):
    with srv.client("admin") as c:
        upload(c, "dl/m", {"m.pt": os.urandom(2_000_000)})
        c.post("/api/v1/models/dl/m/-/promote")
        latest = c.get("/dist/release/dl/m/LATEST")
        assert latest.text == "v1\n" and latest.headers["cache-control"] == "no-cache"
        for doc in ("LATEST.json", "index.json"):
            assert c.get(f"/dist/release/dl/m/{doc}").headers["cache-control"] == "no-cache"
        bundle_url = "/dist/release/dl/m/versions/v1/bundle.tar.gz"
        whole = c.get(bundle_url)
        assert "immutable" in whole.headers["cache-control"]
        etag = whole.headers["etag"]
        assert c.get(bundle_url, headers={"If-None-Match": etag}).status_code == 304
        part = c.get(bundle_url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        resumed = c.get(bundle_url, headers={"Range": "bytes=1000-", "If-Range": etag})
        assert resumed.status_code == 206 and resumed.content == whole.content[1000:]
        stale = c.get(bundle_url, headers={"Range": "bytes=1000-", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == whole.content
        info = json.loads(c.get("/dist/release/dl/m/LATEST.json").text)
        assert hashlib.sha256(whole.content).hexdigest() == info["sha256"]

        f = c.get("/api/v1/models/dl/m/-/versions/v1/files/payload/m.pt")
        assert f.status_code == 200 and "immutable" in f.headers["cache-control"]
        assert f.headers["etag"].strip('"') == hashlib.sha256(f.content).hexdigest()
        assert (
            c.get(
                "/api/v1/models/dl/m/-/versions/v1/files/payload/m.pt",
                headers={"Range": "bytes=0-9"},
            ).content
            == f.content[:10]
        )


@pytest.mark.parametrize(
    "path",
    [
        "../registry.yaml",
        "%2e%2e/registry.yaml",
        "%2E%2E/audit.jsonl",
        "%252e%252e/audit.jsonl",
        "release/dl/m/%2e%2e/%2e%2e/%2e%2e/%2e%2e/audit.jsonl",
        "release/..%2f..%2f..%2faudit.jsonl",
        "%2fetc%2fpasswd",
        "//etc/passwd",
        "release/dl/m/escape",
        "release/dl/m/escape-dir/passwd",
    ],
)
def test_dist_traversal_is_refused(srv, path):
    dist_model = srv.root / "dist/release/dl/m"
    if not (dist_model / "escape").is_symlink():
        with srv.client("admin") as c:
            upload(c, "dl/m", {"m.pt": b"x"})
            c.post("/api/v1/models/dl/m/-/promote")
        (dist_model / "escape").symlink_to(srv.root / "audit.jsonl")
        (dist_model / "escape-dir").symlink_to("/etc")
    reply = subprocess.run(
        ["curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
         "-H", f"Authorization: Bearer {srv.tokens['read']}", f"{srv.url}/dist/{path}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert reply.stdout in ("404", "400"), (path, reply.stdout)


@pytest.mark.parametrize(
    "path",
    [
        "../version.yaml",
        "payload/../version.yaml",
        "payload/%2e%2e/version.yaml",
        "payload/%252e%252e/version.yaml",
        "version.yaml",
        "%2fetc%2fpasswd",
        "payload/missing.pt",
    ],
)
def test_files_traversal_is_refused(srv, path):
    with srv.client("admin") as c:
        if c.get("/api/v1/models/dl/files/-/versions").status_code == 404:
            upload(c, "dl/files", {"m.pt": b"x"})
    reply = subprocess.run(
        ["curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
         "-H", f"Authorization: Bearer {srv.tokens['read']}",
         f"{srv.url}/api/v1/models/dl/files/-/versions/v1/files/{path}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert reply.stdout in ("404", "400"), (path, reply.stdout)


# ----------------------------------------------------------------- start-up
def test_start_up_is_refused_without_tokens_unless_anonymous_read(tmp_path, regctl_proc, root):
    ModelRegistry(root).init()
    res = regctl_proc("serve-registry", "--port", "0", timeout=60)
    assert res.returncode == 2
    assert "no API tokens" in res.stderr and "regctl token create" in res.stderr
    with ServeRegistryProcess(root, "--anonymous-read", log=tmp_path / "a.log") as proc:
        assert httpx.get(f"{proc.url}/api/v1/models").json() == []
        assert httpx.get(f"{proc.url}/dist/release/none/LATEST").status_code == 404
        refused = httpx.post(f"{proc.url}/api/v1/models/x/-/promote", json={})
        assert refused.status_code == 401
        wrong = httpx.get(f"{proc.url}/api/v1/models", headers={"Authorization": "Bearer bad"})
        assert wrong.status_code == 401  # a token that is sent must be valid
    assert proc.returncode == 0


def test_server_binds_loopback_by_default_and_prints_its_url(srv):
    assert srv.proc.host == "127.0.0.1"
    lines = [ln for ln in srv.proc.log.splitlines() if "serving" in ln]
    assert lines and lines[0].startswith("regctl serve-registry: serving ") and srv.url in lines[0]
    from registry_cli.settings import SECTIONS

    assert SECTIONS["server"]["host"].default == "127.0.0.1"


def test_no_secret_in_logs_audit_or_replies(srv):
    with srv.client("admin") as c:
        upload(c, "sec/m", {"m.pt": b"x"})
        replies = [c.get("/api/v1/models").text, c.get("/api/v1/audit").text]
    everything = srv.proc.log + (srv.root / "audit.jsonl").read_text() + "".join(replies)
    for secret in srv.tokens.values():
        assert secret not in everything


def test_reads_follow_every_change_made_beside_the_server(srv, tmp_path):
    """The read routes reuse answers while the model's state is unchanged: a change by
    the CLI or library on the same root shows on the very next request."""
    reg = srv.reg()
    src = tmp_path / "w.pt"
    for i in range(3):
        src.write_bytes(os.urandom(100 + i))
        reg.publish("cache/m", [src])
    with srv.client("read") as c:

        def champion():
            reply = c.get("/api/v1/resolve", params={"ref": "cache/m@champion"})
            return reply.json()["version"] if reply.status_code == 200 else reply.status_code

        assert champion() == 404
        for v in (1, 2, 3):
            reg.promote("cache/m", version=v)
            assert champion() == champion() == f"v{v}"
        reg.rollback("cache/m")
        assert champion() == "v2"
        reg.tag("cache/m", 2, {"stage": "canary"})
        assert c.get("/api/v1/models/cache/m/-/versions/v2").json()["tags"] == {"stage": "canary"}
        reg.archive("cache/m", 3)
        assert c.get("/api/v1/models/cache/m/-/versions/3").json()["status"] == "archived"
