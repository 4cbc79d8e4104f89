"""Publishing over HTTP (see docs/server.md).

``multipart/form-data``: ``file`` parts, each part's filename its path inside
the payload, plus an optional ``metadata`` part (JSON). The body is parsed as
it arrives (python-multipart's streaming parser, fed in batches from a worker
thread) and every file part is written straight into a scratch folder of the
registry (``reg.scratch("upload")``, on the root's filesystem) while its
sha256 is computed, so memory stays flat whatever the size. Nothing is
published until the whole body arrived and every declared ``sha256`` matched;
the files are then renamed into the version (``Produced(move=True)``). A cut
connection, a size over ``max_upload_size`` or a refusal removes the scratch
folder; a killed server leaves one that ``regctl gc`` removes.

Or a JSON body ``{"from_mlflow": URI, ...}``: the server imports from MLflow.
``arch`` and ``trust_pickle`` are refused: they run code on the server.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from registry_cli.core.publishing import Produced
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.types import VersionInfo
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.server.metadata import (
    METADATA_KEYS,
    METADATA_LIMIT,
    MLFLOW_KEYS,
    conversion,
    mapping,
    parse_metadata,
    publish_from_mlflow_body,
    publish_kwargs,
)
from registry_cli.urlpaths import MODELNAME  # noqa: F401 (registers {name:modelname})

router = APIRouter()
log = logging.getLogger("uvicorn.error")

BATCH = 1 << 20  # bytes handed to the parser thread at a time
IN_FLIGHT = 8  # batches received and not yet written


def check_member_name(name: str) -> str:
    """A part's filename as a payload path: relative, no ``..``, no empty segment."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise BadInput(f"refused upload filename {name!r}: must be a relative path")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise BadInput(f"refused upload filename {name!r}: '..', '.' or empty segment")
    if len(name) > 4096:
        raise BadInput("refused upload filename: longer than 4096 characters")
    return name


@dataclass
class Received:
    """What arrived: files (payload path -> size, sha256) and the metadata document."""

    folder: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    metadata: bytes = b""


class PartWriter:
    """Callbacks of python-multipart's parser: each file part goes to disk, hashed."""

    def __init__(self, received: Received) -> None:
        self.received = received
        self.headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self.kind: str | None = None  # "file" | "metadata"
        self.path = ""
        self.out: IO[bytes] | None = None
        self.digest = hashlib.sha256()
        self.size = 0
        # the hash of a piece is computed beside its write (both release the GIL)
        self.hasher = ThreadPoolExecutor(1, thread_name_prefix="regctl-upload-hash")
        self.hashing: Future[None] | None = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self._field, self._value = {}, b"", b""
        self.kind, self.path, self.size = None, "", 0
        self.digest = hashlib.sha256()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self.headers[self._field.decode("latin-1").lower()] = self._value
        self._field, self._value = b"", b""

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        disposition, options = parse_options_header(self.headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise BadInput("a multipart part without Content-Disposition: form-data; name=...")
        name = options[b"name"].decode("utf-8", "replace")
        if name == "metadata":
            self.kind = "metadata"
            return
        if name != "file":
            raise BadInput(f"unknown form field {name!r}", hint="send 'file' parts and 'metadata'")
        if b"filename" not in options:
            raise BadInput("a 'file' part needs a filename (its path inside the payload)")
        self.kind = "file"
        self.path = check_member_name(options[b"filename"].decode("utf-8", "surrogateescape"))
        if self.path in self.received.files:
            raise BadInput(f"two file parts named {self.path!r}")
        target = self.received.folder / self.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.out = open(target, "xb")
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            raise BadInput(f"payload/{self.path} would be both a file and a folder") from None

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # no copy of the (1 MiB) batch
        if self.kind == "file" and self.out is not None:
            self._hashed()
            self.hashing = self.hasher.submit(self.digest.update, chunk)
            self.out.write(chunk)
            self.size += len(chunk)
        elif self.kind == "metadata":
            if len(self.received.metadata) + len(chunk) > METADATA_LIMIT:
                raise BadInput("the metadata part is over 1 MiB")
            self.received.metadata += bytes(chunk)

    def _hashed(self) -> None:
        if self.hashing is not None:
            self.hashing.result()
            self.hashing = None

    def part_end(self) -> None:
        if self.kind == "file" and self.out is not None:
            self._hashed()
            self.out.close()
            self.out = None
            self.received.files[self.path] = (self.size, self.digest.hexdigest())

    def close(self) -> None:
        self.hasher.shutdown(wait=True)
        if self.out is not None:
            self.out.close()
            self.out = None


async def receive_multipart(request: Request, folder: Path, limit: int) -> Received:
    """Stream the body into ``folder``; 413 past ``limit`` bytes, 400 if malformed.

    The event loop keeps receiving while a worker thread parses, writes and hashes
    the batches before it (a bounded queue between them), so the network and the
    disk work overlap and memory stays at a few MiB."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _ctype, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadInput("multipart/form-data without a boundary")
    received = Received(folder)
    writer = PartWriter(received)
    parser = MultipartParser(boundary, writer.callbacks())  # type: ignore[arg-type]
    batches: queue.Queue[bytes | None] = queue.Queue(maxsize=IN_FLIGHT)
    failed: list[BaseException] = []

    stop = threading.Event()  # the request was abandoned: the worker leaves at once

    def consume() -> None:
        try:
            while not stop.is_set():
                try:
                    data = batches.get(timeout=0.5)
                except queue.Empty:
                    continue
                if data is None:
                    if not failed:
                        parser.finalize()
                    return
                if not failed:
                    parser.write(data)
        except MultipartParseError as exc:
            failed.append(BadInput(f"malformed multipart body: {exc}"))
            _drain(batches, stop)
        except BaseException as exc:
            failed.append(exc)
            _drain(batches, stop)
        finally:
            writer.close()

    async def hand_over(data: bytes | None) -> None:
        try:
            batches.put_nowait(data)
        except queue.Full:
            await anyio.to_thread.run_sync(batches.put, data)

    worker = threading.Thread(target=consume, name="regctl-upload", daemon=True)
    worker.start()
    total = 0
    batch: list[bytes] = []
    pending = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            if failed:
                break
            batch.append(chunk)
            pending += len(chunk)
            if pending >= BATCH:
                await hand_over(b"".join(batch))
                batch, pending = [], 0
        if batch and not failed:
            await hand_over(b"".join(batch))
    except BaseException:
        stop.set()
        raise
    else:
        await hand_over(None)
    finally:
        await anyio.to_thread.run_sync(worker.join)
    if failed:
        raise failed[0]
    return received


def _drain(batches: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """After a failure, take what the receiver still hands over until it is done."""
    while not stop.is_set():
        try:
            if batches.get(timeout=0.5) is None:
                return
        except queue.Empty:
            continue


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"upload over the server's limit of {limit} bytes",
        hint="ask the registry admin to raise --max-upload-size",
        headers={"Connection": "close"},
    )


# ----------------------------------------------------------------- publishing
def _publish_files(
    reg: ModelRegistry, name: str, received: Received, doc: dict[str, Any], who: str
) -> VersionInfo:
    declared = mapping(doc, "sha256")
    for path, want in declared.items():
        if path not in received.files:
            raise BadInput(f"sha256 given for {path!r}, which was not uploaded")
        got = received.files[path][1]
        if not isinstance(want, str) or want.lower() != got:
            raise IntegrityError(
                f"sha256 mismatch for {path!r}: received {got}, expected {want}",
                hint="the upload was damaged or the file changed while sending; nothing "
                "was published",
            )
    if not received.files:
        raise BadInput("nothing to publish", hint="send one or more 'file' parts")
    kwargs = publish_kwargs(doc)
    convert = conversion(doc)
    tops = sorted({p.split("/", 1)[0] for p in received.files})
    if convert is not None:
        from registry_cli.formats.publish_sources import publish_with_conversion

        return publish_with_conversion(
            reg, name, [received.folder / t for t in tops], options=convert, **kwargs
        )
    if kwargs["signature"] is None:
        from registry_cli.formats.publish_sources import program_signature

        kwargs["signature"] = program_signature([received.folder / t for t in tops])
    paths = doc.get("source_paths")
    source = {
        "type": "local",
        "paths": [str(p) for p in paths] if isinstance(paths, list) else sorted(received.files),
        "uploaded_by": who,
    }
    produced = Produced(
        files=tuple((received.folder / p, p) for p in sorted(received.files)),
        move=True,
        sha256={p: sha for p, (_size, sha) in received.files.items()},  # hashed as received
        source=source,
    )
    return reg.publish(name, [], produced=produced, **kwargs)


@router.post(
    "/api/v1/models/{name:modelname}/-/versions",
    status_code=201,
    tags=["lifecycle"],
    responses={
        400: {"description": "bad input (names, metadata, filenames, arch/trust_pickle)"},
        413: {"description": "over --max-upload-size"},
        422: {"description": "a declared sha256 did not match"},
        502: {"description": "MLflow unreachable"},
    },
)
async def publish(
    request: Request, name: str, who: Principal = Depends(require("publish"))
) -> JSONResponse:
    """Publish the next version: multipart ``file`` parts (+ ``metadata``), or JSON
    ``{"from_mlflow": ...}``. Replies 201 with ``show --json``."""
    ctx: ServerContext = request.app.state.ctx
    reg = ctx.registry(who.name)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > ctx.max_upload_size:
        raise _too_large(ctx.max_upload_size)
    if ctype == "application/json":
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > METADATA_LIMIT:
                raise BadInput("a JSON publish body is over 1 MiB")
        doc = parse_metadata(bytes(raw), METADATA_KEYS | MLFLOW_KEYS)
        info = await anyio.to_thread.run_sync(publish_from_mlflow_body, reg, name, doc)
        return JSONResponse(info.to_json(), status_code=201)
    if ctype != "multipart/form-data":
        raise BadInput(
            f"publish takes multipart/form-data or application/json, not {ctype or 'nothing'}"
        )
    from registry_cli.core.names import validate_model_name

    validate_model_name(name)
    with reg.scratch("upload") as folder:
        files = folder / "files"
        files.mkdir()
        started = time.monotonic()
        try:
            received = await receive_multipart(request, files, ctx.max_upload_size)
        except ClientDisconnect:
            raise BadInput("the client went away mid-upload; nothing was published") from None
        doc = parse_metadata(received.metadata, METADATA_KEYS)
        arrived = time.monotonic()
        info = await anyio.to_thread.run_sync(_publish_files, reg, name, received, doc, who.name)
        log.info(
            "publish %s:%s by %s: %d file(s), %d bytes received in %.2f s, published in %.2f s",
            name,
            info.vname,
            who.name,
            len(received.files),
            sum(size for size, _sha in received.files.values()),
            arrived - started,
            time.monotonic() - arrived,
        )
    return JSONResponse(info.to_json(), status_code=201)
