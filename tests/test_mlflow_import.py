"""publish --from-mlflow against a real MLflow tracking server (the ``mlflow_server`` fixture).

Runs are logged with the real mlflow client; every test makes its own runs and
uniquely named registered models, so tests share the server without sharing state.
Bad inputs that need no server (URI syntax, ``..`` paths) are checked without one.
"""

from __future__ import annotations

import json
import uuid

import pytest

REFUSED_URI = "http://127.0.0.1:9"  # discard port on loopback: connection refused


def assert_nothing_written(root):
    """No version, no root: a refused or failed import leaves the registry untouched."""
    assert not (root / "models").exists() or not any((root / "models").iterdir())
    tmp = root / ".regctl" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


# ----------------------------------------------------------------- no server needed
@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-mlflow", "runs:/abc123/../secrets"], "'..'"),
        (["--from-mlflow", "runs:/abc123/%2e%2e/secrets"], "segments"),
        (["--from-mlflow", "abc123", "--artifact-path", "a/../../etc/passwd"], "'..'"),
        (["--from-mlflow", "abc123", "--artifact-path", "/etc/passwd"], "must be relative"),
        (["--from-mlflow", "abc123"], "needs --artifact-path"),
        (["--from-mlflow", "runs:/abc123"], "names no artifact path"),
        (["--from-mlflow", "models:/cls/latest"], "invalid model URI"),
        (["--from-mlflow", "s3://bucket/x"], "unsupported MLflow source"),
        (["--from-mlflow", "models:/cls@champion", "--artifact-path", "x"], "applies to runs"),
        (["--artifact-path", "model"], "need --from-mlflow"),
    ],
)
def test_bad_sources_are_exit_2_before_any_request(cli, root, args, message):
    res = cli("publish", "m", *args, "--tracking-uri", REFUSED_URI)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not root.exists()


def test_path_and_from_mlflow_together_is_exit_2(cli, root, model_file):
    res = cli(
        "publish",
        "m",
        str(model_file),
        "--from-mlflow",
        "runs:/abc/model",
        "--tracking-uri",
        REFUSED_URI,
    )
    assert res.exit_code == 2 and "not both" in res.stderr
    assert not root.exists()


def test_no_tracking_uri_is_exit_2(cli, root):
    res = cli("publish", "m", "--from-mlflow", "runs:/abc/model")
    assert res.exit_code == 2 and "no MLflow tracking URI" in res.stderr


def test_unreachable_server_is_exit_6_and_fast(cli, root):
    res = cli("publish", "m", "--from-mlflow", "runs:/abc123/model", "--tracking-uri", REFUSED_URI)
    assert res.exit_code == 6, res.stderr
    assert "unreachable" in res.stderr
    assert not root.exists()


def test_tracking_uri_password_is_not_recorded():
    from registry_cli.formats.mlflow_source import redact

    assert redact("https://bob:s3cret@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


# ----------------------------------------------------------------- a real server
@pytest.fixture
def logged(mlflow_server, tmp_path):
    """One run with metrics, params, a training checkpoint and an MLflow model folder,
    registered as a new model with alias ``champion``."""
    import torch
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.create_experiment(f"regctl-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp)
    rid = run.info.run_id
    client.log_metric(rid, "accuracy", 0.91)
    client.log_metric(rid, "val loss", 0.25)  # MLflow allows spaces; regctl keys do not
    client.log_param(rid, "lr", "0.001")
    client.log_param(rid, "epochs", "3")

    ckpt = tmp_path / "art" / "best_checkpoint.pth"
    ckpt.parent.mkdir()
    net = torch.nn.Linear(4, 2)
    torch.save({"epoch": 3, "model_state_dict": net.state_dict()}, ckpt)
    client.log_artifact(rid, str(ckpt), artifact_path="checkpoints")

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text(
        "flavors:\n  python_function: {loader_module: mlflow.pytorch}\n"
        "signature:\n"
        '  inputs: \'[{"type": "tensor", "tensor-spec": {"dtype": "float32", '
        '"shape": [-1, 4]}}]\'\n'
        "  outputs: null\n"
    )
    (model_dir / "data.bin").write_bytes(b"\x00" * 64)
    client.log_artifacts(rid, str(model_dir), artifact_path="model")
    client.set_terminated(rid)

    name = f"cls-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{rid}/model", run_id=rid)
    client.set_registered_model_alias(name, "champion", mv.version)
    return {
        "uri": mlflow_server,
        "run_id": rid,
        "model": name,
        "version": int(mv.version),
        "client": client,
        "net": net,
    }


@pytest.mark.slow
def test_runs_uri_imports_artifact_metrics_and_params(cli, root, reg, logged):
    rid = logged["run_id"]
    res = cli(
        "publish",
        "cls",
        "--from-mlflow",
        f"runs:/{rid}/checkpoints/best_checkpoint.pth",
        "--tracking-uri",
        logged["uri"],
        "--param",
        "lr=0.002",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert [f["path"] for f in info["files"]] == ["payload/best_checkpoint.pth"]
    assert info["source"]["type"] == "mlflow"
    assert info["source"]["tracking_uri"] == logged["uri"]
    assert info["source"]["run_id"] == rid
    assert info["source"]["artifact_path"] == "checkpoints/best_checkpoint.pth"
    assert info["metrics"] == {"accuracy": 0.91, "val_loss": 0.25}
    assert info["params"] == {"lr": "0.002", "epochs": "3"}  # the command line wins
    manifest = json.loads((root / "models/cls/v1/manifest.json").read_text())
    assert manifest["source"] == info["source"]
    assert reg.verify("cls").ok


@pytest.mark.slow
def test_bare_run_id_with_env_tracking_uri(cli, root, logged, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    res = cli(
        "publish",
        "cls",
        "--from-mlflow",
        logged["run_id"],
        "--artifact-path",
        "model",
        "--metric",
        "accuracy=0.5",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    paths = {f["path"] for f in info["files"]}
    assert {"payload/model/MLmodel", "payload/model/data.bin"} <= paths
    assert info["metrics"]["accuracy"] == 0.5
    assert info["signature"] == {
        "inputs": [{"shape": [None, 4], "dtype": "float32"}],
        "batch_dim": 0,
        "source": "mlflow",
    }


@pytest.mark.slow
@pytest.mark.parametrize("form", ["alias", "number"])
def test_registered_model_with_config_tracking_uri(cli, root, logged, tmp_path, form):
    config = tmp_path / "registry.yaml"
    config.write_text(f"mlflow:\n  tracking_uri: {logged['uri']}\n")
    uri = (
        f"models:/{logged['model']}@champion"
        if form == "alias"
        else f"models:/{logged['model']}/{logged['version']}"
    )
    res = cli("--config", str(config), "publish", "cls", "--from-mlflow", uri, "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert "payload/model/MLmodel" in {f["path"] for f in info["files"]}
    src = info["source"]
    assert src["type"] == "mlflow" and src["run_id"] == logged["run_id"]
    assert src["model_name"] == logged["model"] and src["model_version"] == logged["version"]
    assert src["artifact_path"] == "model"
    assert info["metrics"]["accuracy"] == 0.91


@pytest.mark.slow
def test_mlflow_checkpoint_can_be_converted(cli, root, logged):
    import torch

    res = cli(
        "publish",
        "cls",
        "--from-mlflow",
        f"runs:/{logged['run_id']}/checkpoints",
        "--tracking-uri",
        logged["uri"],
        "--convert",
        "torch-standard",
        "--task",
        "regression",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["standard_artifacts"] == {"pytorch": "payload/model-standard.pt"}
    assert "payload/checkpoints/best_checkpoint.pth" in {f["path"] for f in info["files"]}
    doc = torch.load(root / "models/cls/v1/payload/model-standard.pt", weights_only=True)
    assert torch.equal(doc["state_dict"]["weight"], logged["net"].state_dict()["weight"])
    assert info["source"]["type"] == "mlflow"
    assert not list((root / ".regctl" / "tmp").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("which", ["run", "alias", "version", "model", "artifact"])
def test_unknown_run_model_or_artifact_is_exit_3(cli, root, logged, which):
    uri = {
        "run": "runs:/0123456789abcdef0123456789abcdef/model",
        "alias": f"models:/{logged['model']}@nosuchalias",
        "version": f"models:/{logged['model']}/99",
        "model": "models:/no-such-model-xyz/1",
        "artifact": f"runs:/{logged['run_id']}/no/such/file.pth",
    }[which]
    res = cli("publish", "cls", "--from-mlflow", uri, "--tracking-uri", logged["uri"])
    assert res.exit_code == 3, res.stderr
    assert "Traceback" not in res.stderr
    assert_nothing_written(root)


@pytest.mark.slow
def test_model_logged_with_mlflow_pytorch(cli, root, mlflow_server, monkeypatch):
    """A model logged the MLflow 3 way (a LoggedModel, not run artifacts) keeps its MLmodel."""
    import mlflow
    import numpy as np
    import torch

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    name = f"logged-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", 0.8)
        logged = mlflow.pytorch.log_model(
            torch.nn.Linear(4, 2),
            name="model",
            input_example=np.zeros((1, 4), dtype=np.float32),
            registered_model_name=name,
        )
    mlflow.MlflowClient(mlflow_server).set_registered_model_alias(
        name, "candidate", logged.registered_model_version
    )
    res = cli("publish", "lin", "--from-mlflow", f"models:/{name}@candidate", "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert "payload/model/MLmodel" in {f["path"] for f in info["files"]}
    assert info["source"]["run_id"] == run.info.run_id
    assert info["source"]["model_alias"] == "candidate"
    assert info["metrics"] == {"accuracy": 0.8}
    assert info["signature"]["inputs"] == [{"shape": [None, 4], "dtype": "float32"}]
    assert not any(root.parent.glob("**/mlflow.db"))  # nothing written beside us


def test_plain_publish_imports_neither_mlflow_nor_torch(tmp_path, model_file):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from registry_cli.cli.main import main\n"
        f"rc = main(['--root', {str(tmp_path / 'r')!r}, 'publish', 'm', {str(model_file)!r}])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('mlflow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
