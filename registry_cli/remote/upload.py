"""Streaming a publish to the registry server as ``multipart/form-data``.

A ``declare`` part goes first: every file's payload path and size, in the order
they follow, so the server can frame the bundle while the bytes arrive instead
of reading them again. Each file is then read from disk in 1 MiB pieces, hashed
and sent; the ``metadata`` part goes last carrying those sha256, which the
server checks before it publishes anything. The body's length is known in
advance (the metadata is measured with placeholder hashes of the same length),
so the server can refuse an oversized upload (413) before it is sent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput
from registry_cli.storage.payload import PlannedFile, plan_payload

CHUNK = 1 << 20


@dataclass
class MultipartBody:
    planned: list[PlannedFile]
    heads: list[bytes]
    meta: dict[str, Any]
    boundary: str
    declared: bool = True  # False for a server older than the declare part

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def declare(self) -> bytes:
        return self._declaration if self.declared else b""

    @cached_property
    def _declaration(self) -> bytes:
        files = [{"path": item.relpath, "size": item.size} for item in self.planned]
        return (
            (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="declare"\r\n'
                "Content-Type: application/json\r\n\r\n"
            ).encode()
            + json.dumps({"files": files}).encode()
            + b"\r\n"
        )

    @property
    def meta_head(self) -> bytes:
        return (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()

    @property
    def tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    def meta_bytes(self, sha: dict[str, str]) -> bytes:
        return json.dumps({**self.meta, "sha256": sha}, sort_keys=True).encode()

    @property
    def length(self) -> int:
        placeholder = {item.relpath: "0" * 64 for item in self.planned}
        files = sum(
            len(h) + item.size + 2 for h, item in zip(self.heads, self.planned, strict=True)
        )
        meta = len(self.meta_head) + len(self.meta_bytes(placeholder)) + len(self.tail)
        return len(self.declare) + files + meta

    @property
    def total(self) -> int:
        return sum(p.size for p in self.planned)


def plan_body(sources: list[Path], meta: dict[str, Any]) -> MultipartBody:
    """Plan the upload of ``sources`` (files and folders); every refusal before a byte."""
    planned = plan_payload(sources)
    meta = {**meta, "source_paths": [str(p.absolute()) for p in sources]}
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
    return MultipartBody(planned, heads, meta, boundary)


def send_body(
    conn: http.client.HTTPConnection,
    body: MultipartBody,
    tick: Callable[[int], None] | None,
) -> None:
    """Send every part; a server that answers early (401, 413) ends it quietly."""
    sha: dict[str, str] = {}
    # hashing (which releases the GIL) runs beside the sending of the same piece
    with ThreadPoolExecutor(1, thread_name_prefix="regctl-hash") as hasher:
        try:
            conn.send(body.declare)
            for head, item in zip(body.heads, body.planned, strict=True):
                conn.send(head)
                digest = hashlib.sha256()
                sent = 0
                for piece in _read(item.source):
                    hashed = hasher.submit(digest.update, piece)
                    conn.send(piece)
                    hashed.result()
                    sent += len(piece)
                    if tick:
                        tick(len(piece))
                if sent != item.size:
                    raise BadInput(f"{item.source} changed size while uploading")
                conn.send(b"\r\n")
                sha[item.relpath] = digest.hexdigest()
            conn.send(body.meta_head + body.meta_bytes(sha) + body.tail)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early: the caller reads what it said


def _read(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            piece = fh.read(CHUNK)
            if not piece:
                return
            yield piece
