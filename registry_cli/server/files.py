"""Downloads: ``/dist/{stage}/{name}/...`` (the served tree, as over FTP) and one
payload file of a version (see docs/server.md).

No path leaves its base: a request path is refused (404) when any segment,
decoded as often as it still decodes, is ``.``/``..``/empty or holds a
backslash or NUL, and the resolved file (symlinks followed) must lie inside
the base. ``ETag`` + ``Range``/``If-Range`` on every file (starlette's
``FileResponse``), ``If-None-Match`` answered 304; files under
``versions/vN/`` never change (``Cache-Control: immutable``), the pointers
``LATEST``, ``LATEST.json`` and ``index.json`` are ``no-cache``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from registry_cli.core.served.bundle_files import DistBundles
from registry_cli.errors import IntegrityError
from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.storage import layout
from registry_cli.storage.bundle_stream import BundleStream
from registry_cli.storage.open import local_version
from registry_cli.urlpaths import MODELNAME  # noqa: F401 (registers {name:modelname})

router = APIRouter()
log = logging.getLogger("uvicorn.error")

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
POINTERS = ("LATEST", "LATEST.json", "index.json")
_VERSION_PART = re.compile(r"(^|/)versions/v[0-9]+/")


def _not_found(path: str) -> ApiError:
    return ApiError(404, f"no file {path!r} here")


def safe_relative(path: str) -> str:
    """``path`` if every segment is a plain name (after repeated percent-decoding)."""
    if not path or path.startswith("/"):
        raise _not_found(path)
    for segment in path.split("/"):
        decoded, previous = segment, None
        while decoded != previous:  # %252e%252e -> %2e%2e -> ..
            previous, decoded = decoded, urllib.parse.unquote(decoded)
        if decoded in ("", ".", "..") or "\\" in decoded or "\0" in decoded or "/" in decoded:
            raise _not_found(path)
    return path


def file_inside(base: Path, relative: str) -> Path:
    """The regular file ``base/relative``, symlinks resolved, never outside ``base``."""
    safe_relative(relative)
    base_real = os.path.realpath(base)
    target = os.path.realpath(os.path.join(base_real, relative))
    if os.path.commonpath([base_real, target]) != base_real:
        raise _not_found(relative)
    try:
        st = os.stat(target)
    except OSError:
        raise _not_found(relative) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_found(relative)
    return Path(target)


def _etag(path: Path, content_hash: str | None) -> str:
    if content_hash:
        return f'"{content_hash}"'
    st = os.stat(path)
    if st.st_size <= 1 << 20:  # small documents (pointers, manifests): by content
        return f'"{hashlib.sha256(path.read_bytes()).hexdigest()}"'
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def send_file(
    request: Request, path: Path, cache: str, content_hash: str | None = None
) -> Response:
    etag = _etag(path, content_hash)
    headers = {"ETag": etag, "Cache-Control": cache}
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or etag in [t.strip() for t in wanted.split(",")]):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, headers=headers, media_type=_media_type(path))


_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


def send_assembled(request: Request, stream: BundleStream, cache: str) -> Response:
    """A bundle assembled from the payload as it is sent (docs/server.md): the same
    ``ETag`` (the recorded sha256), ``Range``/``If-Range`` and 304 as a file."""
    etag = f'"{stream.sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache, "Accept-Ranges": "bytes"}
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or etag in [t.strip() for t in wanted.split(",")]):
        return Response(status_code=304, headers=headers)
    size = stream.size
    start, end, status = 0, size, 200
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    found = _RANGE.match(asked.strip()) if asked else None
    if found and (if_range is None or if_range.strip() == etag):
        first, last = found.groups()
        if first:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
        elif last:
            start = max(0, size - int(last))
        if start >= size or start >= end or (not first and not last):
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        _body(stream, start, end),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


def _body(stream: BundleStream, start: int, end: int) -> Iterator[bytes | memoryview]:
    """The range's bytes; a damaged payload file ends the body short (the client sees a
    cut transfer: fewer bytes than Content-Length) with one line in the log."""
    try:
        yield from stream.iter_range(start, end)
    except IntegrityError as exc:
        log.error("transfer aborted: %s", exc)


def _media_type(path: Path) -> str:
    if path.name.endswith(".json"):
        return "application/json"
    if path.name == "LATEST":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


_BUNDLES: dict[str, DistBundles] = {}


def _dist_bundles(dist: Path) -> DistBundles:
    found = _BUNDLES.get(str(dist))
    if found is None:
        found = _BUNDLES[str(dist)] = DistBundles(dist)
    return found


@router.api_route("/dist/{path:path}", methods=["GET", "HEAD"], tags=["files"])
def dist_file(request: Request, path: str, who: Principal = Depends(require("read"))) -> Response:
    """A file of the served tree ``dist/`` (as over FTP)."""
    ctx: ServerContext = request.app.state.ctx
    dist = Path(ctx.root) / layout.DIST
    if path.endswith("/bundle.tar.gz"):
        safe_relative(path)
        assembled = _dist_bundles(dist).stream(os.path.join(dist, path))
        if assembled is not None:
            return send_assembled(request, assembled, IMMUTABLE)
    found = file_inside(dist, path)
    immutable = _VERSION_PART.search(path) and found.name not in POINTERS
    return send_file(request, found, IMMUTABLE if immutable else NO_CACHE)


@router.api_route(
    "/api/v1/models/{name:modelname}/-/versions/{version}/files/{path:path}",
    methods=["GET", "HEAD"],
    tags=["files"],
)
def version_file(
    request: Request,
    name: str,
    version: str,
    path: str,
    who: Principal = Depends(require("read")),
) -> Response:
    """One payload file of a version (``payload/...`` as in the manifest)."""
    ctx: ServerContext = request.app.state.ctx
    safe_relative(path)
    reg = ctx.registry(who.name)
    info = reg.get(f"{name}:{version}", with_bundle=False)
    listed = {f["path"]: f.get("sha256") for f in info.files}
    if path not in listed:
        raise _not_found(path)
    # the version folder on a folder root; on an object store, the copy this server
    # fetched (verified against the manifest) into its local cache, once
    folder = local_version(reg.store, layout.version_key(info.name, info.version))
    found = file_inside(folder, path)
    return send_file(request, found, IMMUTABLE, listed[path])
