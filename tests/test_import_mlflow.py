"""regctl import mlflow://HOST:PORT against the suite's real ``mlflow server``.

A registered model of 4 versions (each from its own run, with metrics, params,
tags and a description), aliases champion/rollback/candidate and a user alias,
v2 in the legacy stage Production and v1 Archived; imported, then checked
through ``regctl versions/show/resolve`` and the audit log.
"""

from __future__ import annotations

import datetime as _dt
import json
import urllib.parse
import uuid
import warnings

import pytest


@pytest.fixture
def mlflow_model(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.create_experiment(f"import-{uuid.uuid4().hex[:8]}")
    name = f"busan-plant1-welding-ppe-{uuid.uuid4().hex[:6]}"  # MLflow 3 refuses "/" in names
    client.create_registered_model(name)
    runs = {}
    for n in range(1, 5):
        run = client.create_run(exp)
        rid = run.info.run_id
        client.log_metric(rid, "mAP", 0.5 + n / 10)
        client.log_param(rid, "epochs", str(10 * n))
        art = tmp_path / f"art{n}" / "weights"
        art.mkdir(parents=True)
        (art / "best.pt").write_bytes(f"weights {n}".encode() * 100)
        client.log_artifacts(rid, str(art), artifact_path="weights")
        client.set_terminated(rid)
        client.create_model_version(
            name,
            f"runs:/{rid}/weights",
            run_id=rid,
            tags={"backend": "fp32", "scenario": f"run-{n}"},
            description=f"training run {n}",
        )
        runs[n] = rid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy stages are deprecated in MLflow 3
        client.transition_model_version_stage(name, "1", "Archived")
        client.transition_model_version_stage(name, "2", "Production")
    client.set_registered_model_alias(name, "champion", "3")
    client.set_registered_model_alias(name, "rollback", "2")
    client.set_registered_model_alias(name, "candidate", "4")
    client.set_registered_model_alias(name, "canary", "4")
    host = urllib.parse.urlsplit(mlflow_server).netloc
    return {"uri": mlflow_server, "url": f"mlflow://{host}", "name": name, "runs": runs}


@pytest.mark.slow
def test_import_mlflow_registry(cli, reg, mlflow_model):
    name, url = mlflow_model["name"], mlflow_model["url"]
    plan = cli("import", url, "--model", name, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert [(r["version"], r["source"], r["action"]) for r in json.loads(plan.stdout)] == [
        (f"v{n}", f"models:/{name}/{n}", "import") for n in range(1, 5)
    ]
    assert not reg.root.exists()

    res = cli("import", url, "--model", name, "--json")
    assert res.exit_code == 0, res.stderr
    assert [r["action"] for r in json.loads(res.stdout)] == ["imported"] * 4

    versions = json.loads(cli("versions", name, "--json").stdout)["versions"]
    assert [(v["version"], v["status"], v["stages"], v["aliases"]) for v in versions] == [
        ("v1", "archived", ["dev"], []),
        ("v2", "active", ["dev", "release"], ["rollback"]),
        ("v3", "active", ["dev", "release"], ["champion"]),
        ("v4", "active", ["dev"], ["canary", "candidate"]),
    ]
    for alias, want in (("champion", "v3"), ("rollback", "v2"), ("candidate", "v4")):
        assert cli("resolve", f"{name}@{alias}").stdout.strip() == want
    assert cli("resolve", f"{name}@canary").stdout.strip() == "v4"
    assert cli("resolve", name, "--stage", "release").stdout.strip() == "v3"

    show = json.loads(cli("show", f"{name}:v3", "--json").stdout)
    assert show["source"]["uri"] == f"models:/{name}/3"
    assert show["source"]["type"] == "mlflow"
    assert show["source"]["run_id"] == mlflow_model["runs"][3]
    assert show["metrics"] == {"mAP": pytest.approx(0.8)}
    assert show["params"] == {"epochs": "30"}
    assert show["tags"] == {"backend": "fp32", "scenario": "run-3"}
    assert show["description"] == "training run 3"
    assert [f["path"] for f in show["files"]] == ["payload/weights/best.pt"]
    from mlflow import MlflowClient

    mv = MlflowClient(mlflow_model["uri"]).get_model_version(name, "3")
    created = _dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, _dt.timezone.utc)
    assert show["created_at"] == created.isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )  # MLflow's time, not the import's

    promotes = [e for e in reg.audit(name).entries if e["action"] == "promote"]
    assert [e["version"] for e in promotes] == ["v2", "v3"]
    assert {e["details"]["reason"] for e in promotes} == {
        f"imported from MLflow {mlflow_model['uri']}"
    }
    archives = [e for e in reg.audit(name).entries if e["action"] == "archive"]
    assert [e["version"] for e in archives] == ["v1"]
    assert reg.verify(name).ok

    again = cli("import", url, "--model", name, "--json")
    assert again.exit_code == 0, again.stderr
    assert [r["action"] for r in json.loads(again.stdout)] == ["skip"] * 4
    assert [e["action"] for e in reg.audit(name).entries].count("publish") == 4


@pytest.mark.slow
def test_new_mlflow_versions_are_imported_on_rerun(cli, reg, mlflow_model, tmp_path):
    from mlflow import MlflowClient

    name, url = mlflow_model["name"], mlflow_model["url"]
    assert cli("import", url, "--model", name).exit_code == 0
    client = MlflowClient(mlflow_model["uri"])
    rid = mlflow_model["runs"][4]
    client.create_model_version(name, f"runs:/{rid}/weights", run_id=rid)
    res = cli("import", url, "--model", name, "--json")
    assert res.exit_code == 0, res.stderr
    assert [r["action"] for r in json.loads(res.stdout)] == ["skip"] * 4 + ["imported"]
    assert reg.model_state(name).versions.max() == 5


def test_unknown_mlflow_model_and_unreachable_server(cli, root):
    res = cli("import", "mlflow://127.0.0.1:9", "--model", "x")
    assert res.exit_code == 6, res.stderr
    assert "unreachable" in res.stderr
    res = cli("import", "mlflow://bob:pw@127.0.0.1:9")
    assert res.exit_code == 2 and "password inside" in res.stderr and "pw@" not in res.stderr
    assert not root.exists()
