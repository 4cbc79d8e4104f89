"""A byte-counting TCP proxy for the tests: put it in front of a real HTTP server
(serve-registry, moto's S3) to count what a client receives and which paths it asks for.

It forwards every connection to the upstream port as it is (keep-alive included),
counts the bytes sent back to the client and records the request lines (``GET /path``)
seen from the client. Stopped by its handle (``with`` or :meth:`close`).
"""

from __future__ import annotations

import re
import socket
import threading

REQUEST_RE = re.compile(rb"(?:^|\r\n)(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


class CountingProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.bytes_down = 0
        self._sent_up = bytearray()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request the clients sent so far."""
        with self._lock:
            data = bytes(self._sent_up)
        return [(m.decode(), p.decode()) for m, p in REQUEST_RE.findall(data)]

    def reset(self) -> None:
        with self._lock:
            self.bytes_down = 0
            self._sent_up.clear()

    def _serve(self) -> None:
        while not self._closing:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for src, dst, down in ((client, upstream, False), (upstream, client, True)):
                t = threading.Thread(target=self._pipe, args=(src, dst, down), daemon=True)
                t.start()
                self._threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                with self._lock:
                    if down:
                        self.bytes_down += len(data)
                    else:
                        self._sent_up.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
