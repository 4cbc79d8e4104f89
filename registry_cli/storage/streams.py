"""Write a stream to a file descriptor while hashing it: the one write-all loop,
the threaded hashing sink and the receive pump that the bundle reader and the
pull transports share.

``hashlib`` and ``os.write`` release the GIL, so receiving (or inflating),
hashing and writing overlap: a chunk costs the slowest of the three, not their
sum (when the disk is slow, hashing hides behind the write).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from registry_cli.storage.hashing import CHUNK, Progress


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is out (a write may be partial)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class HashingSink:
    """Hash and write each chunk on two helper threads while the producer fetches the next."""

    def __init__(self, fd: int, digest: hashlib._Hash | None = None, size: int = 0) -> None:
        self.fd = fd
        self.digest = digest if digest is not None else hashlib.sha256()
        self.size = size
        self._hasher = ThreadPoolExecutor(max_workers=1)
        self._writer = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future[None]] = []

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def submit(self, data: memoryview) -> None:
        """Queue ``data``; the caller must not reuse its buffer until the next submit/wait."""
        self.wait()
        self.size += len(data)
        self._pending = [
            self._hasher.submit(self.digest.update, data),
            self._writer.submit(write_all, self.fd, data),
        ]

    def finish(self) -> tuple[int, str]:
        try:
            self.wait()
        finally:
            self._hasher.shutdown(wait=True)
            self._writer.shutdown(wait=True)
        return self.size, self.digest.hexdigest()


def _fill(recv_into: Callable[[memoryview], int], view: memoryview) -> int:
    """Fill ``view`` as far as the stream allows; 0 means end of stream."""
    got = 0
    while got < len(view):
        n = recv_into(view[got:])
        if not n:
            break
        got += n
    return got


def pump(
    recv_into: Callable[[memoryview], int],
    fd: int,
    progress: Progress | None = None,
    *,
    sink: HashingSink | None = None,
    limit: int | None = None,
) -> tuple[int, str]:
    """Copy a stream to ``fd`` in 1 MiB blocks with inline sha256 (double-buffered).

    ``sink`` continues an earlier hash (a resumed file); with ``limit`` the copy
    stops after that many bytes in total and one more byte is read to tell a
    stream that is longer than announced (its size is then ``limit + 1``).
    """
    sink = sink or HashingSink(fd)
    buffers = [memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK))]
    turn = 0
    try:
        while True:
            view = buffers[turn]
            if limit is not None:
                view = view[: max(1, min(len(view), limit - sink.size + 1))]
            got = _fill(recv_into, view)
            if not got:
                break
            sink.submit(view[:got])  # waits for the buffer submitted two turns ago
            if progress is not None:
                progress(got)
            turn ^= 1
            if limit is not None and sink.size > limit:
                break
    finally:
        size, digest = sink.finish()
    return size, digest
