"""``RemoteRegistry``: a registry server (``regctl serve-registry``) used like a root.

It implements :class:`~registry_cli.core.contract.Registry` as ``ModelRegistry``
does: the same methods, results and exceptions. Error documents map back to the
core's exceptions (``registry_cli/error_codes.py``); 401/403, 5xx and an
unreachable server are a RemoteError.
A read (GET) is tried again on a transport error, 429 or 5xx, and any request on a
refused connection, with the back-off of :data:`registry_cli.net.retry.HTTP`; a change
is never sent twice.

Standard library only (:mod:`registry_cli.net.http`), one keep-alive connection, so
``regctl --remote URL resolve`` starts about as fast as a local resolve.
Uploads stream each file from disk in 1 MiB pieces and hash it on the way;
the ``metadata`` part goes last with those sha256, which the server checks.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from registry_cli.core.contract import PublishProgress, Registry
from registry_cli.core.types import AuditLog, ChangeResult, ModelSummary, VersionInfo
from registry_cli.errors import (
    BadInput,
    RemoteError,
)
from registry_cli.net.http import Endpoint, HttpClient
from registry_cli.net.retry import HTTP, RetryableReply, retry_reads, retryable_status
from registry_cli.remote.documents import (
    change_result,
    error_from,
    publish_metadata,
    quote,
    read_token_file,
    version_info,
)

API = "/api/v1"
CHUNK = 1 << 20


class RemoteRegistry:
    """A registry server at ``url``, acting with ``token`` (else ``token_file``, else
    ``$REGCTL_TOKEN``; none for a server with ``--anonymous-read``)."""

    remote = True

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_file: str | os.PathLike[str] | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        timeout: float = 300.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(
                f"invalid registry server URL {url!r}", hint="e.g. https://registry:8008"
            )
        if parts.password or parts.username:
            raise BadInput("a registry URL carries no user or password", hint="use a token")
        self.url = url.rstrip("/")
        self.root = self.url  # where this registry is, for messages
        self.actor = None  # the server records the token's name
        self._base = parts.path.rstrip("/")
        if token is None and token_file is not None:
            token = read_token_file(token_file)
        if token is None:
            token = os.environ.get("REGCTL_TOKEN") or None
        self._token = token
        self._http = HttpClient(
            Endpoint(f"{parts.scheme}://{parts.netloc}"), timeout=timeout, ca_file=ca_cert
        )
        self._lock = threading.Lock()
        self._stages: tuple[str, ...] | None = None
        self._last_headers: Any = None

    # ---------------------------------------------------------------- transport
    def _connect(self) -> http.client.HTTPConnection:
        return self._http.connection()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "regctl"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra or {})
        return headers

    def _unreachable(self, exc: BaseException) -> RemoteError:
        return RemoteError(
            f"cannot reach the registry server {self.url}: {exc or type(exc).__name__}",
            hint="check --remote / $REGCTL_URL and that regctl serve-registry is running",
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send a request with an optional JSON body; the decoded JSON reply."""
        target = self._base + API + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urllib.parse.urlencode(params)
        data = None
        headers = self._headers()
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # a read is tried again (HTTP policy); a change only when nothing was sent
        idempotent = method in ("GET", "HEAD")

        def once() -> tuple[http.client.HTTPResponse, bytes]:
            try:
                reply = self._http.request(method, target, body=data, headers=headers)
                raw = reply.read()
            except (OSError, http.client.HTTPException):
                self._http.close()
                raise
            self._http.done(reply)
            if idempotent and retryable_status(reply.status):
                raise RetryableReply(reply, raw)
            return reply, raw

        def retry_if(exc: BaseException) -> bool:
            if idempotent:
                return retry_reads(exc)
            return isinstance(exc, ConnectionRefusedError)  # nothing was sent

        with self._lock:
            try:
                reply, raw = HTTP.run(once, retry_if=retry_if)
            except RetryableReply as busy:
                reply, raw = busy.reply, busy.body  # type: ignore[assignment]
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from None
        return self._decode(reply, raw)

    def _decode(self, reply: http.client.HTTPResponse, raw: bytes) -> Any:
        self._last_headers = reply.headers
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if reply.status < 400:
            if doc is None and raw:
                raise RemoteError(f"{self.url} answered something that is not JSON")
            return doc
        raise error_from(reply.status, doc, self.url)

    # ---------------------------------------------------------------- reading
    @property
    def stages(self) -> tuple[str, ...]:
        if self._stages is None:
            doc = self._request("GET", "/health")
            self._stages = tuple(doc.get("stages") or ("dev", "release"))
        return self._stages

    def health(self) -> dict[str, Any]:
        return dict(self._request("GET", "/health"))

    def get(
        self,
        ref: str,
        *,
        stage: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        with_bundle: bool = True,
    ) -> VersionInfo:
        query = {
            "ref": str(ref),
            "stage": stage,
            "metric": metric,
            "mode": mode,
            "bundle": None if with_bundle else "false",
        }
        return version_info(self._request("GET", "/resolve", query=query))

    resolve = get

    def list_models(self) -> list[ModelSummary]:
        return [
            ModelSummary(
                name=m["name"],
                versions=m["versions"],
                latest=m.get("latest"),
                aliases=dict(m.get("aliases") or {}),
                stages=dict(m.get("stages") or {}),
                description=m.get("description"),
            )
            for m in self._request("GET", "/models")
        ]

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        path = f"/models/{quote(name, '/')}/-/versions"
        doc = self._request("GET", path, query={"stage": stage, "full": "true"})
        return [version_info(v) for v in doc["versions"]]

    def audit(self, name: str | None = None, limit: int | None = None) -> AuditLog:
        if limit is not None and limit < 0:
            raise BadInput("--limit must be zero or more")
        entries = self._request("GET", "/audit", query={"model": name, "limit": limit})
        damaged = (self._last_headers or {}).get("X-Regctl-Damaged-Lines") or ""
        return AuditLog(
            entries=list(entries), damaged_lines=[int(n) for n in damaged.split(",") if n.isdigit()]
        )

    # ---------------------------------------------------------------- lifecycle
    def promote(
        self,
        name: str,
        *,
        version: str | int | None = None,
        to: str | None = None,
        force: bool = False,
        reason: str | None = None,
        set_latest: bool = True,
    ) -> ChangeResult:
        body = {
            "version": version,
            "to": to,
            "force": force,
            "reason": reason,
            "no_latest": not set_latest,
        }
        return change_result(
            self._request("POST", f"/models/{quote(name, '/')}/-/promote", body=body)
        )

    def rollback(self, name: str, *, to: str | int | None = None) -> ChangeResult:
        return change_result(
            self._request("POST", f"/models/{quote(name, '/')}/-/rollback", body={"to": to})
        )

    def archive(self, name: str, version: str | int, *, reason: str | None = None) -> ChangeResult:
        path = f"/models/{quote(name, '/')}/-/versions/{quote(str(version))}/archive"
        return change_result(self._request("POST", path, body={"reason": reason}))

    def set_alias(self, name: str, alias: str, version: str | int) -> ChangeResult:
        path = f"/models/{quote(name, '/')}/-/aliases/{quote(alias)}"
        return change_result(self._request("PUT", path, body={"version": version}))

    def remove_alias(self, name: str, alias: str) -> ChangeResult:
        path = f"/models/{quote(name, '/')}/-/aliases/{quote(alias)}"
        return change_result(self._request("DELETE", path))

    def tag(
        self,
        name: str,
        version: str | int,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> ChangeResult:
        path = f"/models/{quote(name, '/')}/-/versions/{quote(str(version))}/tags"
        body = {"set": dict(set_tags or {}), "rm": list(remove or [])}
        return change_result(self._request("POST", path, body=body))

    # ---------------------------------------------------------------- publish
    def publish(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        stage: str | None = None,
        set_latest: bool = True,
        set_alias: bool = True,
        derived_from: str | None = None,
        signature: dict[str, Any] | None = None,
        progress: PublishProgress | None = None,
    ) -> VersionInfo:
        """Upload ``paths`` (files and folders) as the next version of ``name``."""
        return self.publish_with_conversion(
            name,
            paths,
            options=None,
            metrics=metrics,
            params=params,
            tags=tags,
            description=description,
            stage=stage,
            set_latest=set_latest,
            set_alias=set_alias,
            derived_from=derived_from,
            signature=signature,
            progress=progress,
        )

    def publish_with_conversion(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]] | None,
        *,
        options: Any,
        progress: PublishProgress | None = None,
        **meta: Any,
    ) -> VersionInfo:
        """:meth:`publish`, the server also converting with ``options`` (a
        ConversionOptions; ``arch``/``trust_pickle`` are refused by the server)."""
        from registry_cli.core.names import validate_model_name

        validate_model_name(name)
        doc = publish_metadata(meta, options)
        target = f"{self._base}{API}/models/{quote(name, '/')}/-/versions"
        return version_info(self._upload(target, [Path(p) for p in paths or []], doc, progress))

    def publish_from_mlflow(
        self,
        name: str,
        uri: str,
        *,
        tracking_uri: str | None = None,
        artifact_path: str | None = None,
        convert: Any = None,
        progress: PublishProgress | None = None,
        **meta: Any,
    ) -> VersionInfo:
        """Have the server import ``uri`` from MLflow as the next version of ``name``."""
        from registry_cli.core.names import validate_model_name

        validate_model_name(name)
        doc = publish_metadata(meta, convert)
        doc.update(
            {"from_mlflow": uri, "tracking_uri": tracking_uri, "artifact_path": artifact_path}
        )
        doc = {k: v for k, v in doc.items() if v is not None}
        return version_info(
            self._request("POST", f"/models/{quote(name, '/')}/-/versions", body=doc)
        )

    def _upload(
        self,
        target: str,
        sources: list[Path],
        meta: dict[str, Any],
        progress: PublishProgress | None,
    ) -> Any:
        from registry_cli.remote.upload import plan_body, send_body  # not needed to read

        body = plan_body(sources, meta)
        tick = progress("upload", body.total) if progress else None
        while True:
            headers = self._headers(
                {"Content-Type": body.content_type, "Content-Length": str(body.length)}
            )
            with self._lock:
                self.close()  # a fresh connection: a long upload must not start on a stale one
                conn = self._connect()
                try:
                    conn.putrequest("POST", target, skip_accept_encoding=True)
                    for key, value in headers.items():
                        conn.putheader(key, value)
                    conn.endheaders()
                    try:
                        send_body(conn, body, tick)
                    except BadInput:
                        self.close()
                        raise
                    reply = conn.getresponse()
                    raw = reply.read()
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    raise self._unreachable(exc) from None
                self.close()
            if not (body.declared and b"unknown form field 'declare'" in raw):
                break
            body.declared = False  # a server older than the declare part: again without
        return self._decode(reply, raw)


_conforms: type[Registry] = RemoteRegistry  # mypy fails here when the contract drifts
