"""MLflow client code as the teams wrote it (the alias lifecycle and inference seeds),
run in a subprocess by tests/test_mlflow_registry_clients.py with MLFLOW_TRACKING_URI
on a real ``mlflow server`` and MLFLOW_REGISTRY_URI on regctl or on MLflow itself.

    python mlflow_seed_client.py seed NAME       # the seed: register, promote, roll back, load
    python mlflow_seed_client.py extras NAME     # more of the API and its errors (regctl only)

Prints one JSON document of what it saw. Nothing here knows which registry it talks to.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class Scale(mlflow.pyfunc.PythonModel):
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, context, model_input, params=None):
        return np.asarray(model_input, dtype="float64") * self.factor


# ----------------------------------------------------------------- the seed's registry code
def register_model(client, run_id, artifact_path, model_name, alias="candidate", tags=None):
    mv = mlflow.register_model(f"runs:/{run_id}/{artifact_path}", model_name)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, mv.version, key, value)
    client.set_registered_model_alias(model_name, alias, mv.version)
    return mv.version


def version_by_alias(client, name, alias):
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def promote_to_champion(client, name, version=None):
    version = version or version_by_alias(client, name, "candidate")
    champion = version_by_alias(client, name, "champion")
    if champion is not None:
        client.set_registered_model_alias(name, "rollback", champion)
    client.set_registered_model_alias(name, "champion", version)


def rollback(client, name):
    target = version_by_alias(client, name, "rollback")
    failed = version_by_alias(client, name, "champion")
    client.set_registered_model_alias(name, "champion", target)
    client.set_registered_model_alias(name, "candidate", failed)


def train(factor: float, accuracy: float) -> str:
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_param("factor", factor)
        mlflow.pyfunc.log_model(name="model", python_model=Scale(factor), pip_requirements=[])
    return run.info.run_id


def predict(name: str) -> float:
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return float(np.asarray(model.predict(np.array([[1.0, 2.0]])))[0][0])


def seed(name: str) -> dict:
    client = MlflowClient()
    v1 = register_model(client, train(2.0, 0.95), "model", name, tags={"trained_by": "seed"})
    promote_to_champion(client, name)
    v2 = register_model(client, train(3.0, 0.96), "model", name, tags={"trained_by": "seed"})
    promote_to_champion(client, name)
    after_promote = {a: version_by_alias(client, name, a) for a in ("champion", "rollback")}
    first = predict(name)
    rollback(client, name)
    second = predict(name)
    folder = mlflow.artifacts.download_artifacts(
        f"models:/{name}/{v2}", dst_path=tempfile.mkdtemp()
    )
    versions = client.search_model_versions(f"name = '{name}'")
    return {
        "versions": [v1, v2],
        "after_promote": after_promote,
        "champion": version_by_alias(client, name, "champion"),
        "candidate": version_by_alias(client, name, "candidate"),
        "rollback": version_by_alias(client, name, "rollback"),
        "predictions": [first, second],
        "downloaded": sorted(p.name for p in Path(folder).iterdir()),
        "searched": sorted(v.version for v in versions),
        "tags": client.get_model_version(name, v1).tags,
        "model": client.get_registered_model(name).name,
    }


# ----------------------------------------------------------------- beyond the seed
def error_of(call) -> str | None:
    try:
        call()
    except MlflowException as exc:
        return f"{exc.error_code}: {exc.message.split(': ', 1)[-1]}"
    return None


def extras(name: str) -> dict:
    client = MlflowClient()
    out: dict = {}
    token = os.environ["MLFLOW_TRACKING_TOKEN"]
    # a run whose artifacts hold an MLflow model folder: registered by its artifact URI
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", 0.5)
        local = Path(tempfile.mkdtemp()) / "weights"
        mlflow.pyfunc.save_model(str(local), python_model=Scale(5.0), pip_requirements=[])
        mlflow.log_artifacts(str(local), artifact_path="weights")
        source = run.info.artifact_uri + "/weights"
    client.create_registered_model(name)
    mv = client.create_model_version(
        name, source, run_id=run.info.run_id, tags={"origin": "run"}, description="from a run"
    )
    out["created"] = {
        "version": mv.version,
        "source": mv.source,
        "run_id": mv.run_id,
        "tags": mv.tags,
        "description": mv.description,
        "stage": mv.current_stage,
    }
    out["exists"] = error_of(lambda: client.create_registered_model(name))
    out["gate"] = error_of(lambda: client.set_registered_model_alias(name, "champion", mv.version))
    out["gate_stage"] = error_of(
        lambda: client.transition_model_version_stage(name, mv.version, "Production")
    )
    out["unknown"] = error_of(lambda: client.get_registered_model(name + "-nope"))
    out["bad_filter"] = error_of(lambda: client.search_model_versions("version_number > 1"))
    client.set_registered_model_alias(name, "canary", mv.version)
    out["canary"] = client.get_model_version_by_alias(name, "canary").version
    client.delete_registered_model_alias(name, "canary")
    out["canary_gone"] = error_of(lambda: client.get_model_version_by_alias(name, "canary"))
    client.set_model_version_tag(name, mv.version, "reviewed", "yes")
    client.delete_model_version_tag(name, mv.version, "origin")
    out["tags_after"] = client.get_model_version(name, mv.version).tags
    out["latest"] = [v.version for v in client.get_latest_versions(name, stages=["Staging"])]
    out["search_models"] = [m.name for m in client.search_registered_models(f"name LIKE '{name}%'")]
    out["uri"] = client.get_model_version_download_uri(name, mv.version)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    out["predict"] = float(np.asarray(loaded.predict(np.array([[1.0]])))[0][0])
    out["archived"] = client.transition_model_version_stage(
        name, mv.version, "Archived"
    ).current_stage
    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["READ_TOKEN"]
    out["read_sets_alias"] = error_of(
        lambda: client.set_registered_model_alias(name, "canary", mv.version)
    )
    out["read_reads"] = client.get_registered_model(name).name
    del os.environ["MLFLOW_TRACKING_TOKEN"]
    out["no_token"] = error_of(lambda: client.get_registered_model(name))
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return out


if __name__ == "__main__":
    mode, model_name = sys.argv[1], sys.argv[2]
    print(json.dumps(seed(model_name) if mode == "seed" else extras(model_name)))
