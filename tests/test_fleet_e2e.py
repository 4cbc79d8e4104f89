"""A rollout end to end with real processes (docs/fleet.md): a real serve-registry,
simulated devices that run the real ``regctl pull --alias ring-<ring> --report`` in
bounded loops on two rings, ``regctl --remote ... rollout step`` by hand and by the
server, an unhealthy canary that holds, abort, and reports through a dead server that
arrive later from the outbox."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from registry_cli import ModelRegistry
from registry_cli.core.fleet_store import FleetStore
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd

pytestmark = pytest.mark.slow


class Fleet:
    """A root, its tokens, a server process, and devices with their own caches."""

    def __init__(self, tmp: Path, model_file: Path, *, step_interval: str = "3600") -> None:
        self.tmp = tmp
        self.root = tmp / "registry"
        reg = ModelRegistry(self.root)
        reg.init()
        book = Tokens(reg.store, reg.states, "setup")
        self.tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("report", "promote")}
        self.model_file = model_file
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "HOME": str(home),
            "NO_COLOR": "1",
            "REGCTL_FLEET_STEP_INTERVAL": step_interval,
        }
        self.server: ServeRegistryProcess | None = None

    def two_released(self, name: str) -> None:
        """v1 is champion and what every ring runs; v2 is released (then rolled back)."""
        reg = ModelRegistry(self.root)
        for _ in range(2):
            reg.publish(name, [self.model_file])
            reg.promote(name)
        reg.rollback(name)  # champion v1 again: v2 waits in the last stage for a rollout
        for ring in ("canary", "plant"):
            reg.set_alias(name, f"ring-{ring}", 1)

    def start(self) -> str:
        self.server = ServeRegistryProcess(
            self.root, log=self.tmp / f"server-{time.time_ns()}.log", env=self.env
        )
        self.server.start()
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            assert self.server.stop() == 0, self.server.log
            self.server = None

    def regctl(self, *args: str, token: str = "promote") -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, **self.env, REGCTL_TOKEN=self.tokens[token])
        return subprocess.run(
            regctl_cmd(*args), capture_output=True, text=True, timeout=120, env=env
        )

    def remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.server is not None
        return self.regctl("--remote", self.server.url, *args)

    def device_pull(self, name: str, device: str, ring: str, *extra: str, url: str | None = None):
        """One real ``regctl pull`` of a device following its ring's alias, reporting."""
        source = url or (self.server.url if self.server else "http://127.0.0.1:9")
        return self.regctl(
            "pull", name, "--from", source, "--cache-dir", str(self.tmp / f"cache-{device}"),
            "--device", device, "--ring", ring, "--report", "--json", *extra,
            token="report",
        )  # fmt: skip

    def health(self, name: str, device: str, ring: str, version: str, state: str) -> None:
        """What the device's inference server reports once the model runs."""
        assert self.server is not None
        reply = httpx.post(
            f"{self.server.url}/api/v1/fleet/reports",
            json={
                "report_id": f"{device}-{time.time_ns()}",
                "device": device,
                "ring": ring,
                "model": name,
                "version": version,
                "manifest_sha256": None,
                "state": state,
            },
            headers={"Authorization": f"Bearer {self.tokens['report']}"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text

    def round(self, name: str, devices: dict[str, str], unhealthy: set[str] = frozenset()):
        """Every device pulls its ring's alias once and reports its health; the versions."""
        got = {}
        for device, ring in devices.items():
            res = self.device_pull(name, device, ring, "--alias", f"ring-{ring}")
            assert res.returncode == 0, res.stderr
            version = json.loads(res.stdout)["version"]
            state = "unhealthy" if device in unhealthy else "healthy"
            self.health(name, device, ring, version, state)
            got[device] = version
        return got

    def aliases(self, name: str) -> dict[str, str]:
        assert self.server is not None
        reply = httpx.get(
            f"{self.server.url}/dist/release/{name}/aliases.json",
            headers={"Authorization": f"Bearer {self.tokens['report']}"},
        )
        assert reply.status_code == 200
        return reply.json()


DEVICES = {"c1": "canary", "c2": "canary", "p1": "plant", "p2": "plant", "p3": "plant"}


@pytest.fixture
def fleet(tmp_path, model_file):
    f = Fleet(tmp_path, model_file)
    yield f
    f.stop()


def test_rollout_through_two_rings_ends_with_the_champion(fleet):
    fleet.two_released("demo")
    fleet.start()
    res = fleet.remote("rollout", "start", "demo", "--version", "v2", "--rings",
                       "canary,plant", "--soak", "0", "--min-devices", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert fleet.aliases("demo")["ring-canary"] == "v2"
    for _loop in range(2):  # bounded: the canary moves, the plant stays
        got = fleet.round("demo", DEVICES)
        assert got == {"c1": "v2", "c2": "v2", "p1": "v1", "p2": "v1", "p3": "v1"}
    status = json.loads(fleet.remote("fleet", "status", "demo", "--json").stdout)
    rings = {r["ring"]: r for r in status["models"][0]["rings"]}
    assert rings["canary"]["on_target"] == 2 and rings["plant"]["on_target"] == 3
    res = fleet.remote("rollout", "step", "demo", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["action"] == "rollout-advance"
    assert fleet.aliases("demo")["ring-plant"] == "v2"
    assert fleet.round("demo", DEVICES) == dict.fromkeys(DEVICES, "v2")
    res = fleet.remote("rollout", "step", "demo", "--json")
    assert json.loads(res.stdout)["action"] == "rollout-complete", res.stdout
    shown = json.loads(fleet.remote("resolve", "demo@champion", "--json").stdout)
    assert shown["version"] == "v2"
    rollout = json.loads(fleet.remote("rollout", "status", "demo", "--json").stdout)
    assert rollout["state"] == "completed"
    actions = [e["action"] for e in ModelRegistry(fleet.root).audit("demo").entries]
    assert {"rollout-start", "rollout-advance", "rollout-complete", "promote"} <= set(actions)


def test_an_unhealthy_canary_holds_and_abort_restores_every_alias(fleet):
    fleet.two_released("hold")
    fleet.start()
    before = fleet.aliases("hold")
    res = fleet.remote("rollout", "start", "hold", "--version", "v2", "--rings",
                       "canary,plant", "--soak", "0", "--min-devices", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    for _loop in range(2):
        fleet.round("hold", DEVICES, unhealthy={"c2"})
        res = fleet.remote("rollout", "step", "hold", "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["noop"] is True
        assert "holding" in json.loads(res.stdout)["message"]
        assert fleet.aliases("hold")["ring-plant"] == "v1"
    status = json.loads(fleet.remote("fleet", "status", "hold", "--json").stdout)
    canary = next(r for r in status["models"][0]["rings"] if r["ring"] == "canary")
    assert canary["failures"] == 1 and canary["failed_devices"][0]["device"] == "c2"
    res = fleet.remote("rollout", "abort", "hold", "--json")
    assert res.returncode == 0, res.stderr
    assert fleet.aliases("hold") == before
    assert fleet.round("hold", DEVICES) == dict.fromkeys(DEVICES, "v1")
    assert fleet.remote("rollout", "step", "hold", "--json").returncode == 0  # aborted: no-op
    assert fleet.aliases("hold") == before


def test_the_server_steps_rollouts_by_itself(tmp_path, model_file):
    f = Fleet(tmp_path, model_file, step_interval="0.5")
    try:
        f.two_released("auto")
        f.start()
        res = f.remote("rollout", "start", "auto", "--version", "v2", "--rings", "canary,plant",
                       "--soak", "0")  # fmt: skip
        assert res.returncode == 0, res.stderr
        f.round("auto", {"c1": "canary"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and f.aliases("auto").get("ring-plant") != "v2":
            time.sleep(0.5)
        assert f.aliases("auto")["ring-plant"] == "v2"
    finally:
        f.stop()


def test_reports_through_a_dead_server_arrive_later_from_the_outbox(fleet):
    fleet.two_released("box")
    url = fleet.start()
    res = fleet.device_pull("box", "d1", "canary", "--version", "v1")
    assert res.returncode == 0, res.stderr
    fleet.stop()  # the uplink is gone; the version is cached, so the pull works offline
    res = fleet.device_pull("box", "d1", "canary", "--version", "v1", url=url)
    assert res.returncode == 0, res.stderr
    assert "kept in the outbox" in res.stderr
    outbox = fleet.tmp / "cache-d1" / "regctl" / ".fleet-outbox"
    waiting = [p.name.split("-", 1)[1][:-5] for p in outbox.glob("*.json")]
    assert len(waiting) == 1
    fleet.start()
    res = fleet.device_pull("box", "d1", "canary", "--version", "v1")
    assert res.returncode == 0, res.stderr
    assert list(outbox.glob("*.json")) == []
    (doc,) = FleetStore(ModelRegistry(fleet.root).store).devices("box")
    assert waiting[0] in doc["seen"] and doc["reports"] == 3


def test_a_real_server_refuses_bad_reports_and_stores_nothing(fleet):
    fleet.two_released("bad")
    url = fleet.start()
    good = {"report_id": "r1", "device": "d", "model": "bad", "version": "v1", "state": "healthy",
            "ring": "canary", "manifest_sha256": None}  # fmt: skip
    for body, token, status in [
        ({**good, "state": "on-fire"}, "report", 400),
        ({k: v for k, v in good.items() if k != "device"}, "report", 400),
        ({**good, "detail": "x" * 10000}, "report", 400),
        (good, "promote", 403),
    ]:
        reply = httpx.post(
            f"{url}/api/v1/fleet/reports",
            json=body,
            headers={"Authorization": f"Bearer {fleet.tokens[token]}"},
        )
        assert reply.status_code == status, reply.text
    assert list(FleetStore(ModelRegistry(fleet.root).store).devices("bad")) == []
    assert not (fleet.root / "fleet").exists()


def test_remote_ingest_and_exit_codes(fleet, tmp_path):
    fleet.two_released("far")
    fleet.start()
    out = tmp_path / "offline.jsonl"
    res = fleet.regctl(
        "pull", "far", "--from", str(fleet.root), "--cache-dir", str(tmp_path / "c"),
        "--device", "ship-1", "--ring", "sea", "--report-file", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert fleet.remote("fleet", "ingest", str(out)).returncode == 6  # promote may not report
    url = fleet.server.url
    res = fleet.regctl("--remote", url, "fleet", "ingest", str(out), "--json", token="report")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"accepted": 1, "duplicates": 0}
    res = fleet.regctl("--remote", url, "fleet", "ingest", str(out), "--json", token="report")
    assert json.loads(res.stdout) == {"accepted": 0, "duplicates": 1}
    status = json.loads(fleet.remote("fleet", "status", "far", "--ring", "sea", "--json").stdout)
    assert status["models"][0]["rings"][0]["devices"] == 1
    res = fleet.remote("rollout", "start", "far", "--version", "v3", "--rings", "a")
    assert res.returncode == 3 and res.stderr.startswith("error: ")
    ModelRegistry(fleet.root).publish("far", [fleet.model_file])  # v3, only in dev
    res = fleet.remote("rollout", "start", "far", "--version", "v3", "--rings", "a")
    assert res.returncode == 4 and "not an active version" in res.stderr
    assert fleet.remote("rollout", "status", "nope").returncode == 3
    res = fleet.regctl("--remote", fleet.server.url, "rollout", "step", "far", token="report")
    assert res.returncode == 6  # a report token may not promote (403)
