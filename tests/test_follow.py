"""`regctl serve --follow` (see docs/events.md): a real server process follows its alias while a
client sends requests continuously and the real CLI promotes and rolls back."""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests import _predict_models as pm
from tests.test_serve import SIG, Server

POLL = "0.2"
SWAP_BOUND_S = 10.0  # poll interval + loading a .pt2 (~1 s) on a busy 2-core box


@pytest.fixture
def serve(root, tmp_path):
    started: list[Server] = []

    def start(*args: str) -> Server:
        srv = Server(root, tmp_path / f"serve-{len(started)}.log", *args)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    return pm.save_exported(tmp_path_factory.mktemp("pt2") / "model.pt2")


@pytest.fixture(scope="module")
def broken_pt2(tmp_path_factory) -> Path:
    """Looks like a torch.export archive (so it is found as the runnable) but cannot load."""
    path = tmp_path_factory.mktemp("broken") / "model.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/archive_format", "pt2")
        zf.writestr("model/models/model.json", "{not json")
    return path


class Client:
    """Threads POSTing /predict back to back; each reply as (start, end, status, version)."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.replies: list[tuple[float, float, int, str | None]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self) -> None:
        payload = {"X": pm.example(3).tolist()}
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as c:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = c.post("/predict", json=payload)
                    version = r.json().get("model_version")
                    self.replies.append((t0, time.monotonic(), r.status_code, version))
                except Exception as exc:  # any transport failure counts as failed
                    self.errors.append(repr(exc))

    def wait_for(self, n: int) -> None:
        end = time.monotonic() + 60
        while len(self.replies) < n and time.monotonic() < end:
            time.sleep(0.02)
        assert len(self.replies) >= n, (len(self.replies), self.errors)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def wait_version(srv: Server, version: str) -> float:
    """Poll /health until it reports ``version``; return when it first did."""
    end = time.monotonic() + SWAP_BOUND_S
    while time.monotonic() < end:
        health = srv.client.get("/health").json()
        if health["model_version"] == version:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"/health never reported {version}: {health}\n{srv.output()}")


@pytest.mark.slow
def test_follow_swaps_on_promote_and_rollback_without_failing_a_request(
    reg, serve, regctl_proc, pt2
):
    for _ in range(3):
        reg.publish("tiny", [pt2], signature=SIG)
    reg.promote("tiny", version="v1")
    srv = serve("tiny", "--follow", "--poll-interval", POLL)
    assert srv.wait_health(loaded=True)["model_version"] == "v1"
    client = Client(srv.url)
    # (version, became champion no earlier than, the server reported it at)
    timeline: list[tuple[str, float, float]] = [("v1", 0.0, time.monotonic())]
    try:
        client.wait_for(20)
        for args, champion in (
            (("promote", "tiny", "--version", "v2"), "v2"),
            (("rollback", "tiny"), "v1"),
            (("promote", "tiny", "--version", "v3"), "v3"),
            (("rollback", "tiny", "--to", "v2"), "v2"),
        ):
            before = time.monotonic()
            regctl_proc(*args, check=True)
            after = time.monotonic()
            seen = wait_version(srv, champion)
            assert seen - after < SWAP_BOUND_S
            timeline.append((champion, before, seen))
            seen_replies = len(client.replies)
            client.wait_for(seen_replies + 10)
    finally:
        client.close()
    assert client.errors == []
    assert [status for *_t, status, _v in client.replies if status != 200] == []
    # A version may answer from when it became champion until the server reported
    # the next one (the follow lag); never one that was not champion in that window.
    windows = []
    for i, (version, start, _seen) in enumerate(timeline):
        end = timeline[i + 1][2] if i + 1 < len(timeline) else float("inf")
        windows.append((version, start, end))
    for t0, t1, _status, version in client.replies:
        assert any(v == version and start <= t1 and t0 <= end for v, start, end in windows), (
            version,
            t0,
            t1,
            windows,
        )
    assert {v for *_rest, v in client.replies} == {"v1", "v2", "v3"}
    health = srv.client.get("/health").json()
    assert (health["model_version"], health["last_error"]) == ("v2", None)
    assert "follow: @champion moved; now serving v3 (was v1)" in srv.output()


@pytest.mark.slow
def test_a_broken_new_version_keeps_the_old_one_serving(reg, cli, serve, pt2, broken_pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    reg.publish("tiny", [broken_pt2])
    assert cli("publish", "tiny", str(pt2)).exit_code == 0  # signature read from the .pt2
    reg.set_alias("tiny", "canary", "v1")
    srv = serve("tiny", "--alias", "canary", "--follow", "--poll-interval", POLL)
    assert srv.wait_health(loaded=True)["model_version"] == "v1"
    x = {"X": pm.example(1).tolist()}

    reg.set_alias("tiny", "canary", "v2")
    end = time.monotonic() + SWAP_BOUND_S
    while not (health := srv.client.get("/health").json())["last_error"]:
        assert time.monotonic() < end, health
        time.sleep(0.05)
    assert health["model_version"] == "v1" and health["model_loaded"] is True
    assert health["last_error"].startswith("follow: cannot load @canary (v2): ")
    assert health["last_error"].endswith("; still serving v1")
    r = srv.client.post("/predict", json=x)
    assert r.status_code == 200 and r.json()["model_version"] == "v1"
    time.sleep(1)  # several polls: the broken version is not retried in a loop
    assert srv.output().count("follow: cannot load @canary (v2)") == 1

    reg.set_alias("tiny", "canary", "v3")
    wait_version(srv, "v3")
    health = srv.client.get("/health").json()
    assert (health["model_alias"], health["last_error"]) == ("canary", None)
    assert srv.client.post("/predict", json=x).json()["model_version"] == "v3"
    r = srv.client.post("/predict", json={"X": pm.example(1)[:, :5].tolist()})
    assert r.status_code == 400 and "expected [*, 12, 18]" in r.json()["detail"]

    reg.remove_alias("tiny", "canary")  # nothing to follow: keep serving
    end = time.monotonic() + SWAP_BOUND_S
    while not (health := srv.client.get("/health").json())["last_error"]:
        assert time.monotonic() < end, health
        time.sleep(0.05)
    assert health["last_error"] == "follow: @canary names no version; still serving v3"
    assert srv.client.post("/predict", json=x).json()["model_version"] == "v3"


@pytest.mark.slow
def test_without_follow_the_server_stays_put(reg, serve, pt2):
    reg.publish("tiny", [pt2], signature=SIG)
    reg.publish("tiny", [pt2], signature=SIG)
    reg.promote("tiny", version="v1")
    srv = serve("tiny", "--poll-interval", POLL)
    assert srv.wait_health(loaded=True)["model_version"] == "v1"
    reg.promote("tiny", version="v2")
    time.sleep(1.5)
    assert srv.client.get("/health").json()["model_version"] == "v1"


def test_follow_settings(cli):
    from registry_cli.predict.settings import resolve_settings

    s = resolve_settings({"model": "m"}, {"follow": True}, {})
    assert (s.follow, s.poll_interval_s) == (True, 5.0)
    s = resolve_settings(
        {"model": "m", "follow": None, "poll_interval_s": None},
        {"poll_interval_s": 30},
        {"REGCTL_SERVE_FOLLOW": "1", "REGCTL_SERVE_POLL_INTERVAL": "2.5"},
    )
    assert (s.follow, s.poll_interval_s) == (True, 2.5)
    res = cli("serve", "m", "--follow", "--poll-interval", "0")
    assert res.exit_code == 2 and "invalid --poll-interval: 0" in res.stderr
