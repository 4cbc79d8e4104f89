"""The outbox (docs/events.md): a CLI change records its webhook deliveries in the root and
tries them at once; what is left is sent by ``regctl events flush`` (or a server, see
test_outbox_server.py), with one delivery id on every try, until it is sent or becomes a
dead letter. Real CLI processes against a real HTTP receiver, on a folder root and on an
s3:// root (moto's S3 server)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import outbox
from registry_cli.core.outbox_send import flush
from tests.conftest import regctl_cmd
from tests.outbox_helpers import SECRET, SwitchReceiver, config_text, write_config

ENV = {"HOOK_SECRET": SECRET}


@pytest.fixture
def receiver():
    rec = SwitchReceiver()
    yield rec
    rec.close()


@pytest.fixture(params=["folder", "s3"])
def any_root(request, tmp_path):
    if request.param == "s3":
        return request.getfixturevalue("s3_root")
    return tmp_path / "registry"


@pytest.fixture
def on_root(any_root):
    """Run the real CLI with ``--root`` the root of this test (folder or s3://)."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            regctl_cmd("--root", str(any_root), *args),
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, **(env or {})),
        )

    return run


def depth(root) -> dict[str, int]:
    return outbox.outbox_depth(ModelRegistry(root).store)


def test_a_cli_change_with_the_receiver_down_is_delivered_by_events_flush(
    any_root, on_root, receiver, model_file
):
    root, regctl_proc = any_root, on_root
    write_config(root, config_text(f"{receiver.url}/hook", timeout_s=2))
    receiver.mode = "503"
    proc = regctl_proc("publish", "team/m", str(model_file), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        f"warning: webhook {receiver.url}/hook (publish) failed after 3 tries: HTTP 503"
    )
    assert depth(root) == {"pending": 1, "dead": 0}
    queued = receiver.ids()
    assert len(queued) == 3 and len(set(queued)) == 1  # one delivery, three tries

    down = regctl_proc("events", "flush", "--json")  # still down: exit 6, still queued
    assert down.returncode == 6, down.stderr
    assert json.loads(down.stdout) == {
        "sent": 0, "failed": 1, "dead": 0, "requeued": 0, "pending": 1, "dead_letters": 0,
    }  # fmt: skip
    assert down.stderr.splitlines()[-2:] == [
        "error: 1 of 1 deliveries not sent",
        "hint: failed ones stay in the outbox (any serve-registry retries them); "
        "see regctl events status",
    ]
    assert "Traceback" not in down.stderr

    receiver.mode = "ok"
    # the flushing process has no secret: the outbox kept the signature, never the secret
    done = regctl_proc("events", "flush", "--json", env={"HOOK_SECRET": ""})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == 1 and done.stderr == ""
    assert receiver.ids() == [queued[0]] * 5  # 3 at once, 1 by the failed flush, this one
    assert receiver.answered[-1] == 200 and receiver.signed()
    body = receiver.bodies()[-1]
    assert (body["event"], body["model"], body["version"]) == ("publish", "team/m", "v1")
    assert depth(root) == {"pending": 0, "dead": 0}
    # nothing left to send: a flush sends nothing and exits 0
    again = regctl_proc("events", "flush")
    assert again.returncode == 0 and again.stdout.startswith("sent 0, failed 0, dead 0")
    assert len(receiver.ids()) == 5
    # the secret was never written to the root
    for key in ModelRegistry(root).store.walk_files(""):
        if key != "registry.yaml":
            assert SECRET.encode() not in ModelRegistry(root).store.read(key), key


def test_a_refusal_is_a_dead_letter_at_once_and_flush_dead_sends_it_again(
    tmp_path, regctl_proc, receiver, model_file
):
    root = tmp_path / "registry"
    write_config(root, config_text(f"{receiver.url}/hook?token=t9"))
    receiver.mode = "400"
    proc = regctl_proc("publish", "m", str(model_file), env=ENV)
    assert proc.returncode == 0
    assert proc.stderr.strip() == (
        f"warning: webhook {receiver.url}/hook (publish) failed after 1 try: HTTP 400"
    )
    assert depth(root) == {"pending": 0, "dead": 1}
    status = regctl_proc("events", "status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    [letter] = doc["dead_letters"]
    assert (doc["pending"], doc["dead"]) == (0, 1)
    assert letter["what"] == f"webhook {receiver.url}/hook (publish)"  # no query string
    assert (letter["tries"], letter["last_error"], letter["kind"]) == (1, "HTTP 400", "webhook")
    assert letter["id"] == receiver.ids()[0]
    human = regctl_proc("events", "status")
    assert human.stdout.splitlines() == [
        "outbox: 0 pending, 1 dead",
        f"dead {letter['id']}: webhook {receiver.url}/hook (publish), 1 tries: HTTP 400",
    ]

    plain = regctl_proc("events", "flush", "--json")  # dead letters are left alone
    assert plain.returncode == 0 and json.loads(plain.stdout)["sent"] == 0
    receiver.mode = "ok"
    again = regctl_proc("events", "flush", "--dead", "--json")
    assert again.returncode == 0, again.stderr
    got = json.loads(again.stdout)
    assert (got["requeued"], got["sent"], got["dead_letters"], got["pending"]) == (1, 1, 0, 0)
    assert receiver.ids() == [letter["id"]] * 2


def test_a_delivery_still_failing_after_retry_for_h_becomes_a_dead_letter(
    tmp_path, regctl_proc, receiver, model_file
):
    root = tmp_path / "registry"
    events = {"retry_for_h": 0.001, "retry_cap_s": 0.05}  # 3.6 s of retries
    write_config(root, config_text(f"{receiver.url}/hook", events=events, timeout_s=1))
    receiver.mode = "503"
    assert regctl_proc("publish", "m", str(model_file), env=ENV).returncode == 0
    assert depth(root) == {"pending": 1, "dead": 0}
    [delivery_id] = outbox.pending_ids(ModelRegistry(root).store)
    doc = outbox.read(ModelRegistry(root).store, delivery_id)
    time.sleep(max(0.0, doc["give_up_at"] - time.time()) + 0.1)  # past the retry period
    proc = regctl_proc("events", "flush", "--json")
    assert proc.returncode == 6
    assert json.loads(proc.stdout)["dead"] == 1
    assert f"delivery {delivery_id} is a dead letter after 4 tries: HTTP 503" in proc.stderr
    assert depth(root) == {"pending": 0, "dead": 1}
    dead = outbox.read(ModelRegistry(root).store, delivery_id, dead=True)
    assert dead["tries"] == 4 and dead["dead"]["reason"].startswith("still failing after")
    assert set(receiver.ids()) == {delivery_id}


def test_without_a_matching_hook_the_outbox_is_not_touched(root, cli, model_file):
    write_config(root, config_text("http://127.0.0.1:9/x", on="[archive]"))
    assert cli("publish", "m", str(model_file)).exit_code == 0
    assert not (root / ".regctl" / "outbox").exists()
    res = cli("events", "status", "--json")
    assert json.loads(res.stdout) == {"pending": 0, "dead": 0, "dead_letters": []}


def test_events_commands_on_a_missing_root_are_exit_3(tmp_path, cli):
    res = cli("--root", str(tmp_path / "nowhere"), "events", "flush", root_dir=None)
    assert res.exit_code == 3 and res.stderr.startswith("error: no registry at ")
    assert "Traceback" not in res.stderr


def test_bad_events_settings_name_file_and_line(tmp_path, cli):
    root = tmp_path / "registry"
    write_config(root, config_text("http://h/x", events={"retry_for_h": 0}))
    res = cli("--root", str(root), "list", root_dir=None)
    assert res.exit_code == 2
    assert "registry.yaml:7" in res.stderr and "a number of hours above 0" in res.stderr
    write_config(root, config_text("http://h/x", events={"retry_every": 3}))
    res = cli("--root", str(root), "list", root_dir=None)
    assert res.exit_code == 2 and "retry_every" in res.stderr


# ------------------------------------------------------------------ claims (library)
class Recorder:
    def __init__(self, answers: list[str]) -> None:
        self.answers, self.seen = list(answers), []

    def __call__(self, delivery: outbox.Delivery) -> None:
        self.seen.append(delivery.id)
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "retry":
            raise outbox.Retry("not now")
        if answer == "refuse":
            raise outbox.GiveUp("never")


@pytest.fixture
def kind():
    """A test kind with its own sender (the API an OCI mirror push uses)."""
    rec = Recorder([])
    outbox.register_sender("test_kind", rec, try_s=1.0, lane=lambda p: p["lane"])
    yield rec
    outbox._SENDERS.pop("test_kind", None)


def test_one_claim_at_a_time_and_a_dead_senders_claim_expires(tmp_path, kind, monkeypatch):
    store = ModelRegistry(tmp_path / "r").store
    policy = outbox.Policy(claim_s=0.2, cap_s=0.01)
    delivery = outbox.enqueue(store, "test_kind", {"lane": "a"}, policy)
    first = outbox.claim(store, delivery.id, policy)
    assert first is not None and first.id == delivery.id
    monkeypatch.setattr(outbox, "_OWNER", {})  # another process now (a new owner)
    assert outbox.claim(store, delivery.id, policy) is None  # the claim is live
    time.sleep(1.3)  # try_s (1 s) + claim_s (0.2 s): the first claimer died
    second = outbox.claim(store, delivery.id, policy)
    assert second is not None
    assert outbox.finish(first, policy, 1, "late").status == "lost"  # its tag is stale
    assert outbox.attempt(second, policy).status == "sent"
    assert kind.seen == [delivery.id] and outbox.outbox_depth(store) == {"pending": 0, "dead": 0}


def test_a_kind_without_a_sender_in_this_process_is_left_alone(tmp_path):
    store = ModelRegistry(tmp_path / "r").store
    policy = outbox.Policy()
    delivery = outbox.enqueue(store, "kind_nobody_sends", {"to": "x"}, policy)
    assert outbox.claim(store, delivery.id, policy) is None
    report = flush(store, policy)
    assert (report.sent, report.failed, report.pending) == (0, 0, 1)


def test_flush_sends_each_lane_in_order_and_backs_off_failures(tmp_path, kind):
    store = ModelRegistry(tmp_path / "r").store
    policy = outbox.Policy(cap_s=0.01)
    ids = [outbox.enqueue(store, "test_kind", {"lane": "a", "n": n}, policy).id for n in range(3)]
    kind.answers = ["retry", "ok", "refuse"]
    report = flush(store, policy, log=lambda _m: None)
    assert kind.seen == ids  # one lane: in creation order
    assert (report.sent, report.failed, report.dead) == (1, 1, 1)
    doc = outbox.read(store, ids[0])
    assert doc["tries"] == 1 and doc["last_error"] == "not now" and doc["claim"] is None
    assert doc["next_try"] > time.time() - 1
    assert outbox.outbox_depth(store) == {"pending": 1, "dead": 1}
