"""The real MLflow client, in subprocesses, with MLFLOW_TRACKING_URI on a real ``mlflow
server`` and MLFLOW_REGISTRY_URI on a real ``regctl serve-registry``; the same seed script
against MLflow's own registry is the baseline (tests/mlflow_seed_client.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("mlflow_seed_client.py")


@pytest.fixture
def regctl(tmp_path, mlflow_server):
    root = tmp_path / "registry"
    tokens = make_root(root, ("read", "admin"))
    (root / "registry.yaml").write_text(
        f"mlflow:\n  tracking_uri: {mlflow_server}\n"
        "gates:\n  release:\n    metrics: {accuracy: '>= 0.9'}\n"
    )
    with ServeRegistryProcess(root, log=tmp_path / "s.log", env=server_env(tmp_path)) as proc:
        yield proc.url, root, tokens


def run_client(tmp_path, mode, name, tracking, registry, token, read_token=""):
    home = tmp_path / f"client-{mode}-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        MLFLOW_TRACKING_URI=tracking,
        MLFLOW_REGISTRY_URI=registry,
        MLFLOW_TRACKING_TOKEN=token,
        READ_TOKEN=read_token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="1",
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), mode, name],
        capture_output=True, text=True, timeout=600, env=env, cwd=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_seed_scripts_run_unchanged_against_regctl_and_mlflow(regctl, mlflow_server, tmp_path):
    url, root, tokens = regctl
    name = f"ppe-{uuid.uuid4().hex[:8]}"
    ours = run_client(tmp_path, "seed", name, mlflow_server, url, tokens["admin"])
    theirs = run_client(tmp_path, "seed", name, mlflow_server, mlflow_server, "unused")
    for key in ("versions", "after_promote", "champion", "candidate", "predictions", "tags",
                "model", "searched"):  # fmt: skip
        assert ours[key] == theirs[key], key
    assert ours["predictions"] == [3.0, 2.0]
    assert ours["after_promote"] == {"champion": "2", "rollback": "1"}
    assert "MLmodel" in ours["downloaded"] and ours["downloaded"] == theirs["downloaded"]
    # regctl's documented state after rollback: v1 champion, v2 candidate, no earlier champion
    assert ours["rollback"] is None and theirs["rollback"] == "1"
    reg = ModelRegistry(root)
    state = reg.model_state(name)
    assert state.all_aliases() == {"champion": 1, "candidate": 2}
    v1 = reg.get(f"{name}:v1")
    assert v1.source["type"] == "mlflow" and v1.source["run_id"] and v1.metrics["accuracy"] == 0.95
    assert v1.tags["trained_by"] == "seed"
    actions = [(e["action"], e["actor"]) for e in reg.audit(name).entries]
    assert actions == [
        ("publish", "tok-admin"), ("tag", "tok-admin"), ("promote", "tok-admin"),
        ("publish", "tok-admin"), ("tag", "tok-admin"), ("promote", "tok-admin"),
        ("rollback", "tok-admin"),
    ], actions  # fmt: skip


def test_more_of_the_api_and_its_errors_through_the_real_client(regctl, mlflow_server, tmp_path):
    url, root, tokens = regctl
    name = f"runmodel-{uuid.uuid4().hex[:8]}"
    out = run_client(tmp_path, "extras", name, mlflow_server, url, tokens["admin"], tokens["read"])
    created = out["created"]
    assert created["version"] == "1" and created["source"].startswith("mlflow-artifacts:")
    assert created["tags"] == {"origin": "run"} and created["description"] == "from a run"
    assert created["run_id"] and created["stage"] == "Staging"
    assert out["exists"].startswith("RESOURCE_ALREADY_EXISTS")
    assert out["gate"].startswith("INVALID_STATE: v1 fails the gate for 'release': accuracy")
    assert out["gate_stage"].startswith("INVALID_STATE") and "fails the gate" in out["gate_stage"]
    assert out["unknown"].startswith("RESOURCE_DOES_NOT_EXIST")
    assert (
        out["bad_filter"].startswith("INVALID_PARAMETER_VALUE")
        and "version_number > 1" in (out["bad_filter"])
    )
    assert out["canary"] == "1" and out["canary_gone"].startswith("RESOURCE_DOES_NOT_EXIST")
    assert out["tags_after"] == {"reviewed": "yes"}
    assert out["latest"] == ["1"] and out["search_models"] == [name]
    assert out["uri"].startswith(f"{url}/api/2.0/mlflow-artifacts/artifacts/models/{name}/-/v1")
    assert out["predict"] == 5.0 and out["archived"] == "Archived"
    assert out["read_sets_alias"].startswith("PERMISSION_DENIED")
    assert out["read_reads"] == name
    assert out["no_token"].startswith("UNAUTHENTICATED")
    info = ModelRegistry(root).get(f"{name}:v1")
    assert info.status == "archived" and info.source["uri"] == created["source"]
    assert info.metrics["accuracy"] == 0.5 and info.description == "from a run"


def test_a_payload_changed_on_disk_is_never_sent_whole(regctl, tmp_path):
    """curl sees the response end early (exit 18) when a file no longer matches its
    manifest; the intact file downloads, and a Range of it too."""
    url, root, tokens = regctl
    src = tmp_path / "model"
    src.mkdir()
    (src / "MLmodel").write_text("flavors: {}\n")
    (src / "weights.bin").write_bytes(os.urandom(3 << 20))
    info = ModelRegistry(root).publish("integrity", [src])
    base = f"{url}/api/2.0/mlflow-artifacts/artifacts/models/integrity/-/v1/model/weights.bin"
    auth = ["-H", f"Authorization: Bearer {tokens['read']}"]

    def curl(*args):
        return subprocess.run(["curl", "-sS", "-o", str(tmp_path / "got"), *auth, *args, base],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    assert curl().returncode == 0
    assert (tmp_path / "got").read_bytes() == (src / "weights.bin").read_bytes()
    assert curl("-r", "100-199").returncode == 0
    assert (tmp_path / "got").read_bytes() == (src / "weights.bin").read_bytes()[100:200]
    target = info.path / "payload" / "model" / "weights.bin"
    target.chmod(0o644)
    with open(target, "r+b") as f:
        f.seek(2 << 20)
        f.write(b"\0" * 16)
    cut = curl()
    assert cut.returncode == 18, (cut.returncode, cut.stderr)  # partial file
    assert (tmp_path / "got").stat().st_size < 3 << 20
