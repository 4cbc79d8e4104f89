"""The outbox in ``serve-registry`` (docs/events.md): an API change answers at once while
a receiver hangs; a server SIGKILLed mid-delivery sends the event once restarted (same
delivery id); failed tries back off until the receiver answers; a delivery past
``events.retry_for_h`` becomes a dead letter; what a CLI change left queued is sent by a
running server. Real ``serve-registry`` processes, a real receiver, folder and s3 roots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import outbox
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd
from tests.outbox_helpers import SECRET, SwitchReceiver, config_text, wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver():
    rec = SwitchReceiver()
    yield rec
    rec.close()


@pytest.fixture
def servers(tmp_path):
    """Start ``serve-registry`` processes; each is stopped by its own handle at teardown."""
    started: list[ServeRegistryProcess] = []

    def start(root, name: str = "server") -> ServeRegistryProcess:
        home = tmp_path / f"{name}-home"
        home.mkdir(exist_ok=True)
        proc = ServeRegistryProcess(
            root,
            log=tmp_path / f"{name}-{len(started)}.log",
            env={"HOME": str(home), "NO_COLOR": "1", "HOOK_SECRET": SECRET},
        ).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def setup_root(root, model_file) -> str:
    """A root with model m:v1 (published before any hook) and an admin token."""
    local = ModelRegistry(root)
    local.init()
    local.publish("m", [model_file])
    return Tokens(local.store, local.states, "setup").create("ci", ["admin"]).secret


def api_tag(url: str, token: str, key: str, *, timeout: float = 20) -> dict:
    """POST a tag change; the client gives up after ``timeout`` seconds."""
    request = urllib.request.Request(
        f"{url}/api/v1/models/m/-/versions/v1/tags",
        data=json.dumps({"set": {key: "1"}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def depth(root) -> dict[str, int]:
    return outbox.outbox_depth(ModelRegistry(root).store)


def test_an_api_change_answers_while_the_receiver_hangs(tmp_path, receiver, model_file, servers):
    root = tmp_path / "registry"
    token = setup_root(root, model_file)
    # a try may take 60 s, the API client waits 20 s at most: it must not wait for the try
    write_config(root, config_text(f"{receiver.url}/hook", timeout_s=60))
    receiver.mode = "hang"
    server = servers(root)
    done = api_tag(server.url, token, "a")
    assert done["action"] == "tag" and done["name"] == "m"
    wait_for("the delivery to reach the receiver", receiver.ids)
    assert receiver.answered == []  # still hanging: the change did not wait for it
    second = api_tag(server.url, token, "b")  # the next change answers too
    assert second["action"] == "tag"
    receiver.mode = "ok"
    receiver.release()
    wait_for("both deliveries", lambda: receiver.answered.count(200) >= 2)
    bodies = receiver.bodies()
    assert [b["changed"]["tags"]["set"] for b in bodies] == [{"a": "1"}, {"b": "1"}]
    assert receiver.signed()
    wait_for("an empty outbox", lambda: depth(root) == {"pending": 0, "dead": 0})
    assert server.stop() == 0, server.log
    assert SECRET not in server.log


def test_a_server_killed_mid_delivery_sends_it_once_restarted(
    tmp_path, receiver, model_file, servers
):
    root = tmp_path / "registry"
    token = setup_root(root, model_file)
    write_config(
        root,
        config_text(f"{receiver.url}/hook", timeout_s=5, events={"claim_s": 0.5, "poll_s": 0.2}),
    )
    receiver.mode = "hang"
    first = servers(root, "first")
    api_tag(first.url, token, "k")
    wait_for("the delivery in flight", receiver.ids)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)  # mid-delivery: the receiver holds the request
    first.proc.wait(timeout=10)
    [in_flight] = receiver.ids()
    assert depth(root) == {"pending": 1, "dead": 0}  # still in the outbox, claimed by the dead

    receiver.mode = "ok"
    receiver.release()
    second = servers(root, "second")  # takes the claim over once it expires
    wait_for("the delivery after the restart", lambda: 200 in receiver.answered[1:], 60)
    ids = receiver.ids()
    assert set(ids) == {in_flight} and len(ids) >= 2  # at least once, one stable id
    assert receiver.bodies()[-1]["changed"]["tags"]["set"] == {"k": "1"}
    wait_for("an empty outbox", lambda: depth(root) == {"pending": 0, "dead": 0})
    assert second.stop() == 0, second.log


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_a_cli_change_queued_while_the_receiver_fails_is_retried_by_a_server_until_sent(
    backend, request, tmp_path, receiver, model_file, servers
):
    root = request.getfixturevalue("s3_root") if backend == "s3" else tmp_path / "registry"
    token = setup_root(root, model_file)
    write_config(
        root,
        config_text(
            f"{receiver.url}/hook",
            timeout_s=2,
            events={"retry_cap_s": 0.4, "poll_s": 0.1, "claim_s": 0.5},
        ),
    )
    receiver.mode = "503"
    cli = subprocess.run(  # 3 tries at once, all 503: the delivery stays queued
        regctl_cmd("--root", str(root), "tag", "m", "v1", "queued=1"),
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOOK_SECRET=SECRET),
    )
    assert cli.returncode == 0 and "failed after 3 tries: HTTP 503" in cli.stderr, cli.stderr
    assert depth(root) == {"pending": 1, "dead": 0}
    [queued] = set(receiver.ids())
    server = servers(root)
    api_tag(server.url, token, "via-api")  # and one through the server, failing too
    wait_for("retries by the server", lambda: len(receiver.ids()) >= 8)
    receiver.mode = "ok"
    wait_for("both delivered", lambda: receiver.answered.count(200) >= 2)
    wait_for("an empty outbox", lambda: depth(root) == {"pending": 0, "dead": 0})
    by_id: dict[str, list[dict]] = {}
    for delivery_id, body in zip(receiver.ids(), receiver.bodies(), strict=True):
        by_id.setdefault(delivery_id, []).append(body)
    assert len(by_id) == 2 and queued in by_id  # two deliveries, each with one id
    assert {json.dumps(b) for b in by_id[queued]} == {json.dumps(by_id[queued][0])}
    assert by_id[queued][0]["changed"]["tags"]["set"] == {"queued": "1"}
    assert receiver.signed()
    wait_for("the retries in the log", lambda: "failed (try 4)" in server.log)
    assert "next try in" in server.log
    assert server.stop() == 0, server.log


def test_a_server_makes_a_dead_letter_after_retry_for_h(tmp_path, receiver, model_file, servers):
    root = tmp_path / "registry"
    token = setup_root(root, model_file)
    write_config(
        root,
        config_text(
            f"{receiver.url}/hook",
            timeout_s=2,
            events={"retry_for_h": 0.0005, "retry_cap_s": 0.2, "poll_s": 0.1},  # 1.8 s
        ),
    )
    receiver.mode = "503"
    server = servers(root)
    api_tag(server.url, token, "doomed")
    wait_for("a dead letter", lambda: depth(root) == {"pending": 0, "dead": 1})
    [delivery_id] = outbox.dead_ids(ModelRegistry(root).store)
    line = f"delivery {delivery_id} is a dead letter after"
    wait_for("the dead letter in the log", lambda: line in server.log)  # logged after the move
    tries = len(receiver.ids())
    assert tries >= 3 and set(receiver.ids()) == {delivery_id}
    receiver.mode = "ok"
    assert server.stop() == 0, server.log
    assert len(receiver.ids()) == tries  # a dead letter is not sent again by itself


def test_sigterm_while_a_receiver_hangs_exits_0_and_keeps_the_delivery(
    tmp_path, receiver, model_file, servers
):
    root = tmp_path / "registry"
    token = setup_root(root, model_file)
    write_config(root, config_text(f"{receiver.url}/hook", timeout_s=60))
    receiver.mode = "hang"
    server = servers(root)
    api_tag(server.url, token, "t")
    wait_for("the delivery in flight", receiver.ids)
    assert server.stop() == 0, server.log  # the drain is bounded: the try is abandoned
    assert depth(root) == {"pending": 1, "dead": 0}  # taken over once its claim expires
    [delivery_id] = outbox.pending_ids(ModelRegistry(root).store)
    assert receiver.ids() == [delivery_id]
