"""The one outbound HTTP(S) helper (stdlib ``http.client``): one keep-alive
connection per scheme/host/port, TLS verified against the system store or a CA
file, a timeout per socket operation, and a request that returns the response
unread so a body can be streamed.

``ssl`` is imported only for an ``https`` endpoint (loading it and the CA store
costs start-up time). A request on a reused connection the server had closed
meanwhile is sent once more on a new one (that is keep-alive, not a retry);
real retries follow :mod:`registry_cli.net.retry`.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
from typing import Any

STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Endpoint:
    """Where requests go: ``scheme://host:port`` (plus a base path, kept for callers)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.base = parts.path.rstrip("/")
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @classmethod
    def of(cls, tls: bool, host: str, port: int, base: str = "") -> Endpoint:
        bracketed = f"[{host}]" if ":" in host else host
        return cls(f"{'https' if tls else 'http'}://{bracketed}:{port}{base}")


class HttpClient:
    """One keep-alive connection to ``endpoint``. Not thread-safe: one per thread."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 30.0,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.ca_file = ca_file
        self._context: Any = None
        self._conn: http.client.HTTPConnection | None = None

    def connection(self) -> http.client.HTTPConnection:
        """The open connection, else a new one (TLS context made once)."""
        if self._conn is None:
            e = self.endpoint
            if e.tls:
                if self._context is None:
                    import ssl

                    ca = os.fspath(self.ca_file) if self.ca_file else None
                    self._context = ssl.create_default_context(cafile=ca)
                self._conn = http.client.HTTPSConnection(
                    e.host, e.port, timeout=self.timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(e.host, e.port, timeout=self.timeout)
        return self._conn

    def request(
        self,
        method: str,
        target: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request and return the response with its body unread (read it
        whole before the next request, or :meth:`close`). ``body``: bytes, a file or an
        iterable of bytes (streamed; give ``Content-Length`` in ``headers``). Transport
        errors (``OSError``, ``http.client.HTTPException``) propagate, the connection
        closed."""
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self.connection()
            try:
                conn.request(method, target, body=body, headers=headers or {})
                return conn.getresponse()
            except STALE_CONNECTION:
                self.close()
                replayable = body is None or isinstance(body, bytes | bytearray)
                if not (reused and attempt == 1 and replayable):
                    raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def done(self, response: http.client.HTTPResponse) -> None:
        """After a response was read: drop the connection if the server closes it."""
        if (response.getheader("connection") or "").lower() == "close":
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except (OSError, http.client.HTTPException):
                pass
            self._conn = None
