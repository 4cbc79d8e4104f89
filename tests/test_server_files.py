"""``GET /api/v1/models/{name}/-/versions/{v}/files/payload/...`` serves a version's
payload file on both root kinds: the folder itself, and on an ``s3://`` root the
verified copy the server fetches into its local cache once (docs/server.md)."""

from __future__ import annotations

import hashlib
import os

import pytest
from fastapi.testclient import TestClient

from registry_cli import ModelRegistry
from registry_cli.httpapp import create_app
from registry_cli.server.context import ServerContext


@pytest.mark.parametrize("backend", ["folder", "s3"], indirect=True)
def test_a_payload_file_is_served_on_both_root_kinds(root, tmp_path):
    src = tmp_path / "src" / "weights"
    src.mkdir(parents=True)
    data = os.urandom(300_000)
    (src / "model.pt").write_bytes(data)
    reg = ModelRegistry(root)
    reg.publish("team/m", [src])
    secret = reg_token(reg)
    ctx = ServerContext(root, reg.config, auth_delay_s=0.0)
    url = "/api/v1/models/team/m/-/versions/v1/files/payload/weights/model.pt"
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(ctx)) as client:
        whole = client.get(url, headers=auth)
        assert whole.status_code == 200, whole.text
        assert whole.content == data
        assert whole.headers["etag"].strip('"') == hashlib.sha256(data).hexdigest()
        part = client.get(url, headers={**auth, "Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        missing = client.get(url.replace("model.pt", "other.pt"), headers=auth)
        assert missing.status_code == 404
        assert client.get(url).status_code == 401


def reg_token(reg: ModelRegistry) -> str:
    from registry_cli.core.tokens import Tokens

    return Tokens(reg.store, reg.states, "tester").create("reader", ["read"]).secret
