"""Read a served tree over HTTP(S) (stdlib ``http.client``): a ``regctl serve-registry``
root (its tree is under ``/dist/``) or any static web server or CDN of a ``dist/`` tree.

- The tree's base is found once: if ``BASE/api/v1/health`` answers as a
  registry server does, the tree is ``BASE/dist/``, else ``BASE/`` itself.
- A token (``--token-env VAR`` or ``$REGCTL_TOKEN``) is sent as
  ``Authorization: Bearer``; TLS is verified (``--ca-cert`` for a private CA).
- A resume asks ``Range: bytes=N-`` with ``If-Range: <ETag>`` (a strong ETag,
  else Last-Modified): a 206 must start exactly at N (else exit 5); a 200 means
  the file changed or the server ignores ranges, and the file starts over.
- Each request is tried again on a transport error, 429 or 5xx (the HTTP policy
  of :mod:`registry_cli.net.retry`). A body cut before its ``Content-Length`` is a
  :class:`RemoteError` (exit 6, resumable: the next run sends ``If-Range``);
  404 is :class:`NotFound`; 401/403 is a refused login (exit 6).
"""

from __future__ import annotations

import http.client
import json
import posixpath
import re
import ssl
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core.names import format_version
from registry_cli.errors import BadInput, IntegrityError, NotFound, RemoteError
from registry_cli.net.http import Endpoint, HttpClient
from registry_cli.net.retry import HTTP, RetryableReply, retry_reads, retryable_status
from registry_cli.pull.remote import RemoteVersion
from registry_cli.pull.sources import Source
from registry_cli.pull.transports import Fetched, sink_for, tree_path, why
from registry_cli.storage.hashing import Progress
from registry_cli.storage.streams import pump

if TYPE_CHECKING:
    from hashlib import _Hash

CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)\Z")


class HttpTransport:
    """One keep-alive HTTP(S) connection to a served tree."""

    def __init__(
        self,
        source: Source,
        *,
        token: str | None = None,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
        tree_base: str | None = None,
    ) -> None:
        self.source = source
        self.description = source.display
        self._token = token
        self._ca_cert = ca_cert
        self._timeout = timeout
        self._http = HttpClient(
            Endpoint.of(source.tls, source.host, source.port), timeout=timeout, ca_file=ca_cert
        )
        self._tree_base = tree_base

    # -- plumbing ------------------------------------------------------
    def _get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """A GET, tried again on a transport error, 429 or 5xx (the HTTP policy of
        :mod:`registry_cli.net.retry`); the response with its body unread."""
        headers = dict(headers or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"

        def once() -> http.client.HTTPResponse:
            resp = self._http.request("GET", path, headers=headers)
            if retryable_status(resp.status):
                resp.read(65536)
                self.close()
                raise RetryableReply(resp)
            return resp

        try:
            return HTTP.run(once, retry_if=retry_reads)
        except RetryableReply as busy:
            return busy.reply  # type: ignore[return-value]
        except ssl.SSLError as exc:
            self.close()
            raise RemoteError(
                f"TLS with {self.description} failed: {why(exc)}",
                hint="for a private CA pass --ca-cert FILE",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RemoteError(
                f"cannot reach {self.description}: {why(exc)}",
                hint="check the URL and that the server runs, "
                "or use a cached version (--version vN, or --offline)",
            ) from None

    def _failed(self, relpath: str, resp: http.client.HTTPResponse) -> Exception:
        resp.read(65536)
        if resp.status == 404:
            return NotFound(f"{relpath} is not on {self.description}")
        if resp.status in (401, 403):
            return RemoteError(
                f"{self.description} refused the request for {relpath} (HTTP {resp.status})",
                hint="give a token with --token-env VAR or $REGCTL_TOKEN",
            )
        return RemoteError(f"{self.description}: {relpath}: HTTP {resp.status} {resp.reason}")

    def _base(self) -> str:
        """The URL path of the served tree (found once, see the module docstring)."""
        if self._tree_base is None:
            base = self.source.base.rstrip("/")
            resp = self._get(f"{base}/api/v1/health")
            body = resp.read(65536)
            is_server = False
            if resp.status == 200:
                try:
                    doc: Any = json.loads(body)
                    is_server = isinstance(doc, dict) and doc.get("status") == "ok"
                except ValueError:
                    pass
            self._tree_base = f"{base}/dist" if is_server else base
        return self._tree_base

    def payload_path(self, stage: str, name: str, remote: RemoteVersion, entry: dict) -> str:
        """Where to GET a payload file. A registry server whose tree points at blobs (an
        object-store root) serves no blob folder: its files route serves the version's
        file (``/api/v1/models/NAME/-/versions/vN/files/PATH``, an absolute path)."""
        if remote.blobs and self._base() != self.source.base.rstrip("/"):
            return (
                f"/api/v1/models/{name}/-/versions/{format_version(remote.version)}"
                f"/files/{entry['path']}"
            )
        return remote.file_path(stage, name, entry)

    def _path(self, relpath: str) -> str:
        if any(c in relpath for c in "\r\n\0"):
            raise BadInput(f"invalid path {relpath!r}")
        if relpath.startswith("/api/v1/"):  # a server route, not a file of the tree
            return urllib.parse.quote(posixpath.normpath(relpath))
        return urllib.parse.quote(tree_path(self._base(), relpath))

    # -- the transport -------------------------------------------------
    def read_small(self, relpath: str, limit: int) -> bytes:
        resp = self._get(self._path(relpath))
        if resp.status != 200:
            raise self._failed(relpath, resp)
        try:
            data = resp.read(limit + 1)
            if len(data) > limit:
                self.close()
                raise IntegrityError(
                    f"{relpath} on {self.description} is larger than {limit} bytes; refusing it"
                )
            resp.read()  # the end of the body, so the connection can be reused
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RemoteError(f"{self.description}: reading {relpath} failed: {why(exc)}") from None
        return data

    def download(
        self,
        relpath: str,
        fd: int,
        progress: Progress | None = None,
        *,
        offset: int = 0,
        prefix: _Hash | None = None,
        validator: str | None = None,
        limit: int | None = None,
        on_validator: Callable[[str | None], None] | None = None,
    ) -> Fetched:
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        resp = self._get(self._path(relpath), headers)
        start = 0
        if resp.status == 206:
            found = CONTENT_RANGE_RE.match(resp.getheader("Content-Range") or "")
            if not offset or not found or int(found.group(1)) != offset:
                self.close()
                raise IntegrityError(
                    f"{relpath} from {self.description}: a 206 reply with the wrong range "
                    f"({resp.getheader('Content-Range')!r}, asked for bytes={offset}-)"
                )
            start = offset
        elif resp.status == 416 and offset:
            resp.read(65536)  # the offset lies past the end: the file changed; start over
            return self.download(relpath, fd, progress, limit=limit, on_validator=on_validator)
        elif resp.status != 200:
            raise self._failed(relpath, resp)
        etag = resp.getheader("ETag")
        new_validator = etag if etag and not etag.startswith("W/") else None
        new_validator = new_validator or resp.getheader("Last-Modified")
        declared = resp.getheader("Content-Length")
        if on_validator is not None:
            on_validator(new_validator)
        try:
            size, digest = pump(
                resp.readinto,  # type: ignore[arg-type]
                fd,
                progress,
                sink=sink_for(fd, start, prefix if start else None),
                limit=limit,
            )
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RemoteError(
                f"{self.description}: transfer of {relpath} was cut: {why(exc)}",
                hint="run the same pull again: it resumes where it stopped",
            ) from None
        if limit is not None and size > limit:
            self.close()  # the rest is not wanted
        elif declared is not None and size - start < int(declared):
            self.close()
            raise RemoteError(
                f"{self.description}: transfer of {relpath} was cut after "
                f"{size - start} of {declared} bytes",
                hint="run the same pull again: it resumes where it stopped",
            )
        return Fetched(size, digest, new_validator, start)

    def fork(self) -> HttpTransport:
        return HttpTransport(
            self.source,
            token=self._token,
            ca_cert=self._ca_cert,
            timeout=self._timeout,
            tree_base=self._tree_base,
        )

    def close(self) -> None:
        self._http.close()
