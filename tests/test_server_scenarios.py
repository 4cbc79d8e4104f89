"""The SQLite stage registry's scenarios A–C (shared/seeds/sqlite-stage-registry.md),
replayed over HTTP with curl-shaped requests against a real `regctl serve-registry`.

Its stages None → Staging → Production map to regctl's dev → staging → production
(configured), "exactly one Production" to @champion, rollback_to to `rollback`, and
Archived to `archive`. Illegal transitions are 409 and leave the state unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow


class Curl:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def __call__(self, method: str, path: str, *args: str) -> tuple[int, object]:
        out = subprocess.run(
            ["curl", "-sS", "-X", method, "-H", f"Authorization: Bearer {self.token}",
             "-w", "\n%{http_code}", *args, f"{self.url}{path}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        body, _, code = out.stdout.rpartition("\n")
        return int(code), json.loads(body) if body else None

    def json(self, method: str, path: str, doc: dict | None = None) -> tuple[int, object]:
        data = json.dumps(doc if doc is not None else {})
        return self(method, path, "-H", "Content-Type: application/json", "-d", data)

    def publish(self, name: str, file: Path, metadata: dict) -> tuple[int, object]:
        return self(
            "POST",
            f"/api/v1/models/{name}/-/versions",
            "-F", f"file=@{file};filename=model.pt",
            "-F", f"metadata={json.dumps(metadata)};type=application/json",
        )  # fmt: skip


@pytest.fixture
def curl(tmp_path):
    root = tmp_path / "registry"
    root.mkdir()
    (root / "registry.yaml").write_text("stages: [dev, staging, production]\n")
    tokens = make_root(root, ("admin",))
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as proc:
        yield Curl(proc.url, tokens["admin"])


def _state(curl: Curl, name: str) -> object:
    code, doc = curl("GET", f"/api/v1/models/{name}/-/versions")
    assert code == 200
    return doc


def _champions(curl: Curl, name: str) -> list[str]:
    versions = _state(curl, name)["versions"]  # type: ignore[index]
    return [v["version"] for v in versions if "champion" in v["aliases"]]


def test_scenarios_a_to_c(curl, tmp_path):
    name = "faq-bot"
    model = tmp_path / "model.pt"
    base = f"/api/v1/models/{name}/-"

    # --- A: v1 → staging → production, v2 candidate, rollback, archive
    model.write_bytes(b"weights 1.0.0")
    code, v1 = curl.publish(
        name, model, {"tags": {"baseline": "yes"}, "params": {"commit": "a1b2c3"}}
    )
    assert code == 201 and v1["version"] == "v1" and v1["stages"] == ["dev"]
    assert curl.json("POST", f"{base}/promote", {"version": "v1", "to": "staging"})[0] == 200
    code, change = curl.json("POST", f"{base}/promote", {"version": "v1", "to": "production"})
    assert code == 200 and change["changed"]["aliases"]["champion"] == [None, "v1"]
    assert _champions(curl, name) == ["v1"]

    model.write_bytes(b"weights 1.1.0")
    code, v2 = curl.publish(
        name, model, {"tags": {"canary": "yes"}, "params": {"commit": "d4e5f6"}}
    )
    assert code == 201 and v2["aliases"] == ["candidate"]
    assert curl.json("POST", f"{base}/promote", {"version": "v2", "to": "staging"})[0] == 200
    assert curl.json("POST", f"{base}/promote", {"version": "v2", "to": "production"})[0] == 200
    assert _champions(curl, name) == ["v2"]
    code, rolled = curl.json("POST", f"{base}/rollback")  # v2's KPI went down
    assert code == 200 and rolled["version"] == "v1"
    assert _champions(curl, name) == ["v1"]
    code, shown = curl("GET", f"/api/v1/resolve?ref={name}@candidate")
    assert code == 200 and shown["version"] == "v2"
    code, archived = curl.json("POST", f"{base}/versions/v2/archive", {"reason": "kpi down"})
    assert code == 200 and archived["action"] == "archive"
    code, shown = curl("GET", f"{base}/versions/v2")
    assert shown["status"] == "archived" and shown["aliases"] == []

    # --- B: exactly one production: promoting v3 demotes v1 to @rollback
    model.write_bytes(b"weights 1.2.0")
    assert curl.publish(name, model, {})[0] == 201
    assert curl.json("POST", f"{base}/promote", {"version": "v3", "to": "staging"})[0] == 200
    assert curl.json("POST", f"{base}/promote", {"version": "v3", "to": "production"})[0] == 200
    assert _champions(curl, name) == ["v3"]
    code, prev = curl("GET", f"/api/v1/resolve?ref={name}@rollback")
    assert prev["version"] == "v1"

    # --- C: illegal transitions are refused (409) and change nothing
    model.write_bytes(b"weights 2.0.0")
    assert curl.publish(name, model, {})[0] == 201  # v4, in dev only
    before = _state(curl, name)
    audit_before = curl("GET", f"/api/v1/audit?model={name}")[1]
    refusals = [
        ("POST", f"{base}/promote", {"version": "v2", "to": "production"}),  # archived
        ("POST", f"{base}/promote", {"version": "v2", "to": "staging"}),  # archived
        ("POST", f"{base}/promote", {"version": "v4", "to": "production"}),  # skips staging
        ("POST", f"{base}/versions/v3/archive", {}),  # the champion
        ("PUT", f"{base}/aliases/champion", {"version": "v4"}),  # reserved alias
        ("POST", f"{base}/rollback", {"to": "v4"}),  # never released
    ]
    for method, path, doc in refusals:
        code, error = curl.json(method, path, doc)
        assert code == 409, (path, doc, error)
        assert error["error"]["code"] == "refused" and error["error"]["message"]
    assert _state(curl, name) == before
    assert curl("GET", f"/api/v1/audit?model={name}")[1] == audit_before
    assert curl.json("POST", f"{base}/promote", {"version": "v9"})[0] == 404
    assert curl.json("POST", f"{base}/promote", {"to": "nowhere"})[0] == 400
