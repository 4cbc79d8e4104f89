"""A small static web server for the tests: serves a folder with ``ETag``, ``Range`` and
``If-Range`` as RFC 9110 says, on a thread, on a free loopback port (TLS optional).

It counts the body bytes it sends (in all and per path), records the paths asked for
and each request's headers, tracks requests in flight, and can misbehave on purpose
(``fault``, on paths containing ``fault_on``) or slowly (``delay_per_chunk``):

- ``"short"``: declare the full ``Content-Length``, send half, close (a cut transfer);
- ``"wrong-range"``: answer a range request with a 206 that starts at 0;
- ``"ignore-range"``: answer every request with the whole file (200).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)\Z")
CHUNK = 64 * 1024


class StaticServer:
    def __init__(
        self,
        folder: Path,
        *,
        prefix: str = "",
        token: str | None = None,
        registry_health: bool = False,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.folder = folder
        self.prefix = prefix.rstrip("/")
        self.token = token
        self.registry_health = registry_health
        self.fault: str | None = None
        self.fault_on = "/payload/"  # faults apply to paths containing this
        self.sent_to: dict[str, int] = {}
        self.delay_per_chunk = 0.0
        self.sent = 0
        self.paths: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, request headers)
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                with server._lock:
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    self._get()
                finally:
                    with server._lock:
                        server.inflight -= 1

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _get(self) -> None:
                path = unquote(urlsplit(self.path).path)
                server.paths.append(path)
                server.requests.append((path, dict(self.headers.items())))
                if server.registry_health and path == "/api/v1/health":
                    return self._reply(200, json.dumps({"status": "ok"}).encode())
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._reply(401, b"unauthorized")
                if not path.startswith(server.prefix + "/"):
                    return self._reply(404)
                fault = server.fault if server.fault_on in path else None
                rel = path[len(server.prefix) + 1 :]
                target = (server.folder / rel).resolve()
                if server.folder.resolve() not in target.parents or not target.is_file():
                    return self._reply(404)
                st = target.stat()
                etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
                start, status = 0, 200
                wanted = RANGE_RE.match(self.headers.get("Range", ""))
                if_range = self.headers.get("If-Range")
                if wanted and fault != "ignore-range" and (not if_range or if_range == etag):
                    start = int(wanted.group(1))
                    if start >= st.st_size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{st.st_size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    status = 206
                length = st.st_size - start
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(length))
                if status == 206:
                    first = 0 if fault == "wrong-range" else start
                    self.send_header(
                        "Content-Range", f"bytes {first}-{first + length - 1}/{st.st_size}"
                    )
                self.end_headers()
                budget = length // 2 if fault == "short" else length
                with open(target, "rb") as fh:
                    fh.seek(start)
                    while budget > 0:
                        data = fh.read(min(CHUNK, budget))
                        if not data:
                            break
                        try:
                            self.wfile.write(data)
                        except OSError:
                            return None
                        budget -= len(data)
                        with server._lock:
                            server.sent += len(data)
                            server.sent_to[path] = server.sent_to.get(path, 0) + len(data)
                        if server.delay_per_chunk:
                            time.sleep(server.delay_per_chunk)
                if fault == "short":
                    self.close_connection = True
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reset_counts(self, timeout: float = 10.0) -> None:
        """Zero the counters once no request is in flight (a killed client's included)."""
        deadline = time.monotonic() + timeout
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        self.sent = 0
        self.sent_to.clear()
        self.paths.clear()
        self.requests.clear()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.prefix}"

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def add_manifest_sha256(dist: Path) -> None:
    """Give a served tree the ``manifest_sha256`` keys (see docs/layout.md) (for trees written
    before the writer records them)."""
    import hashlib

    def sha(mdir: Path, version: str) -> str:
        data = (mdir / "versions" / version / "manifest.json").read_bytes()
        return hashlib.sha256(data).hexdigest()

    for doc_path in [*dist.rglob("index.json"), *dist.rglob("LATEST.json")]:
        doc = json.loads(doc_path.read_text())
        if doc_path.name == "LATEST.json":
            doc["manifest_sha256"] = sha(doc_path.parent, doc["version"])
        else:
            for entry in doc["versions"]:
                entry["manifest_sha256"] = sha(doc_path.parent, entry["version"])
        os.unlink(doc_path)  # never write through a hard link
        doc_path.write_text(json.dumps(doc, indent=2))


def drop_manifest_sha256(dist: Path) -> None:
    """Make a served tree look like one written before ``manifest_sha256`` existed."""
    for doc_path in [*dist.rglob("index.json"), *dist.rglob("LATEST.json")]:
        doc = json.loads(doc_path.read_text())
        for entry in [doc, *(doc.get("versions") or [])]:
            entry.pop("manifest_sha256", None)
        os.unlink(doc_path)
        doc_path.write_text(json.dumps(doc, indent=2))
