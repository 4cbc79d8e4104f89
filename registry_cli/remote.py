"""``RemoteRegistry``: a registry server (``regctl serve-registry``) used like a root.

The same methods, return types and exceptions as :class:`ModelRegistry` for
publish, get/resolve, list_models, list_versions, promote, rollback, archive,
set_alias, remove_alias, tag and audit (SPEC §9 "Remote use"). Error
documents map back to the exceptions the core raises: 400 → BadInput,
404 → NotFound, 409 → RuleViolation, 422 → IntegrityError; 401/403, 5xx and
an unreachable server → RemoteError.

Standard library only (``http.client``), one keep-alive connection, so
``regctl --remote URL resolve`` starts about as fast as a local resolve.
Uploads stream each file from disk in 1 MiB pieces and hash it on the way;
the ``metadata`` part goes last with those sha256, which the server checks
before it publishes anything.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from registry_cli.core.types import AuditLog, ChangeResult, ModelSummary, VersionInfo
from registry_cli.errors import (
    BadInput,
    IntegrityError,
    MachineFault,
    NotFound,
    RegctlError,
    RemoteError,
    RuleViolation,
)

API = "/api/v1"
CHUNK = 1 << 20
ERRORS: dict[str, type[RegctlError]] = {
    "bad_input": BadInput,
    "too_large": BadInput,
    "not_found": NotFound,
    "refused": RuleViolation,
    "integrity": IntegrityError,
    "fault": MachineFault,
}
Progress = Callable[[str, int], "Callable[[int], None] | None"]


def _q(text: str, safe: str = "") -> str:
    return urllib.parse.quote(str(text), safe=safe)


def read_token_file(path: str | os.PathLike[str]) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"token file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read token file {path}: {exc.strerror}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise BadInput(f"token file {path} is empty")
    return token


def version_info(doc: dict[str, Any]) -> VersionInfo:
    """A ``show --json`` (or ``versions --json`` entry) document as a VersionInfo."""
    return VersionInfo(
        name=doc.get("name", ""),
        version=int(str(doc["version"]).lstrip("v")),
        status=doc.get("status", ""),
        stages=list(doc.get("stages") or []),
        aliases=list(doc.get("aliases") or []),
        tags=dict(doc.get("tags") or {}),
        metrics=dict(doc.get("metrics") or {}),
        params=dict(doc.get("params") or {}),
        description=doc.get("description"),
        created_at=doc.get("created_at", ""),
        created_by=doc.get("created_by", ""),
        source=dict(doc.get("source") or {}),
        files=list(doc.get("files") or []),
        derived_from=doc.get("derived_from"),
        path=Path(doc.get("path") or ""),
        preferred_weight=doc.get("preferred_weight", ""),
        bundle=dict(doc.get("bundle") or {}),
        standard_artifacts=dict(doc.get("standard_artifacts") or {}),
        signature=doc.get("signature"),
        manifest={},
    )


def _change(doc: dict[str, Any]) -> ChangeResult:
    return ChangeResult(
        action=doc["action"],
        name=doc["name"],
        version=doc.get("version"),
        changed=doc.get("changed") or {},
        noop=bool(doc.get("noop")),
        message=doc.get("message") or "",
    )


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
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._ssl = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
        if token is None and token_file is not None:
            token = read_token_file(token_file)
        if token is None:
            token = os.environ.get("REGCTL_TOKEN") or None
        self._token = token
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._stages: tuple[str, ...] | None = None

    # ---------------------------------------------------------------- transport
    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
        with self._lock:
            for attempt in (1, 2):
                conn = self._connect()
                try:
                    conn.request(method, target, body=data, headers=headers)
                    reply = conn.getresponse()
                    raw = reply.read()
                    break
                except (
                    http.client.RemoteDisconnected,
                    ConnectionResetError,
                    BrokenPipeError,
                ) as exc:
                    self.close()  # a kept-alive connection the server closed: once more
                    if attempt == 2:
                        raise self._unreachable(exc) from None
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    raise self._unreachable(exc) from None
            if reply.getheader("connection", "").lower() == "close":
                self.close()
        return self._decode(reply, raw)

    def _decode(self, reply: http.client.HTTPResponse, raw: bytes) -> Any:
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if reply.status < 400:
            if doc is None and raw:
                raise RemoteError(f"{self.url} answered something that is not JSON")
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            raise RemoteError(f"the registry server {self.url} answered HTTP {reply.status}")
        message = str(error.get("message") or f"HTTP {reply.status}")
        hint = error.get("hint")
        code = error.get("code")
        if reply.status in (401, 403):
            raise RemoteError(
                f"the registry server refused the request: {message}",
                hint=hint or "check $REGCTL_TOKEN / --token-file",
            )
        cls = ERRORS.get(str(code))
        if cls is None:
            raise RemoteError(f"the registry server failed: {message}", hint=hint)
        raise cls(message, hint=hint)

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
            )
            for m in self._request("GET", "/models")
        ]

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        doc = self._request("GET", f"/models/{_q(name, '/')}/-/versions", query={"stage": stage})
        return [version_info({**v, "name": name}) for v in doc["versions"]]

    def audit(self, name: str | None = None, limit: int | None = None) -> AuditLog:
        if limit is not None and limit < 0:
            raise BadInput("--limit must be zero or more")
        entries = self._request("GET", "/audit", query={"model": name, "limit": limit})
        return AuditLog(entries=list(entries), damaged_lines=[])

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
        return _change(self._request("POST", f"/models/{_q(name, '/')}/-/promote", body=body))

    def rollback(self, name: str, *, to: str | int | None = None) -> ChangeResult:
        return _change(
            self._request("POST", f"/models/{_q(name, '/')}/-/rollback", body={"to": to})
        )

    def archive(self, name: str, version: str | int, *, reason: str | None = None) -> ChangeResult:
        path = f"/models/{_q(name, '/')}/-/versions/{_q(str(version))}/archive"
        return _change(self._request("POST", path, body={"reason": reason}))

    def set_alias(self, name: str, alias: str, version: str | int) -> ChangeResult:
        path = f"/models/{_q(name, '/')}/-/aliases/{_q(alias)}"
        return _change(self._request("PUT", path, body={"version": version}))

    def remove_alias(self, name: str, alias: str) -> ChangeResult:
        path = f"/models/{_q(name, '/')}/-/aliases/{_q(alias)}"
        return _change(self._request("DELETE", path))

    def tag(
        self,
        name: str,
        version: str | int,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> ChangeResult:
        path = f"/models/{_q(name, '/')}/-/versions/{_q(str(version))}/tags"
        body = {"set": dict(set_tags or {}), "rm": list(remove or [])}
        return _change(self._request("POST", path, body=body))

    # ---------------------------------------------------------------- publish
    def publish(
        self,
        name: str,
        paths: list[str | os.PathLike[str]] | None = None,
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
        produced: Any = None,
        progress: Progress | None = None,
        from_mlflow: str | None = None,
        tracking_uri: str | None = None,
        artifact_path: str | None = None,
        convert: Any = None,
    ) -> VersionInfo:
        """Upload ``paths`` (files and folders) as the next version of ``name``; or, with
        ``from_mlflow``, have the server import it. ``convert`` is a ConversionOptions
        (``arch``/``trust_pickle`` are refused by the server)."""
        from registry_cli.core.names import validate_model_name

        validate_model_name(name)
        if produced is not None:
            raise BadInput("a remote publish takes files, not produced artifacts")
        meta: dict[str, Any] = {
            "metrics": dict(metrics or {}),
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            "description": description,
            "derived_from": derived_from,
            "signature": signature,
            "stage": stage,
            "no_latest": not set_latest,
            "no_alias": not set_alias,
        }
        if convert is not None:
            meta["convert"] = convert.target
            meta["task"] = convert.task
            meta["num_classes"] = convert.num_classes
            if convert.arch is not None:
                meta["arch"] = convert.arch
            if convert.trust_pickle:
                meta["trust_pickle"] = True
        meta = {k: v for k, v in meta.items() if v is not None}
        target = f"{self._base}{API}/models/{_q(name, '/')}/-/versions"
        if from_mlflow:
            if paths:
                raise BadInput("give either PATH... or --from-mlflow, not both")
            meta.update(
                {
                    "from_mlflow": from_mlflow,
                    "tracking_uri": tracking_uri,
                    "artifact_path": artifact_path,
                }
            )
            meta = {k: v for k, v in meta.items() if v is not None}
            return version_info(self._request("POST", target[len(self._base + API) :], body=meta))
        return version_info(self._upload(target, [Path(p) for p in paths or []], meta, progress))

    def _upload(
        self, target: str, sources: list[Path], meta: dict[str, Any], progress: Progress | None
    ) -> Any:
        from registry_cli.storage.payload import plan_payload

        planned = plan_payload(sources)  # every refusal before a byte is sent
        meta["source_paths"] = [str(p.absolute()) for p in sources]
        boundary = f"regctl-{uuid.uuid4().hex}"
        heads = []
        for item in planned:
            if any(c in item.relpath for c in '"\r\n'):
                raise BadInput(f"cannot upload {item.relpath!r}: quote or newline in the name")
            heads.append(
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="{item.relpath}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n"
                ).encode()
            )
        placeholder = {item.relpath: "0" * 64 for item in planned}
        meta_head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def meta_bytes(sha: dict[str, str]) -> bytes:
            return json.dumps({**meta, "sha256": sha}, sort_keys=True).encode()

        length = sum(len(h) + item.size + 2 for h, item in zip(heads, planned, strict=True))
        length += len(meta_head) + len(meta_bytes(placeholder)) + len(tail)
        tick = progress("upload", sum(p.size for p in planned)) if progress else None
        headers = self._headers(
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
            }
        )
        with self._lock:
            self.close()  # a fresh connection: a long upload must not start on a stale one
            conn = self._connect()
            try:
                conn.putrequest("POST", target, skip_accept_encoding=True)
                for key, value in headers.items():
                    conn.putheader(key, value)
                conn.endheaders()
                sha: dict[str, str] = {}
                try:
                    for head, item in zip(heads, planned, strict=True):
                        conn.send(head)
                        digest = hashlib.sha256()
                        sent = 0
                        for piece in _read(item.source):
                            digest.update(piece)
                            conn.send(piece)
                            sent += len(piece)
                            if tick:
                                tick(len(piece))
                        if sent != item.size:
                            self.close()
                            raise BadInput(f"{item.source} changed size while uploading")
                        conn.send(b"\r\n")
                        sha[item.relpath] = digest.hexdigest()
                    conn.send(meta_head + meta_bytes(sha) + tail)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered early (401, 413, ...): read what it said
                reply = conn.getresponse()
                raw = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise self._unreachable(exc) from None
            self.close()
        return self._decode(reply, raw)


def _read(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            piece = fh.read(CHUNK)
            if not piece:
                return
            yield piece
