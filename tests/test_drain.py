"""The server's end (see docs/operations.md): FTP children die with a SIGKILLed
registry server, and SIGTERM drains the requests in flight before exiting 0."""

from __future__ import annotations

import os
import signal
import socket
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
