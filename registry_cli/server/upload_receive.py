"""Receiving a publish's ``multipart/form-data`` body (see docs/server.md).

The body is parsed as it arrives (python-multipart's streaming parser, fed in
batches from a worker thread) and every ``file`` part is written straight into
a scratch folder while its sha256 is computed on another thread, so memory
stays flat whatever the size.

A ``declare`` part sent before the files (JSON ``{"files": [{"path", "size"},
...]}``, in the payload's order) also lets the server frame and hash the
level-0 bundle as the bytes arrive, on a third thread
(:mod:`registry_cli.storage.bundle_receipt`): the publish then never reads the
files again. Parts that do not match the declaration only cost that saving.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request

from registry_cli.errors import BadInput
from registry_cli.server.metadata import METADATA_LIMIT
from registry_cli.storage.bundle_receipt import BundleReceipt, ReceivedBundle

BATCH = 1 << 20  # bytes handed to the parser thread at a time
IN_FLIGHT = 8  # batches received and not yet written
DECLARE_LIMIT = 16 << 20  # a declaration of many files is longer than metadata


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


def parse_declaration(raw: bytes) -> list[tuple[str, int]]:
    """The ``declare`` part: ``{"files": [{"path": P, "size": N}, ...]}``."""
    try:
        doc = json.loads(raw)
        entries = doc["files"]
        declared = [(e["path"], e["size"]) for e in entries]
    except (ValueError, TypeError, KeyError):
        raise BadInput(
            'the declare part must be {"files": [{"path": ..., "size": ...}, ...]}'
        ) from None
    for path, size in declared:
        if not isinstance(path, str) or type(size) is not int or size < 0:
            raise BadInput(f"bad declared file {path!r}: a path and a size in bytes")
        check_member_name(path)
    return declared


@dataclass
class Received:
    """What arrived: files (payload path -> size, sha256), the metadata document and,
    when the declaration held, the bundle framed on receipt."""

    folder: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    metadata: bytes = b""
    bundle: ReceivedBundle | None = None
    declared: bool = False


class PartWriter:
    """Callbacks of python-multipart's parser: each file part goes to disk, hashed.

    ``frame_bundle``: whether a declaration may start a :class:`BundleReceipt` (the
    registry keeps level-0 bundles that are assembled when read)."""

    def __init__(self, received: Received, *, frame_bundle: bool = False) -> None:
        self.received = received
        self.frame_bundle = frame_bundle
        self.headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self.kind: str | None = None  # "file" | "metadata" | "declare"
        self.path = ""
        self.fd = -1
        self.digest = hashlib.sha256()
        self.size = 0
        self.declaration = b""
        self.receipt: BundleReceipt | None = None
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
        if name == "declare":
            if self.received.files or self.fd >= 0 or self.received.declared:
                raise BadInput("the declare part goes once, before every file part")
            self.kind = "declare"
            return
        if name != "file":
            raise BadInput(
                f"unknown form field {name!r}", hint="send 'file' parts, 'metadata', 'declare'"
            )
        if b"filename" not in options:
            raise BadInput("a 'file' part needs a filename (its path inside the payload)")
        self.kind = "file"
        self.path = check_member_name(options[b"filename"].decode("utf-8", "surrogateescape"))
        if self.path in self.received.files:
            raise BadInput(f"two file parts named {self.path!r}")
        target = self.received.folder / self.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            raise BadInput(f"payload/{self.path} would be both a file and a folder") from None
        if self.receipt is not None:
            self.receipt.begin(self.path)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # no copy of the (1 MiB) batch
        if self.kind == "file" and self.fd >= 0:
            self._hashed()
            self.hashing = self.hasher.submit(self.digest.update, chunk)
            if self.receipt is not None:
                self.receipt.feed(chunk)
            while chunk:
                chunk = chunk[os.write(self.fd, chunk) :]
            self.size += end - start
        elif self.kind == "metadata":
            if len(self.received.metadata) + len(chunk) > METADATA_LIMIT:
                raise BadInput("the metadata part is over 1 MiB")
            self.received.metadata += bytes(chunk)
        elif self.kind == "declare":
            if len(self.declaration) + len(chunk) > DECLARE_LIMIT:
                raise BadInput("the declare part is over 16 MiB")
            self.declaration += bytes(chunk)

    def _hashed(self) -> None:
        if self.hashing is not None:
            self.hashing.result()
            self.hashing = None

    def part_end(self) -> None:
        if self.kind == "file" and self.fd >= 0:
            self._hashed()
            os.close(self.fd)
            self.fd = -1
            if self.receipt is not None:
                self.receipt.end()
            self.received.files[self.path] = (self.size, self.digest.hexdigest())
        elif self.kind == "declare":
            declared = parse_declaration(self.declaration)
            self.received.declared = True
            if self.frame_bundle:
                self.receipt = BundleReceipt(declared, int(time.time()))

    def finish(self) -> None:
        """The body ended well: keep the bundle if every declared file arrived."""
        if self.receipt is not None:
            self.received.bundle = self.receipt.result()

    def close(self) -> None:
        self.hasher.shutdown(wait=True)
        if self.receipt is not None:
            self.receipt.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def receive_multipart(
    request: Request,
    folder: Path,
    limit: int,
    too_large: Callable[[int], Exception],
    *,
    frame_bundle: bool = False,
) -> Received:
    """Stream the body into ``folder``; ``too_large(limit)`` past ``limit`` bytes, 400
    if malformed.

    The event loop keeps receiving while a worker thread parses, writes and hashes
    the batches before it (a bounded queue between them), so the network and the
    disk work overlap and memory stays bounded (``IN_FLIGHT`` batches of one to a few
    MiB: a batch is at least ``BATCH`` and at most one socket read more)."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _ctype, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadInput("multipart/form-data without a boundary")
    received = Received(folder)
    writer = PartWriter(received, frame_bundle=frame_bundle)
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
                        writer.finish()
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
                raise too_large(limit)
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


READ_SIZE = 4 << 20  # bytes asked of the socket at a time (asyncio's default: 256 KiB)


def http_protocol() -> Any:
    """uvicorn's httptools protocol reading up to ``READ_SIZE`` at a time, or "auto".

    A publish body arrives in 256 KiB reads by default, each a turn of the event loop
    and of uvicorn's flow control (about 0.2 ms): 0.9 s of CPU per GiB. Bigger reads
    take what the socket holds at once (a few MiB on a fast link), so a GiB costs a
    few hundred turns; a small request reads what it sent, as before."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn uses h11
        return "auto"

    class BigReads(HttpToolsProtocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            if isinstance(getattr(type(transport), "max_size", None), int):
                transport.max_size = READ_SIZE  # asyncio's socket transport
            super().connection_made(transport)

    return BigReads
