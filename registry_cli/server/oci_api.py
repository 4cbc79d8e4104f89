"""The OCI distribution API, read side, beside regctl's own (see docs/oci.md#the-v2-endpoint).

``GET /v2/``, ``GET /v2/<name>/tags/list``, ``GET|HEAD /v2/<name>/manifests/<tag|digest>``
and ``GET|HEAD /v2/<name>/blobs/<digest>`` (with ``Range``). The repository is the model
name, nested names are nested paths (``/v2/team/ppe/manifests/v1``), so one route takes
the whole path and splits it at its last ``/manifests/``, ``/blobs/`` or ``/tags/list``.
Tokens are the server's: ``Authorization: Bearer TOKEN``, or Basic with the token as
the password (any user name), so ``docker login``, ``skopeo`` and ``oras`` work; reads
are open with ``--anonymous-read``. Pushing is refused (405): versions come in through
``regctl publish``. Errors are the distribution API's ``{"errors": [{code, message,
detail}]}``.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from registry_cli.core.names import validate_model_name
from registry_cli.errors import BadInput, NotFound, RegctlError
from registry_cli.oci import catalog, mapping
from registry_cli.server.auth import Principal, authenticate
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.server.files import IMMUTABLE, NO_CACHE, file_inside
from registry_cli.storage import layout
from registry_cli.storage.open import local_version
from registry_cli.storage.store import Missing

router = APIRouter()

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="regctl"', **API_VERSION}
PUSH_HINT = "regctl publish NAME PATH... (this registry is read-only over OCI)"
READS = ("GET", "HEAD")
_CACHE: OrderedDict[tuple[str, str, str], catalog.ModelIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


class OciError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self, detail: Any = None) -> JSONResponse:
        body = {"errors": [{"code": self.code, "message": self.message, "detail": detail}]}
        return JSONResponse(body, self.status, headers={**API_VERSION, **(self.headers or {})})


def _secret(request: Request) -> str | None:
    """The token of a request: the Bearer token, or the password of Basic."""
    header = request.headers.get("authorization")
    if not header:
        return None
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer":
        return value.strip()
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""  # something else: refused like a wrong token


async def _who(request: Request) -> Principal:
    ctx: ServerContext = request.app.state.ctx
    try:
        return await authenticate(ctx, _secret(request), "read")
    except ApiError as exc:
        if exc.status == 401:
            raise OciError(401, "UNAUTHORIZED", exc.message, CHALLENGE) from None
        raise OciError(403, "DENIED", exc.message) from None


def _index(ctx: ServerContext, name: str) -> catalog.ModelIndex:
    """The model's index, rebuilt only when its state document changes."""
    reg = ctx.base
    try:
        validate_model_name(name)
    except BadInput as exc:
        raise OciError(400, "NAME_INVALID", exc.message) from None
    try:
        tag = reg.store.read_tagged(layout.state_key(name)).tag
    except (Missing, BadInput):
        raise OciError(404, "NAME_UNKNOWN", f"no model {name!r} here") from None
    key = (reg.store.location, name, tag)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    try:
        index = catalog.model_index(reg, reg.model_state(name))
    except NotFound:
        raise OciError(404, "NAME_UNKNOWN", f"no model {name!r} here") from None
    with _CACHE_LOCK:
        _CACHE[key] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index


def _bytes(request: Request, data: bytes, media: str, cache: str) -> Response:
    digest = mapping.digest_of(data)
    headers = {
        **API_VERSION,
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Cache-Control": cache,
        "Accept-Ranges": "bytes",
    }
    status, body = 200, data
    wanted = request.headers.get("range")
    if wanted:
        span = _range(wanted, len(data))
        if span is None:
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"}
            )
        start, end = span
        body, status = data[start : end + 1], 206
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    headers["Content-Length"] = str(len(body))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media)
    return Response(body, status_code=status, headers=headers, media_type=media)


def _range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end < size else None


def _manifest(request: Request, ctx: ServerContext, name: str, ref: str) -> Response:
    index = _index(ctx, name)
    if ref.startswith("sha256:"):
        number = index.manifests.get(ref)
        if number is not None:
            return _bytes(
                request, index.artifacts[number].manifest, mapping.MANIFEST_MEDIA_TYPE, IMMUTABLE
            )
        for _tag, (_n, sig) in catalog.signature_artifacts(ctx.base, index).items():
            if sig.digest == ref:
                return _bytes(request, sig.manifest, mapping.MANIFEST_MEDIA_TYPE, IMMUTABLE)
        raise OciError(404, "MANIFEST_UNKNOWN", f"{name} has no manifest {ref}")
    if ref.endswith(".sig"):
        found = catalog.signature_artifacts(ctx.base, index).get(ref)
        if found is None:
            raise OciError(404, "MANIFEST_UNKNOWN", f"{name} has no tag {ref!r}")
        return _bytes(request, found[1].manifest, mapping.MANIFEST_MEDIA_TYPE, NO_CACHE)
    number = index.tags.get(ref)
    if number is None:
        raise OciError(404, "MANIFEST_UNKNOWN", f"{name} has no tag {ref!r}")
    cache = IMMUTABLE if ref == f"v{number}" else NO_CACHE  # vN never moves
    return _bytes(request, index.artifacts[number].manifest, mapping.MANIFEST_MEDIA_TYPE, cache)


def _blob(request: Request, ctx: ServerContext, name: str, digest: str) -> Response:
    hexpart = digest[len("sha256:") :]
    if not digest.startswith("sha256:") or not layout.is_sha256(hexpart):
        raise OciError(400, "DIGEST_INVALID", f"{digest!r} is not sha256:<64 hex digits>")
    index = _index(ctx, name)
    found = index.layers.get(hexpart)
    if found is not None:
        number, layer = found
        folder = local_version(ctx.base.store, layout.version_key(name, number))
        path = file_inside(folder, layer.path)
        headers = {**API_VERSION, "Docker-Content-Digest": digest, "ETag": f'"{digest}"',
                   "Cache-Control": IMMUTABLE}  # fmt: skip
        return FileResponse(path, headers=headers, media_type="application/octet-stream")
    config_of = index.configs.get(digest)
    if config_of is not None:
        return _bytes(
            request, index.artifacts[config_of].config, "application/octet-stream", IMMUTABLE
        )
    if digest == mapping.digest_of(mapping.EMPTY_BLOB):
        return _bytes(request, mapping.EMPTY_BLOB, "application/octet-stream", IMMUTABLE)
    for _n, sig in catalog.signature_artifacts(ctx.base, index).values():
        for _signer, data in sig.blobs:
            if mapping.digest_of(data) == digest:
                return _bytes(request, data, "application/octet-stream", IMMUTABLE)
    raise OciError(404, "BLOB_UNKNOWN", f"{name} has no blob {digest}")


def _tags(request: Request, ctx: ServerContext, name: str) -> Response:
    index = _index(ctx, name)
    tags = sorted(set(index.tags) | set(catalog.signature_artifacts(ctx.base, index)))
    last = request.query_params.get("last")
    if last:
        tags = [t for t in tags if t > last]
    count = request.query_params.get("n")
    headers = dict(API_VERSION)
    if count is not None:
        if not count.isdigit():
            raise OciError(400, "PAGINATION_NUMBER_INVALID", f"n={count!r} is not a number")
        if len(tags) > int(count):
            tags = tags[: int(count)]
            headers["Link"] = f'</v2/{name}/tags/list?n={count}&last={tags[-1]}>; rel="next"'
    return JSONResponse({"name": name, "tags": tags}, headers=headers)


def _split(rest: str) -> tuple[str, str, str]:
    """``(kind, name, reference)`` of a path below ``/v2/``."""
    if rest.rstrip("/").endswith("/tags/list"):
        return "tags", rest.rstrip("/")[: -len("/tags/list")], ""
    for kind in ("manifests", "blobs"):
        name, sep, ref = rest.rpartition(f"/{kind}/")
        if sep and name and ref and "/" not in ref:
            return kind, name, ref
    raise OciError(404, "NAME_UNKNOWN", f"no such route /v2/{rest}")


@router.api_route(
    "/v2/{rest:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    tags=["oci"],
    include_in_schema=False,
)
async def v2(request: Request, rest: str) -> Response:
    """Every path of the distribution API (nested names are nested paths)."""
    ctx: ServerContext = request.app.state.ctx
    try:
        if request.method not in READS:
            raise OciError(
                405,
                "UNSUPPORTED",
                f"{request.method} /v2/{rest}: pushing to regctl over OCI is not supported; "
                f"publish with {PUSH_HINT}",
                {"Allow": "GET, HEAD"},
            )
        await _who(request)
        if rest in ("", "/"):
            return JSONResponse({}, headers=API_VERSION)
        kind, name, ref = _split(rest)
        if kind == "tags":
            return _tags(request, ctx, name)
        if kind == "manifests":
            return _manifest(request, ctx, name, ref)
        return _blob(request, ctx, name, ref)
    except OciError as exc:
        return exc.response({"hint": PUSH_HINT} if exc.status == 405 else None)
    except RegctlError as exc:
        status = 404 if isinstance(exc, NotFound) else 500
        return OciError(status, "NOT_FOUND" if status == 404 else "UNKNOWN", exc.message).response()


@router.api_route("/v2", methods=["GET", "HEAD"], include_in_schema=False)
async def v2_base(request: Request) -> Response:
    return await v2(request, "")
