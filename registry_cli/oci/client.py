"""A small client of the OCI distribution API (see docs/oci.md), on
:mod:`registry_cli.net.http` (stdlib ``http.client``, one keep-alive connection).

Written here rather than taken from ``oras`` (oras-py): its monolithic upload reads
the whole file into memory, it re-hashes every file to build a layer, and it pulls
``requests`` into a path that otherwise runs on the standard library. What this
needs is small: blob HEAD, monolithic and chunked (``PATCH`` + ``Content-Range``)
uploads streamed from the file, manifest PUT/GET, blob GET with ``Range``, tag
lists, and the Basic and Bearer token flows of :mod:`registry_cli.oci.auth`.

Errors: an unreachable registry or a refused login is :class:`RemoteError`
(exit 6); a missing manifest or blob :class:`NotFound` (exit 3); bytes that do not
match their digest :class:`IntegrityError` (exit 5).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from registry_cli.errors import IntegrityError, NotFound, RemoteError
from registry_cli.net.http import Endpoint, HttpClient
from registry_cli.oci import auth
from registry_cli.oci.reference import OciRef

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST))
MANIFEST_LIMIT = 4 << 20
BLOCK = 1 << 20
MONOLITHIC_MAX = 64 << 20  # larger blobs go up in PATCH chunks of CHUNK bytes
CHUNK = 64 << 20
Body = bytes | Callable[[], Iterable[bytes]] | None


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def file_chunks(path: Path, start: int, length: int) -> Callable[[], Iterator[bytes]]:
    """A replayable body: ``length`` bytes of ``path`` from ``start``, in 1 MiB reads."""

    def body() -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY)
        try:
            offset, end = start, start + length
            while offset < end:
                block = os.pread(fd, min(BLOCK, end - offset), offset)
                if not block:
                    raise IntegrityError(f"{path} is shorter than its recorded size")
                offset += len(block)
                yield block
        finally:
            os.close(fd)

    return body


class RegistryClient:
    """One repository on one registry; ``actions``: the token scope asked for."""

    def __init__(
        self,
        ref: OciRef,
        *,
        plain_http: bool = False,
        ca_cert: Path | None = None,
        credentials: auth.Credentials | None = None,
        actions: str = "pull",
        timeout: float = 60.0,
    ) -> None:
        self.ref = ref
        self.plain_http = plain_http
        self.ca_cert = ca_cert
        self.credentials = credentials
        self.scope = f"repository:{ref.repo}:{actions}"
        self.timeout = timeout
        port = ref.port or (80 if plain_http else 443)
        self.http = HttpClient(
            Endpoint.of(not plain_http, ref.host, port), timeout=timeout, ca_file=ca_cert
        )
        self.authorization: str | None = None
        self._side: HttpClient | None = None  # the host a blob redirect points at
        self.sent_bytes = 0
        self.description = f"{'http' if plain_http else 'https'}://{ref.registry}"

    def close(self) -> None:
        self.http.close()
        if self._side is not None:
            self._side.close()
            self._side = None

    def _redirected(
        self, location: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        url = urllib.parse.urljoin(f"{self.description}/", location)
        where = Endpoint(url)
        if self._side is not None:
            self._side.close()
        self._side = HttpClient(where, timeout=self.timeout, ca_file=self.ca_cert)
        try:
            resp = self._side.request("GET", where.target, headers=headers)
            if resp.status in (200, 206):
                return resp, b""
            return resp, resp.read(65536)
        except (OSError, http.client.HTTPException) as exc:
            self._side.close()
            raise RemoteError(f"cannot reach {where.host}:{where.port}: {_why(exc)}") from None

    # ---------------------------------------------------------------- transport
    def _path(self, tail: str) -> str:
        return f"/v2/{self.ref.repo}/{tail}"

    def request(
        self,
        method: str,
        target: str,
        *,
        body: Body = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """Send, answering one 401 by authenticating; returns the response and its body
        (``b""`` and the body unread with ``stream``)."""
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self.authorization:
                sent["Authorization"] = self.authorization
            data = body() if callable(body) else body
            try:
                resp = self.http.request(method, target, body=data, headers=sent)
                if resp.status == 401 and attempt == 1:
                    resp.read()
                    self._authenticate(resp.getheader("WWW-Authenticate"))
                    continue
                if stream and resp.status in (200, 206):
                    return resp, b""
                payload = resp.read()
                self.http.done(resp)
            except (OSError, http.client.HTTPException) as exc:
                self.http.close()
                raise self._unreachable(exc) from None
            if resp.status == 401:
                raise RemoteError(
                    f"{self.description} refused the credentials (401)",
                    hint="check --username/--password-env or the Docker config (docker login)",
                )
            return resp, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: BaseException) -> RemoteError:
        text = _why(exc)
        hint = "check the host and port, and that the registry runs there"
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            hint = "the registry speaks plain http: add --plain-http (plain_http: true)"
        return RemoteError(f"cannot reach {self.description}: {text}", hint=hint)

    def _authenticate(self, header: str | None) -> None:
        challenge = auth.parse_challenge(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise RemoteError(
                f"{self.description} asks for an unsupported authentication "
                f"({header or 'no WWW-Authenticate'})"
            )
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise RemoteError(
                    f"{self.description} needs a login (401)",
                    hint="give --username U --password-env VAR, or run docker login",
                )
            self.authorization = self.credentials.basic()
            return
        self.authorization = "Bearer " + self._token(challenge)

    def _token(self, challenge: auth.Challenge) -> str:
        url = auth.token_url(challenge, self.scope)
        where = Endpoint(url)
        client = HttpClient(where, timeout=self.timeout, ca_file=self.ca_cert)
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        try:
            resp = client.request("GET", where.target, headers=headers)
            data = resp.read(1 << 20)
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteError(
                f"cannot reach the token service {where.host}:{where.port}: {_why(exc)}"
            ) from None
        finally:
            client.close()
        if resp.status in (401, 403) and self.credentials is None:
            raise RemoteError(
                f"{self.description} needs a login ({resp.status} from its token service)",
                hint="give --username U --password-env VAR, or run docker login",
            )
        if resp.status in (401, 403):
            raise RemoteError(
                f"the token service of {self.description} refused the credentials ({resp.status})",
                hint="check --username/--password-env or the Docker config (docker login)",
            )
        token: Any = None
        try:
            doc = json.loads(data) if resp.status == 200 else {}
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            pass
        if not isinstance(token, str) or not token:
            raise RemoteError(
                f"the token service of {self.description} answered {resp.status} without a token"
            )
        return token

    def _fail(self, what: str, resp: http.client.HTTPResponse, payload: bytes) -> RemoteError:
        code = ""
        try:
            errors = json.loads(payload).get("errors") or []
            code = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            pass
        return RemoteError(
            f"{what}: {self.description} answered {resp.status}" + (f" ({code})" if code else "")
        )

    def _location(self, resp: http.client.HTTPResponse) -> str:
        loc = resp.getheader("Location") or ""
        parts = urllib.parse.urlsplit(loc)
        if not parts.path:
            raise RemoteError(f"{self.description} started an upload without a Location")
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # ---------------------------------------------------------------- blobs
    def blob_exists(self, digest: str) -> bool:
        resp, _ = self.request("HEAD", self._path(f"blobs/{digest}"))
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._fail(f"HEAD of blob {digest}", resp, b"")

    def upload_blob(self, digest: str, size: int, body: Callable[[int, int], Body]) -> None:
        """Upload ``size`` bytes; ``body(start, length)`` gives a replayable part."""
        resp, payload = self.request(
            "POST", self._path("blobs/uploads/"), headers={"Content-Length": "0"}
        )
        if resp.status != 202:
            raise self._fail(f"starting the upload of {digest}", resp, payload)
        location = self._location(resp)
        octet = {"Content-Type": "application/octet-stream"}
        if size > MONOLITHIC_MAX:
            for start in range(0, size, CHUNK):
                length = min(CHUNK, size - start)
                resp, payload = self.request(
                    "PATCH",
                    location,
                    body=body(start, length),
                    headers={
                        **octet,
                        "Content-Length": str(length),
                        "Content-Range": f"{start}-{start + length - 1}",
                    },
                )
                if resp.status != 202:
                    raise self._fail(f"uploading {digest}", resp, payload)
                self.sent_bytes += length
                location = self._location(resp)
            final: Body = b""
            length = 0
        else:
            final, length = body(0, size), size
        sep = "&" if "?" in location else "?"
        resp, payload = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            body=final,
            headers={**octet, "Content-Length": str(length)},
        )
        if resp.status == 400 and b"DIGEST_INVALID" in payload:
            raise IntegrityError(
                f"the registry computed another digest than {digest} for the uploaded bytes",
                hint="the local file changed or is damaged; run `regctl verify`",
            )
        if resp.status != 201:
            raise self._fail(f"finishing the upload of {digest}", resp, payload)
        self.sent_bytes += length

    def blob(self, digest: str, limit: int) -> bytes:
        """A small blob (a config), checked against its digest."""
        resp, payload = self.request("GET", self._path(f"blobs/{digest}"))
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            resp, payload = self._redirected(resp.getheader("Location") or "", {})
            if resp.status == 200:
                payload = resp.read(limit + 1)
        if resp.status == 404:
            raise NotFound(f"blob {digest} is not in {self.ref.display}")
        if resp.status != 200:
            raise self._fail(f"GET of blob {digest}", resp, payload)
        if len(payload) > limit:
            raise IntegrityError(f"blob {digest} is larger than {limit} bytes")
        if "sha256:" + hashlib.sha256(payload).hexdigest() != digest:
            raise IntegrityError(f"blob {digest} from {self.ref.display} does not match its digest")
        return payload

    def open_blob(self, digest: str, offset: int = 0) -> http.client.HTTPResponse:
        """The blob's response, body unread (from ``offset`` with a Range; 206 then).
        A redirect (registries serve blobs from object storage or a CDN) is followed
        once, without our Authorization."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp, payload = self.request(
            "GET", self._path(f"blobs/{digest}"), headers=headers, stream=True
        )
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            resp, payload = self._redirected(resp.getheader("Location") or "", headers)
        if resp.status in (200, 206):
            return resp
        if resp.status == 404:
            raise NotFound(f"blob {digest} is not in {self.ref.display}")
        raise self._fail(f"GET of blob {digest}", resp, payload)

    # ---------------------------------------------------------------- manifests
    def put_manifest(self, reference: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        resp, payload = self.request(
            "PUT",
            self._path(f"manifests/{reference}"),
            body=data,
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
        )
        if resp.status != 201:
            raise self._fail(f"PUT of manifest {reference}", resp, payload)
        return resp.getheader("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(data).hexdigest()
        )

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest; a digest reference is checked."""
        resp, payload = self.request(
            "GET", self._path(f"manifests/{reference}"), headers={"Accept": ACCEPT}
        )
        if resp.status == 404:
            raise NotFound(
                f"no manifest {reference!r} in {self.ref.display}",
                hint="list the tags with skopeo list-tags, or check the name",
            )
        if resp.status != 200:
            raise self._fail(f"GET of manifest {reference}", resp, payload)
        if len(payload) > MANIFEST_LIMIT:
            raise IntegrityError(f"manifest {reference} is larger than {MANIFEST_LIMIT} bytes")
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityError(
                f"manifest {reference} from {self.ref.display} does not match "
                f"its digest (got {digest})"
            )
        media = (resp.getheader("Content-Type") or "").split(";")[0].strip()
        return payload, media, digest

    def tags(self) -> list[str]:
        out: list[str] = []
        target: str | None = self._path("tags/list?n=1000")
        while target:
            resp, payload = self.request("GET", target)
            if resp.status == 404:
                raise NotFound(f"no repository {self.ref.repo!r} on {self.description}")
            if resp.status != 200:
                raise self._fail("listing the tags", resp, payload)
            try:
                out.extend(t for t in json.loads(payload).get("tags") or [] if isinstance(t, str))
            except (ValueError, AttributeError):
                raise IntegrityError(f"the tag list of {self.ref.display} is not JSON") from None
            link = resp.getheader("Link") or ""
            found = re.match(r"\s*<([^>]+)>", link)
            target = found.group(1) if found else None
        return out


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise IntegrityError(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return doc
