"""Rollouts in rings, in process (docs/fleet.md): the rules of start, step, pause,
resume and abort on both root kinds, their audit lines, and the ``rollout`` webhook
events; ``pull --alias`` and the Python client's reports against a folder tree."""

from __future__ import annotations

import json
import uuid

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.fleet import Fleet
from registry_cli.core.rollout import Rollouts
from registry_cli.errors import BadInput, NotFound, RuleViolation
from tests.test_events import Receiver, hook, write_config


@pytest.fixture(params=["folder", "s3"])
def any_root(request, tmp_path):
    if request.param == "s3":
        return request.getfixturevalue("s3_root")
    return tmp_path / "registry"


def released(root, model_file, name: str = "demo") -> ModelRegistry:
    """champion v1; v2 released and rolled back, so a rollout can make it champion."""
    reg = ModelRegistry(root)
    reg.init()
    for _ in range(2):
        reg.publish(name, [model_file])
        reg.promote(name)
    reg.rollback(name)
    reg.publish(name, [model_file])  # v3: only in dev
    return reg


def healthy(reg: ModelRegistry, device: str, ring: str, version: str = "v2", **kw) -> None:
    Fleet(reg).ingest(
        {
            "report_id": uuid.uuid4().hex,
            "device": device,
            "ring": ring,
            "model": "demo",
            "version": version,
            "manifest_sha256": None,
            "state": kw.pop("state", "healthy"),
            **kw,
        }
    )


def test_a_rollout_moves_ring_by_ring_and_promotes(any_root, model_file):
    reg = released(any_root, model_file)
    ro = Rollouts(reg)
    started = ro.start("demo", "v2", ["canary", "all"], soak_s=0, min_devices=1)
    assert started["changed"]["ring"] == "canary"
    assert reg.model_state("demo").aliases["ring-canary"] == 2
    assert ro.step("demo")["noop"] is True  # nobody has reported yet
    healthy(reg, "c1", "canary")
    advanced = ro.step("demo")
    assert advanced["action"] == "rollout-advance" and advanced["changed"]["ring"] == "all"
    assert reg.model_state("demo").aliases["ring-all"] == 2
    healthy(reg, "c1", "canary")
    healthy(reg, "p1", "plant")
    done = ro.step("demo")
    assert done["action"] == "rollout-complete"
    assert reg.get("demo@champion").version == 2
    assert ro.status("demo")["state"] == "completed"
    assert ro.step("demo")["noop"] is True
    with pytest.raises(RuleViolation):
        ro.abort("demo")  # completed: rollback is the way back
    actions = [e["action"] for e in reg.audit("demo").entries]
    assert actions[-6:] == [
        "alias-set", "rollout-start", "alias-set", "rollout-advance", "promote",
        "rollout-complete",
    ]  # fmt: skip


def test_start_needs_a_released_active_version_and_one_live_rollout(tmp_path, model_file):
    reg = released(tmp_path / "registry", model_file)
    ro = Rollouts(reg)
    with pytest.raises(RuleViolation, match="not an active version of 'release'"):
        ro.start("demo", "v3", ["canary"])
    with pytest.raises(NotFound):
        ro.start("demo", "v9", ["canary"])
    with pytest.raises(BadInput):
        ro.start("demo", "v2", ["canary", "canary"])
    with pytest.raises(BadInput):
        ro.start("demo", "v2", ["bad ring"])
    with pytest.raises(BadInput):
        ro.start("demo", "v2", ["canary"], min_healthy=0)
    ro.start("demo", "v2", ["canary"])
    with pytest.raises(RuleViolation, match="running rollout"):
        ro.start("demo", "v2", ["canary"])
    with pytest.raises(NotFound):
        Rollouts(reg).step("other")


def test_soak_min_devices_and_min_healthy_hold(tmp_path, model_file):
    reg = released(tmp_path / "registry", model_file)
    ro = Rollouts(reg)
    ro.start("demo", "v2", ["canary", "all"], soak_s=3600, min_devices=2, min_healthy=0.5)
    healthy(reg, "c1", "canary")
    healthy(reg, "c2", "canary")
    held = ro.step("demo")
    assert held["noop"] and "0 of 2" in held["message"]  # not soaked for an hour
    doc = ro.load("demo")[0]
    doc["soak_s"] = 0
    reg.store.put("fleet/models/demo/-/rollout.json", json.dumps(doc).encode())
    healthy(reg, "c2", "canary", state="unhealthy")
    held = ro.step("demo")
    assert held["noop"] and "1 of 2" in held["message"]  # min_devices 2
    healthy(reg, "c3", "canary")
    assert ro.step("demo")["action"] == "rollout-advance"  # 2 of 3 >= 50%


def test_pause_resume_and_abort_restore_every_alias(any_root, model_file):
    reg = released(any_root, model_file)
    reg.set_alias("demo", "ring-canary", 1)
    before = dict(reg.model_state("demo").aliases)
    ro = Rollouts(reg)
    ro.start("demo", "v2", ["canary", "plant", "all"], soak_s=0)
    assert ro.pause("demo")["changed"]["state"] == "paused"
    assert ro.pause("demo")["noop"] is True
    healthy(reg, "c1", "canary")
    assert ro.step("demo")["noop"] is True  # paused
    assert ro.resume("demo")["changed"]["state"] == "running"
    assert ro.step("demo")["action"] == "rollout-advance"
    assert reg.model_state("demo").aliases["ring-plant"] == 2
    aborted = ro.abort("demo")
    assert aborted["changed"]["restored"] == {"ring-canary": "v1", "ring-plant": None}
    assert dict(reg.model_state("demo").aliases) == before
    assert ro.abort("demo")["noop"] is True
    with pytest.raises(RuleViolation):
        ro.resume("demo")
    served = json.loads(reg.store.read("dist/release/demo/aliases.json"))
    assert served == {"champion": "v1", "ring-canary": "v1"}
    ro.start("demo", "v2", ["canary"])  # a new rollout after an aborted one


def test_every_move_sends_alias_and_rollout_events(tmp_path, model_file, monkeypatch):
    receiver = Receiver()
    try:
        root = tmp_path / "registry"
        write_config(root, hook(f"{receiver.url}/ok", events="[alias, rollout, promote]"))
        monkeypatch.setenv("HOOK_SECRET", "s3cret")
        reg = released(root, model_file)
        receiver.calls.clear()
        ro = Rollouts(reg)
        ro.start("demo", "v2", ["canary"], soak_s=0)
        healthy(reg, "c1", "canary")
        ro.step("demo")
        events = [(b["event"], b["changed"].get("rollout")) for b in receiver.bodies()]
        assert events == [
            ("alias", None),
            ("rollout", "started"),
            ("promote", None),
            ("rollout", "completed"),
        ]
        ro2 = Rollouts(ModelRegistry(root))
        reg.rollback("demo")
        reg.set_alias("demo", "ring-canary", 1)
        receiver.calls.clear()
        ro2.start("demo", "v2", ["canary"], soak_s=0)
        ro2.abort("demo")
        kinds = [(b["event"], b["changed"].get("rollout")) for b in receiver.bodies()]
        assert kinds == [("alias", None), ("rollout", "started"), ("alias", None),
                         ("rollout", "aborted")]  # fmt: skip
    finally:
        receiver.close()


# ---------------------------------------------------------------- devices
def test_pull_follows_an_alias_of_the_served_tree(cli, root, model_file):
    reg = released(root, model_file)
    reg.set_alias("demo", "ring-canary", 1)
    cache = root.parent / "cache"
    res = cli("pull", "demo", "--from", str(root), "--cache-dir", str(cache), "--alias",
              "ring-canary", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["version"] == "v1"
    res = cli("pull", "demo", "--from", str(root), "--cache-dir", str(cache), "--alias", "nope")
    assert res.exit_code == 3 and "no alias 'nope'" in res.stderr
    res = cli("pull", "demo", "--from", str(root), "--alias", "ring-canary", "--version", "v2")
    assert res.exit_code == 2
    res = cli("pull", "demo", "--from", str(root), "--report")
    assert res.exit_code == 2 and "reports need a registry server" in res.stderr


def test_pull_report_file_is_ingested_later(cli, root, model_file, tmp_path):
    released(root, model_file)
    out = tmp_path / "reports.jsonl"
    for device in ("d1", "d2"):
        res = cli("pull", "demo", "--from", str(root), "--cache-dir", str(tmp_path / device),
                  "--report-file", str(out), "--device", device, "--ring", "plant")  # fmt: skip
        assert res.exit_code == 0, res.stderr
    res = cli("pull", "nope", "--from", str(root), "--report-file", str(out), "--device", "d3")
    assert res.exit_code == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["device"], r["state"]) for r in lines] == [
        ("d1", "pulled"),
        ("d2", "pulled"),
        ("d3", "failed"),
    ]
    assert lines[0]["manifest_sha256"] and lines[0]["ring"] == "plant"
    lines.pop()  # the report for a model that does not exist would be refused (404)
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert cli("fleet", "ingest", str(out)).exit_code == 0
    doc = json.loads(cli("fleet", "status", "demo", "--json").stdout)
    assert doc["models"][0]["rings"][0]["versions"][0]["version"] == "v1"


def test_the_python_client_reports_as_its_device(tmp_path, model_file):
    from registry_cli.client import ModelRegistryClient

    root = tmp_path / "registry"
    reg = released(root, model_file)
    reg.set_alias("demo", "ring-canary", 2)
    out = tmp_path / "client.jsonl"
    client = ModelRegistryClient(
        root, cache_dir=tmp_path / "c", device="edge-7", ring="canary", report_file=out
    )
    bundle = client.get("release", "demo", alias="ring-canary")
    assert bundle.version == "v2"
    assert client.report(bundle, "healthy", {"p99_ms": 12}) == "written"
    states = [json.loads(line)["state"] for line in out.read_text().splitlines()]
    assert states == ["pulled", "healthy"]
    Fleet(reg).ingest([json.loads(line) for line in out.read_text().splitlines()])
    (model,) = Fleet(reg).status("demo")["models"]
    assert model["rings"][0]["on_target"] == 1
    with pytest.raises(BadInput):
        ModelRegistryClient(root, cache_dir=tmp_path / "c").report(bundle, "healthy")


# ---------------------------------------------------------------- the reporter
def test_the_outbox_is_bounded_and_counts_what_it_drops(tmp_path, capsys):
    from registry_cli.pull.fleet import Reporter
    from tests.http_receiver import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    rep = Reporter(device="d", ring="r", outbox=tmp_path / "outbox", url=dead, outbox_max=2)
    assert [rep.report("demo", "v1", "healthy") for _ in range(4)] == ["queued"] * 4
    assert len(rep.waiting()) == 2 and rep.dropped() == 2
    assert "2 report(s) dropped so far" in capsys.readouterr().err


def test_a_refused_report_is_not_kept_and_the_outbox_goes_with_the_next(tmp_path):
    from tests.http_receiver import PostReceiver

    class Answer(PostReceiver):
        status = 403
        bodies: list = []

        def answer(self, path, headers, body):
            self.bodies.append(json.loads(body))
            return self.status, {}

    from registry_cli.pull.fleet import Reporter

    server = Answer()
    try:
        rep = Reporter(device="d", ring="r", outbox=tmp_path / "o", url=server.url, token="t")
        assert rep.report("demo", "v1", "healthy") == "refused"
        assert rep.waiting() == []
        server.status = 503
        assert rep.report("demo", "v1", "healthy") == "queued"
        server.status = 200
        assert rep.report("demo", "v1", "running") == "sent"
        assert [len(b) for b in server.bodies] == [1, 1, 2]  # the queued one went along
        assert rep.waiting() == []
    finally:
        server.close()
