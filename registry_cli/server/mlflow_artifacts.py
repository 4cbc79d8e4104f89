"""The artifact proxy routes MLflow's client downloads a version through (read-only).

``get-download-uri`` answers ``<server>/api/2.0/mlflow-artifacts/artifacts/models/
NAME/-/vN[/DIR]`` (DIR: the version's MLflow model folder, the one holding
``MLmodel``, so ``mlflow.pyfunc.load_model`` finds it at the top). MLflow's
``HttpArtifactRepository`` handles ``http(s)://`` URIs: it lists with
``GET .../mlflow-artifacts/artifacts?path=P`` and fetches each file with
``GET .../mlflow-artifacts/artifacts/P/FILE``, sending ``MLFLOW_TRACKING_TOKEN``.

Only files the manifest lists are listed or sent. Every byte sent is hashed with
the whole file, and the last piece of a response leaves only once the file's
sha256 matched the manifest: a file changed on disk ends the response early
(the client sees a short body), never as a complete wrong file. ``Range`` works
the same way (the whole file is hashed, the range is sent).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from registry_cli.core.types import VersionInfo
from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.server.auth import authenticate, bearer
from registry_cli.server.context import ServerContext
from registry_cli.server.mlflow_http import MlflowError, MlflowRoute

log = logging.getLogger("uvicorn.error")
router = APIRouter(route_class=MlflowRoute)
ARTIFACTS = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")
CHUNK = 1 << 20
_PATH = re.compile(r"models/(?P<name>.+?)/-/v(?P<version>[0-9]+)(?:/(?P<sub>.*))?\Z")
_RANGE = re.compile(r"bytes=(?P<start>[0-9]*)-(?P<end>[0-9]*)\Z")


def model_folder(files: list[str]) -> str:
    """The folder inside ``payload/`` holding ``MLmodel`` ("" for payload/ itself)."""
    if "payload/MLmodel" in files:
        return ""
    found = sorted({p.split("/")[1] for p in files if p.count("/") == 2 and p.endswith("/MLmodel")})
    return found[0] if len(found) == 1 else ""


def download_uri(base_url: str, info: VersionInfo) -> str:
    sub = model_folder([f["path"] for f in info.files])
    return f"{base_url}{ARTIFACTS[0]}/models/{info.name}/-/v{info.version}" + (
        f"/{sub}" if sub else ""
    )


def parse_path(path: str) -> tuple[str, int, str]:
    """``models/NAME/-/vN[/SUB]`` -> (NAME, N, SUB)."""
    found = _PATH.match(path.strip("/"))
    if not found:
        raise NotFound(f"no artifact {path!r} here", hint="paths come from get-download-uri")
    sub = (found["sub"] or "").strip("/")
    if any(part in ("", ".", "..") for part in sub.split("/")) and sub:
        raise NotFound(f"no artifact {path!r} here")
    return found["name"], int(found["version"]), sub


def listing(files: list[dict[str, Any]], sub: str) -> list[dict[str, Any]]:
    """MLflow's list of what is directly inside ``payload/SUB`` (a file lists nothing)."""
    prefix = "payload/" + (f"{sub}/" if sub else "")
    children: dict[str, dict[str, Any]] = {}
    for f in files:
        path = f["path"]
        if not path.startswith(prefix):
            continue
        head, _, rest = path[len(prefix) :].partition("/")
        if rest:
            children[head] = {"path": head, "is_dir": True}
        else:
            children[head] = {"path": head, "is_dir": False, "file_size": int(f["size"])}
    return [children[k] for k in sorted(children)]


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single-range ``Range`` header; None: all."""
    if not header:
        return None
    found = _RANGE.match(header.strip())
    if not found or not (found["start"] or found["end"]):
        return None  # several ranges or another unit: the whole file
    if found["start"]:
        start = int(found["start"])
        end = min(int(found["end"]) + 1, size) if found["end"] else size
    else:
        start, end = max(size - int(found["end"]), 0), size
    if start >= size or start >= end:
        raise MlflowError(416, "INVALID_PARAMETER_VALUE", f"range {header!r} outside {size} bytes")
    return start, end


def verified(path: Path, sha256: str, size: int, start: int, end: int) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of ``path``, the last piece held back until the whole
    file hashed to ``sha256`` with ``size`` bytes; else the stream ends early."""
    digest = hashlib.sha256()
    held: bytes | None = None
    pos = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            lo, hi = max(start, pos), min(end, pos + len(block))
            if lo < hi:
                if held is not None:
                    yield held
                held = block[lo - pos : hi - pos]
            pos += len(block)
    if pos != size or digest.hexdigest() != sha256:
        log.error("integrity: %s does not match its manifest; response cut short", path)
        raise IntegrityError(f"{path} does not match its manifest (sha256/size)")
    if held is not None:
        yield held


async def _reader(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    await authenticate(ctx, bearer(request), "read")
    return ctx


def _version(ctx: ServerContext, name: str, number: int) -> VersionInfo:
    return ctx.base.get(f"{name}:v{number}", with_bundle=False)


async def list_artifacts(request: Request) -> Response:
    ctx = await _reader(request)
    path = request.query_params.get("path") or ""
    name, number, sub = parse_path(path)
    info = _version(ctx, name, number)
    files = listing(info.files, sub)
    return JSONResponse({"files": files} if files else {})


async def download(request: Request, path: str) -> Response:
    ctx = await _reader(request)
    name, number, sub = parse_path(path)
    if not sub:
        raise BadInput(f"{path!r} is a folder; list it with ?path=")
    info = _version(ctx, name, number)
    entry = next((f for f in info.files if f["path"] == f"payload/{sub}"), None)
    if entry is None:
        raise NotFound(f"{name}:v{number} has no file payload/{sub}")
    found = Path(os.path.realpath(info.path / "payload" / sub))
    if not found.is_relative_to(os.path.realpath(info.path)):  # a symlink out of the version
        raise NotFound(f"{name}:v{number} has no file payload/{sub}")
    size, sha = int(entry["size"]), str(entry["sha256"])
    span = byte_range(request.headers.get("range"), size)
    start, end = span or (0, size)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start),
        "ETag": f'"{sha}"',
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        verified(found, sha, size, start, end),
        status_code=206 if span else 200,
        headers=headers,
        media_type="application/octet-stream",
    )


for _base in ARTIFACTS:
    router.add_api_route(_base, list_artifacts, methods=["GET"], tags=["mlflow"])
    router.add_api_route(_base + "/{path:path}", download, methods=["GET"], tags=["mlflow"])
