"""bench/loadgen.py against a tiny keep-alive server on loopback that answers in the
shapes a real server may use: a whole reply in one write, a chunked body, a reply split
over several writes (its head too), and a non-200 status, which counts as an error."""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LOADGEN = Path(__file__).resolve().parents[1] / "bench" / "loadgen.py"
BODY = b'{"version": 1, "name": "m"}'

REPLIES: dict[str, list[bytes]] = {
    "whole": [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(BODY), BODY)
    ],
    "chunked": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    ],
    "split": [
        b"HTTP/1.1 200 OK\r\nConte",
        b"nt-Length: %d\r\n\r\n" % len(BODY),
        BODY[:5],
        BODY[5:],
    ],
    "missing": [b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"],
}


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pieces = REPLIES[self.server.shape]  # type: ignore[attr-defined]
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            _request, pending = pending.split(b"\r\n\r\n", 1)
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(0.002)  # separate segments: the client sees the pieces
                sock.sendall(piece)


@pytest.fixture
def server() -> Iterator[socketserver.ThreadingTCPServer]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def _load(srv: socketserver.ThreadingTCPServer, shape: str) -> dict[str, object]:
    srv.shape = shape  # type: ignore[attr-defined]
    port = srv.server_address[1]
    done = subprocess.run(
        [sys.executable, str(LOADGEN), "--target", f"127.0.0.1:{port}", "--path", "/x"]
        + ["--clients", "4", "--seconds", "0.5", "--start-in", "0", "--percentiles-only"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


@pytest.mark.parametrize("shape", ["whole", "chunked", "split"])
def test_every_reply_shape_is_read_to_its_end(
    server: socketserver.ThreadingTCPServer, shape: str
) -> None:
    doc = _load(server, shape)
    assert doc["errors"] == 0
    assert isinstance(doc["requests"], int) and doc["requests"] > 4  # keep-alive went on
    assert doc["loop"] in ("uvloop", "asyncio")
    assert doc["p50"] is not None


def test_a_reply_that_is_not_200_counts_as_an_error(
    server: socketserver.ThreadingTCPServer,
) -> None:
    doc = _load(server, "missing")
    assert isinstance(doc["requests"], int) and doc["requests"] > 4
    assert doc["errors"] == doc["requests"]
