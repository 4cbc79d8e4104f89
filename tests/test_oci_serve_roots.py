"""/v2/ on both root kinds, in process: a folder, and an ``s3://`` root whose blobs the
server serves from its verified local copy; tags follow every change of the model."""

from __future__ import annotations

import hashlib
import os

import pytest
from fastapi.testclient import TestClient

from registry_cli import ModelRegistry
from registry_cli.core import signatures
from registry_cli.httpapp import create_app
from registry_cli.oci import mapping
from registry_cli.server.context import ServerContext
from tests.test_server_files import reg_token
from tests.test_sign import make_key


@pytest.mark.parametrize("backend", ["folder", "s3"], indirect=True)
def test_v2_serves_manifests_and_blobs_and_follows_changes(root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(200_000)
    (src / "model.safetensors").write_bytes(data)
    reg = ModelRegistry(root)
    reg.publish("team/m", [src / "model.safetensors"])
    auth = {"Authorization": f"Bearer {reg_token(reg)}"}
    ctx = ServerContext(root, reg.config, auth_delay_s=0.0)
    with TestClient(create_app(ctx)) as client:
        tags = client.get("/v2/team/m/tags/list", headers=auth).json()["tags"]
        assert tags == ["candidate", "dev", "v1"]
        art = mapping.artifact_of(reg.get("team/m:v1").manifest)
        got = client.get("/v2/team/m/manifests/dev", headers=auth)
        assert got.status_code == 200 and got.content == art.manifest
        blob = client.get(
            f"/v2/team/m/blobs/sha256:{hashlib.sha256(data).hexdigest()}", headers=auth
        )
        assert blob.status_code == 200 and blob.content == data
        part = client.get(
            f"/v2/team/m/blobs/{art.layers[0].digest}", headers={**auth, "Range": "bytes=-10"}
        )
        assert part.status_code == 206 and part.content == data[-10:]
        reg.promote("team/m")  # the cached index follows the model's state
        tags = client.get("/v2/team/m/tags/list", headers=auth).json()["tags"]
        assert tags == ["champion", "dev", "release", "v1"]
        key, _pub = make_key(tmp_path / "keys", "alice")
        signatures.sign(reg, "team/m:v1", key, "alice")  # no state change: still listed
        tags = client.get("/v2/team/m/tags/list", headers=auth).json()["tags"]
        assert mapping.signature_tag(art.digest) in tags
        assert client.get("/v2/team/m/manifests/v1").status_code == 401
