"""The FTP control plane of `regctl serve-registry` (see docs/server.md): an admin token starts,
lists and stops `regctl serve-ftp` children; the password goes by environment only."""

from __future__ import annotations

import ftplib
import io
import socket
import subprocess
import time

import httpx
import pytest

from registry_cli import ModelRegistry
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow

PASSWORD = "ftp-Pa55-never-shown-9f2c"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_admin_starts_lists_and_stops_ftp_servers(tmp_path, model_file):
    root = tmp_path / "registry"
    tokens = make_root(root, ("admin", "promote"))
    reg = ModelRegistry(root)
    reg.publish("team/ppe", [model_file])
    reg.promote("team/ppe")
    proc = ServeRegistryProcess(root, log=tmp_path / "server.log", env=server_env(tmp_path))
    proc.start()
    try:
        admin = httpx.Client(
            base_url=proc.url, headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=60
        )
        body = {"host": "127.0.0.1", "port": 0, "user": "mlops", "password": PASSWORD}
        promote_only = {"Authorization": f"Bearer {tokens['promote']}"}
        assert (
            httpx.post(
                f"{proc.url}/api/v1/ftp-servers", json=body, headers=promote_only
            ).status_code
            == 403
        )

        started = admin.post("/api/v1/ftp-servers", json=body)
        assert started.status_code == 201, started.text
        doc = started.json()
        assert set(doc) == {"id", "host", "port", "user", "running"}
        assert doc["running"] is True and doc["user"] == "mlops" and doc["port"] > 0
        assert PASSWORD not in started.text

        # the password is on no command line
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "serve-ftp" in ps and PASSWORD not in ps

        with ftplib.FTP() as ftp:  # the child serves dist/ with that password
            ftp.connect("127.0.0.1", doc["port"], timeout=10)
            ftp.login("mlops", PASSWORD)
            out = io.BytesIO()
            ftp.retrbinary("RETR release/team/ppe/LATEST", out.write)
            assert out.getvalue() == b"v1\n"

        anon = admin.post("/api/v1/ftp-servers", json={"port": 0, "anonymous": True}).json()
        listed = admin.get("/api/v1/ftp-servers")
        assert [d["id"] for d in listed.json()] == [doc["id"], anon["id"]]
        assert PASSWORD not in listed.text

        stopped = admin.delete(f"/api/v1/ftp-servers/{doc['id']}")
        assert stopped.status_code == 200 and stopped.json()["running"] is False
        assert not _accepts(doc["port"])
        assert admin.delete(f"/api/v1/ftp-servers/{doc['id']}").status_code == 404
        assert [d["id"] for d in admin.get("/api/v1/ftp-servers").json()] == [anon["id"]]

        bad = admin.post("/api/v1/ftp-servers", json={"port": 0, "user": "x"})  # no password
        assert bad.status_code == 400 and PASSWORD not in bad.text
        assert (
            admin.post("/api/v1/ftp-servers", json={"port": 0, "pasword": "x"}).status_code == 400
        )
        admin.close()
    finally:
        assert proc.stop() == 0
    # the children stop with the server
    deadline = time.monotonic() + 10
    while _accepts(anon["port"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _accepts(anon["port"])
    assert PASSWORD not in proc.log
    assert PASSWORD not in (root / "audit.jsonl").read_text()
