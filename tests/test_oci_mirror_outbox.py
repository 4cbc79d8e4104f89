"""OCI mirror pushes are outbox deliveries of kind ``oci_mirror`` (docs/oci.md#mirrors):
a promote through a real ``serve-registry`` reaches a real docker-registry with no CLI
call; a push queued by a CLI change while the mirror is down is shown by ``oci
status`` and sent by ``oci sync``, ``events flush`` or a running server, under one
delivery id; pushes to one repository keep their order; an entry of the old
``.regctl/oci-pending/`` queue is moved into the outbox by ``oci sync``; a long push
keeps its claim alive."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import mirror_plan, outbox
from registry_cli.core.tokens import Tokens
from registry_cli.oci import mirrors
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd
from tests.oci_registry import OciRegistry, have_registry, skopeo
from tests.outbox_helpers import wait_for
from tests.s3_helpers import free_port

pytestmark = pytest.mark.skipif(not have_registry(), reason="docker-registry/skopeo missing")


def _root(tmp_path: Path, host: str, model_file: Path, *, events: str = "") -> Path:
    """A root with m:v1 (dev, not mirrored) and a mirror of release + champion."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "registry.yaml").write_text(
        "oci_mirrors:\n"
        f"  - url: oci://{host}/mirror\n"
        "    stages: [release]\n"
        "    aliases: [champion]\n"
        "    plain_http: true\n" + events
    )
    reg = ModelRegistry(root)
    reg.init()
    reg.publish("m", [model_file])
    Tokens(reg.store, reg.states, "setup").create("ci", ["admin"])  # a server needs one
    return root


def _tags(host: str, repo: str = "mirror/m") -> dict[str, str]:
    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{host}/{repo}")
    out = {}
    for tag in json.loads(listed.stdout)["Tags"] or [] if listed.returncode == 0 else []:
        raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/{repo}:{tag}")
        if raw.returncode == 0:
            out[tag] = json.loads(raw.stdout)["annotations"]["org.opencontainers.image.version"]
    return out


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        regctl_cmd("--root", str(root), *args),
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, NO_COLOR="1"),
    )


def _pending_ids(root: Path) -> list[str]:
    store = ModelRegistry(root).store
    return [
        i
        for i in outbox.pending_ids(store)
        if (outbox.read(store, i) or {}).get("kind") == "oci_mirror"
    ]


@pytest.fixture
def servers(tmp_path):
    started: list[ServeRegistryProcess] = []

    def start(root: Path) -> ServeRegistryProcess:
        home = tmp_path / f"home-{len(started)}"
        home.mkdir()
        proc = ServeRegistryProcess(
            root, log=tmp_path / f"server-{len(started)}.log", env={"HOME": str(home)}
        ).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


@pytest.mark.slow
def test_a_promote_through_serve_registry_reaches_the_mirror_with_no_cli_call(
    tmp_path, model_file, servers
):
    with OciRegistry(tmp_path / "oci") as registry:
        root = _root(tmp_path, registry.host, model_file)
        reg = ModelRegistry(root)
        token = Tokens(reg.store, reg.states, "setup").create("promoter", ["admin"]).secret
        server = servers(root)
        request = urllib.request.Request(
            f"{server.url}/api/v1/models/m/-/promote",
            data=json.dumps({"version": "v1"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert json.loads(reply.read())["version"] == "v1"
        wait_for("the release tag in the mirror", lambda: _tags(registry.host).get("release"))
        assert _tags(registry.host) == {"v1": "v1", "release": "v1", "champion": "v1"}
        wait_for("an empty outbox", lambda: not _pending_ids(root))
        assert server.stop() == 0, server.log


def test_a_mirror_down_at_a_cli_promote_is_pending_and_oci_sync_delivers_it(tmp_path, model_file):
    port = free_port()
    host = f"127.0.0.1:{port}"
    root = _root(tmp_path, host, model_file)
    got = _run(root, "promote", "m", "--version", "v1")
    assert got.returncode == 0, got.stderr  # the change stands
    assert "warning: OCI mirror push of m:v1" in got.stderr and "oci sync" in got.stderr
    assert "Traceback" not in got.stderr
    [queued] = _pending_ids(root)
    doc = outbox.read(ModelRegistry(root).store, queued)
    assert (
        doc is not None
        and doc["tries"] == 1
        and doc["payload"]["tags"]
        == [
            "v1",
            "release",
            "champion",
        ]
    )
    status = json.loads(_run(root, "oci", "status", "--json").stdout)
    assert [(p["id"], p["version"], p["attempts"]) for p in status] == [(queued, "v1", 1)]
    assert status[0]["repository"] == f"oci://{host}/mirror/m" and status[0]["error"]
    text = _run(root, "oci", "status")
    assert queued in text.stdout and "m:v1" in text.stdout
    down = _run(root, "oci", "sync", "--json")
    assert down.returncode == 6 and down.stderr.startswith("error: ")
    assert [p["id"] for p in json.loads(down.stdout)["pending"]] == [queued]
    r = OciRegistry(tmp_path / "late")
    r.port = port
    with r:
        up = _run(root, "oci", "sync", "--json")
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        assert [p["id"] for p in report["delivered"]] == [queued] and report["pending"] == []
        assert _tags(host) == {"v1": "v1", "release": "v1", "champion": "v1"}
    assert json.loads(_run(root, "oci", "status", "--json").stdout) == []
    assert _run(root, "oci", "status").stdout.strip() == "nothing pending"


def test_pushes_to_one_repository_keep_their_order_and_events_flush_sends_them(
    tmp_path, model_file
):
    port = free_port()
    host = f"127.0.0.1:{port}"
    root = _root(tmp_path, host, model_file)
    assert _run(root, "promote", "m", "--version", "v1").returncode == 0
    model_file.write_bytes(os.urandom(200))
    assert _run(root, "publish", "m", str(model_file)).returncode == 0  # v1 again, as planned
    assert _run(root, "promote", "m", "--version", "v2").returncode == 0
    ids = _pending_ids(root)
    status = json.loads(_run(root, "oci", "status", "--json").stdout)
    assert [(p["id"], p["version"]) for p in status] == list(
        zip(ids, ["v1", "v1", "v2"], strict=True)
    )
    assert "waits for the older push" in status[2]["error"]  # never overtakes the v1 ones
    r = OciRegistry(tmp_path / "late")
    r.port = port
    with r:
        got = _run(root, "events", "flush", "--json")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["sent"] == 3
        tags = _tags(host)
        assert tags["release"] == "v2" and tags["champion"] == "v2" and tags["v1"] == "v1"
    assert _pending_ids(root) == []


@pytest.mark.slow
def test_a_running_server_sends_a_push_queued_by_the_cli(tmp_path, model_file, servers):
    port = free_port()
    host = f"127.0.0.1:{port}"
    events = "events:\n  poll_s: 0.2\n  retry_cap_s: 0.5\n"
    root = _root(tmp_path, host, model_file, events=events)
    assert _run(root, "promote", "m", "--version", "v1").returncode == 0
    [queued] = _pending_ids(root)
    server = servers(root)
    wait_for(
        "a retry by the server",
        lambda: (outbox.read(ModelRegistry(root).store, queued) or {}).get("tries", 0) >= 2,
    )
    r = OciRegistry(tmp_path / "late")
    r.port = port
    with r:
        wait_for("the release tag in the mirror", lambda: _tags(host).get("release"))
        wait_for("an empty outbox", lambda: not _pending_ids(root))
    assert server.stop() == 0, server.log
    assert f"delivery {queued} failed" in server.log


def test_an_entry_of_the_old_queue_is_moved_into_the_outbox_by_oci_sync(tmp_path, model_file):
    with OciRegistry(tmp_path / "oci") as registry:
        root = _root(tmp_path, registry.host, model_file)
        ModelRegistry(root).promote("m", version="v1")  # pushed at once (this process)
        old = root / ".regctl" / "oci-pending"
        old.mkdir(parents=True)
        (old / "20260101T000000000000Z-abcd1234.json").write_text(
            json.dumps(
                {
                    "id": "20260101T000000000000Z-abcd1234",
                    "created": "2026-01-01T00:00:00Z",
                    "url": f"oci://{registry.host}/old",
                    "model": "m",
                    "version": 1,
                    "tags": ["v1", "release"],
                    "attempts": 2,
                    "error": "cannot reach",
                    "repository": f"oci://{registry.host}/old/m",
                }
            )
        )
        (root / "registry.yaml").write_text(
            (root / "registry.yaml").read_text()
            + f"  - url: oci://{registry.host}/old\n    stages: [release]\n    plain_http: true\n"
        )
        status = _run(root, "oci", "status", "--json")
        assert "1 push(es) in the old .regctl/oci-pending/ queue" in status.stderr
        got = _run(root, "oci", "sync", "--json")
        assert got.returncode == 0, got.stderr
        assert len(json.loads(got.stdout)["delivered"]) == 1
        assert not list(old.iterdir())
        assert _tags(registry.host, "old/m") == {"v1": "v1", "release": "v1"}


def test_a_long_push_keeps_its_claim_alive(tmp_path, model_file, monkeypatch):
    root = _root(tmp_path, f"127.0.0.1:{free_port()}", model_file)
    reg = ModelRegistry(root)
    payload = mirror_plan.plan(reg.config, reg.model_state("m"), "publish")
    assert payload == []  # dev is not mirrored
    delivery = outbox.enqueue(
        reg.store,
        "oci_mirror",
        {"url": "oci://x/y", "model": "m", "version": 1, "tags": ["v1"], "repository": "x"},
    )
    policy = outbox.Policy(claim_s=1.0)
    claimed = outbox.claim(reg.store, delivery.id, policy)
    assert claimed is not None
    first = claimed.doc["claim"]["until"]
    seen: list[float] = []
    monkeypatch.setattr(mirrors, "HEARTBEAT_S", 0.05)

    def slow_push(_reg, _payload):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen) < 3:
            doc = outbox.read(reg.store, delivery.id) or {}
            until = (doc.get("claim") or {}).get("until", 0)
            if until > (seen[-1] if seen else first):
                seen.append(until)
            time.sleep(0.02)

    monkeypatch.setattr(mirrors, "_push", slow_push)
    mirrors.attach(reg)
    assert outbox.attempt(claimed, policy).status == "sent"
    assert len(seen) == 3 and seen[0] > first  # extended while it ran
    assert not [t for t in threading.enumerate() if t.name == "regctl-oci-keepalive"]


def test_a_push_to_a_mirror_no_longer_configured_becomes_a_dead_letter(tmp_path, model_file):
    root = _root(tmp_path, f"127.0.0.1:{free_port()}", model_file)
    assert _run(root, "promote", "m", "--version", "v1").returncode == 0
    [queued] = _pending_ids(root)
    config = root / "registry.yaml"
    config.write_text(config.read_text().replace("/mirror\n", "/elsewhere\n"))
    got = _run(root, "oci", "sync", "--json")
    assert (
        got.returncode == 6 and got.stderr.startswith("error: ") and "Traceback" not in got.stderr
    )
    [left] = json.loads(got.stdout)["pending"]
    assert left["id"] == queued and "no longer in oci_mirrors" in left["error"]
    assert json.loads(_run(root, "oci", "status", "--json").stdout) == []
    dead = json.loads(_run(root, "events", "status", "--json").stdout)["dead_letters"]
    assert [(d["id"], d["kind"]) for d in dead] == [(queued, "oci_mirror")]
    assert "OCI mirror push of m:v1" in dead[0]["what"]
