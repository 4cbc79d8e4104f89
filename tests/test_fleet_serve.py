"""``regctl serve --follow --report`` (docs/fleet.md): a real inference server follows
its ring's alias, reports running and healthy to a real serve-registry, and its
reports let a rollout step on; a version that cannot load is reported unhealthy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.fleet_store import FleetStore
from registry_cli.core.rollout import Rollouts
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests import _predict_models as pm
from tests.test_follow import broken_pt2  # noqa: F401  (a fixture)
from tests.test_serve import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    return pm.save_exported(tmp_path_factory.mktemp("pt2") / "model.pt2")


def device_doc(root: Path, name: str, device: str) -> dict | None:
    found = {d["device"]: d for d in FleetStore(ModelRegistry(root).store).devices(name)}
    return found.get(device)


def wait_for(root: Path, name: str, device: str, version: str, state: str) -> dict:
    deadline = time.monotonic() + 60
    doc = None
    while time.monotonic() < deadline:
        doc = device_doc(root, name, device)
        if doc and (doc["version"], doc["state"]) == (version, state):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{device} never reported {version} {state}; last: {doc}")


def test_serve_reports_what_it_runs_and_drives_a_rollout(tmp_path, pt2, broken_pt2):  # noqa: F811
    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    report_token = Tokens(reg.store, reg.states, "setup").create("dev", ["report"]).secret
    for path in (pt2, pt2):
        reg.publish("tiny", [path])
        reg.promote("tiny")
    reg.rollback("tiny")  # champion v1; v2 waits for its rollout
    reg.set_alias("tiny", "ring-canary", 1)
    env = {"HOME": str(tmp_path), "REGCTL_FLEET_STEP_INTERVAL": "3600"}
    with ServeRegistryProcess(root, log=tmp_path / "registry.log", env=env) as registry:
        device_env = {
            "REGCTL_REPORT_URL": registry.url,
            "REGCTL_TOKEN": report_token,
            "REGCTL_CACHE_DIR": str(tmp_path / "cache"),
        }
        srv = Server(
            root, tmp_path / "serve.log", "tiny", "--alias", "ring-canary", "--follow",
            "--poll-interval", "0.2", "--report", "--report-interval", "0.5",
            "--device", "edge1", "--ring", "canary", env=device_env,
        )  # fmt: skip
        try:
            srv.wait_health(loaded=True)
            wait_for(root, "tiny", "edge1", "v1", "healthy")
            ro = Rollouts(ModelRegistry(root))
            ro.start("tiny", "v2", ["canary", "plant"], soak_s=0, min_devices=1)
            doc = wait_for(root, "tiny", "edge1", "v2", "healthy")
            assert doc["ring"] == "canary"
            assert ro.step("tiny")["action"] == "rollout-advance"
            assert ModelRegistry(root).model_state("tiny").aliases["ring-plant"] == 2
            broken = ModelRegistry(root).publish("tiny", [broken_pt2])
            ModelRegistry(root).promote("tiny", version=broken.version)
            ModelRegistry(root).set_alias("tiny", "ring-canary", broken.version)
            doc = wait_for(root, "tiny", "edge1", "v2", "unhealthy")  # v2 still serves
            assert "cannot load" in json.dumps(doc["detail"])
        finally:
            srv.stop()
