"""The server's end (see docs/operations.md): FTP children die with a SIGKILLed
registry server, and SIGTERM drains the requests in flight before exiting 0."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest

from registry_cli.server.launch import ServeRegistryProcess
from tests.test_server import make_root, server_env

pytestmark = pytest.mark.slow


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by init) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return found


def _wait_until(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_ftp_children_die_with_a_sigkilled_server(tmp_path):
    root = tmp_path / "registry"
    tokens = make_root(root, ("admin",))
    proc = ServeRegistryProcess(root, log=tmp_path / "server.log", env=server_env(tmp_path))
    proc.start()
    try:
        admin = httpx.Client(
            base_url=proc.url, headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=60
        )
        started = [admin.post("/api/v1/ftp-servers", json={"port": 0, "anonymous": True})]
        time.sleep(11)  # past anyio's idle-thread lifetime: the starting thread is gone
        started.append(admin.post("/api/v1/ftp-servers", json={"port": 0, "anonymous": True}))
        assert all(r.status_code == 201 for r in started), [r.text for r in started]
        ports = [r.json()["port"] for r in started]
        assert all(_accepts(p) for p in ports)  # still serving after the thread went
        pids = _children_of(proc.proc.pid)
        assert len(pids) == 2
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait()
        assert _wait_until(lambda: not any(_alive(p) for p in pids)), "a child outlived it"
        assert _wait_until(lambda: not any(_accepts(p) for p in ports)), "a port still open"
    finally:
        proc.stop()


BOUNDARY = "regctl-drain-test"


def _multipart(path: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


class SlowUpload(threading.Thread):
    """A publish sent a piece at a time over a raw socket (a throttled client)."""

    def __init__(self, port: int, token: str, name: str, size: int, pieces: int, pause: float):
        super().__init__(daemon=True)
        self.body = _multipart("weights.bin", os.urandom(size))
        self.head = (
            f"POST /api/v1/models/{name}/-/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.port, self.pieces, self.pause = port, pieces, pause
        self.sent_pieces = 0
        self.reply = b""
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
                s.sendall(self.head)
                step = -(-len(self.body) // self.pieces)
                for i in range(0, len(self.body), step):
                    s.sendall(self.body[i : i + step])
                    self.sent_pieces += 1
                    time.sleep(self.pause)
                while chunk := s.recv(65536):
                    self.reply += chunk
        except OSError as exc:
            self.error = exc

    @property
    def status(self) -> int | None:
        line = self.reply.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else None


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_sigterm_lets_an_upload_in_flight_finish_and_refuses_new_connections(tmp_path):
    root = tmp_path / "registry"
    tokens = make_root(root, ("publish",))
    proc = ServeRegistryProcess(
        root, "--drain-timeout", "60", log=tmp_path / "server.log", env=server_env(tmp_path)
    )
    proc.start()
    try:
        upload = SlowUpload(proc.port, tokens["publish"], "team/slow", 400_000, 40, 0.1)
        upload.start()
        assert _wait_until(lambda: upload.sent_pieces >= 3)
        proc.proc.send_signal(signal.SIGTERM)
        assert _wait_until(lambda: _refused(proc.port)), "still accepting after SIGTERM"
        assert upload.is_alive(), "the upload should still be in flight when refusals start"
        upload.join(60)
        assert upload.error is None and upload.status == 201, upload.reply[:500]
        assert proc.proc.wait(60) == 0, proc.log
    finally:
        proc.stop()
    from registry_cli import ModelRegistry

    assert ModelRegistry(root).get("team/slow:v1").version == 1  # committed


def test_a_request_longer_than_the_drain_timeout_is_cut_and_the_server_exits(tmp_path):
    root = tmp_path / "registry"
    tokens = make_root(root, ("publish",))
    proc = ServeRegistryProcess(
        root, "--drain-timeout", "1", log=tmp_path / "server.log", env=server_env(tmp_path)
    )
    proc.start()
    try:
        upload = SlowUpload(proc.port, tokens["publish"], "team/cut", 400_000, 200, 0.2)
        upload.start()
        assert _wait_until(lambda: upload.sent_pieces >= 3)
        proc.proc.send_signal(signal.SIGTERM)
        code = proc.proc.wait(60)  # bounded: it exits long before the upload could end
        assert upload.sent_pieces < 200, "the upload ended before the server: nothing was cut"
        upload.join(60)
        assert upload.status != 201
        assert code == 0, proc.log
        assert "timeout graceful shutdown exceeded" in proc.log
    finally:
        proc.stop()
    from registry_cli import ModelRegistry

    assert ModelRegistry(root).list_models() == []  # a cut upload publishes nothing
