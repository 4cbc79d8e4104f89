"""Remote use beyond plain uploads: HTTPS with a private CA, and a publish from MLflow
that the registry server imports itself (the JSON body of a publish, docs/server.md)."""

from __future__ import annotations

import json
import ssl
import subprocess
import uuid

import httpx
import pytest

from registry_cli import ModelRegistry, RemoteError, RemoteRegistry
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_https_with_a_private_ca(tmp_path, tls_files, model_file, cli):
    cert, key = tls_files
    root = tmp_path / "registry"
    tokens = make_root(root, ("admin",))
    with ServeRegistryProcess(
        root, "--tls-cert", str(cert), "--tls-key", str(key),
        log=tmp_path / "s.log", env=server_env(tmp_path),
    ) as proc:  # fmt: skip
        assert proc.url.startswith("https://")
        reg = RemoteRegistry(proc.url, token=tokens["admin"], ca_cert=cert)
        assert reg.publish("tls/m", [model_file]).vname == "v1"
        assert reg.get("tls/m").vname == "v1"
        with pytest.raises(RemoteError):  # an unknown CA is refused
            RemoteRegistry(proc.url, token=tokens["admin"]).list_models()
        reply = httpx.get(
            f"{proc.url}/api/v1/models",
            headers={"Authorization": f"Bearer {tokens['admin']}"},
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert reply.status_code == 200
        config = tmp_path / "remote.yaml"
        token = tmp_path / "token"
        token.write_text(tokens["admin"])
        config.write_text(f"remote: {{url: '{proc.url}', token_file: {token}, ca_cert: {cert}}}\n")
        res = cli("--config", str(config), "resolve", "tls/m", root_dir=None)
        assert res.exit_code == 0 and res.stdout == "v1\n", res.stderr


def test_tls_needs_both_files(tmp_path, tls_files, regctl_proc, root):
    cert, _key = tls_files
    make_root(root, ("read",))
    res = regctl_proc("serve-registry", "--port", "0", "--tls-cert", str(cert), timeout=60)
    assert res.returncode == 2 and "--tls-key" in res.stderr


def test_remote_publish_from_mlflow_is_imported_by_the_server(mlflow_server, tmp_path, cli):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    run = client.create_run(client.create_experiment(f"regctl-{uuid.uuid4().hex[:8]}"))
    rid = run.info.run_id
    client.log_metric(rid, "accuracy", 0.93)
    client.log_param(rid, "lr", "0.01")
    weights = tmp_path / "art" / "model.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"\x01" * 256)
    client.log_artifact(rid, str(weights), artifact_path="weights")
    client.set_terminated(rid)

    root = tmp_path / "registry"
    tokens = make_root(root, ("publish",))
    token = tmp_path / "token"
    token.write_text(tokens["publish"])
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as proc:
        res = cli(
            "--remote", proc.url, "--token-file", str(token),
            "publish", "ml/imported", "--from-mlflow", f"runs:/{rid}/weights",
            "--tracking-uri", mlflow_server, "--json",
            root_dir=None,
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["source"]["type"] == "mlflow" and doc["metrics"] == {"accuracy": 0.93}
        assert doc["created_by"] == "tok-publish"
        gone = cli(
            "--remote", proc.url, "--token-file", str(token),
            "publish", "ml/imported", "--from-mlflow", f"runs:/{rid}/weights",
            "--tracking-uri", "http://127.0.0.1:9",
            root_dir=None,
        )  # fmt: skip
        assert gone.exit_code == 6  # 502 from the server: MLflow unreachable
    info = ModelRegistry(root).get("ml/imported")
    assert info.vname == "v1" and info.files[0]["path"] == "payload/weights/model.pt"


def test_remote_audit_warns_about_damaged_lines_like_local(tmp_path, model_file, cli):
    root = tmp_path / "registry"
    tokens = make_root(root, ("read",))
    ModelRegistry(root).publish("audit/m", [model_file])
    with open(root / "audit.jsonl", "ab") as fh:
        fh.write(b'{"time": "cut mid-wr\n')
    token = tmp_path / "token"
    token.write_text(tokens["read"])
    local = cli("audit", "--json", root_dir=root)
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as proc:
        there = cli(
            "--remote", proc.url, "--token-file", str(token), "audit", "--json", root_dir=None
        )
    assert (there.exit_code, there.stdout, there.stderr) == (
        local.exit_code,
        local.stdout,
        local.stderr,
    )
    assert "unreadable line" in there.stderr


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    import signal

    root = tmp_path / "registry"
    make_root(root, ("read",))
    proc = ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)).start()
    assert httpx.get(f"{proc.url}/api/v1/health").status_code == 200
    assert proc.stop(signal.SIGINT) == 0
    assert "Traceback" not in proc.log
