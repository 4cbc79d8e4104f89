"""Write a stream to a file descriptor while hashing it: the one write-all loop,
the threaded hashing sink and the receive pump that the bundle reader and the
pull transports share.

``hashlib`` and ``os.write`` release the GIL, so the hash of one chunk (on a
helper thread) overlaps receiving (or inflating) and writing the next one (on
the caller's thread): a chunk costs the slower of the two, not their sum. One
hand-off per chunk, not two (receive + write together cost about what the hash
costs, so a third thread would not go faster).

The helper pays only when a core is free for it. With many transfers at once
on few cores (20 pulls on 2 cores) every hand-off is paid in CPU and in wake-up
latency: hashing on the caller's thread then took ~11 % less CPU and ~25 % less
time (bench/bench_pull.py). So the sink starts hashing on the caller's thread
(a small file never starts the helper), tries the helper after one window of
:data:`WINDOW` chunks, and at the end of each helper window compares the CPU
time its two threads got with the wall-clock time: below :data:`OVERLAP` cores
it goes back to the caller's thread for :data:`PROBE` windows, then tries again
(so a transfer left alone when the others finish gets its second core back).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from registry_cli.storage.hashing import CHUNK, Progress


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is out (a write may be partial)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


WINDOW = 8  # chunks between two looks at how well the helper overlaps
OVERLAP = 1.1  # cores the two threads must get together for the helper to pay (its
# hand-offs cost ~10 % more CPU: below this the caller alone goes as fast, for less)
PROBE = 4  # windows hashed on the caller's thread before the helper is tried again
AHEAD = 2  # hashes queued at once: the caller may run two chunks ahead of the helper


class HashingSink:
    """Write each chunk on the caller's thread and hash it on a helper thread while that
    helper really runs in parallel (see the module docstring), else on the caller's."""

    def __init__(self, fd: int, digest: hashlib._Hash | None = None, size: int = 0) -> None:
        self.fd = fd
        self.digest = digest if digest is not None else hashlib.sha256()
        self.size = size
        self._hasher = ThreadPoolExecutor(max_workers=1)
        self._pending: deque[Future[None]] = deque()
        # start on the caller's thread (a small file never starts a helper), then try it
        self._inline = True
        self._chunks = 0
        self._windows_inline = PROBE - 1
        self._helper_cpu = 0.0  # CPU time of the helper's hashing so far (it alone writes it)
        self._mark = (time.perf_counter(), time.thread_time(), 0.0)

    def wait(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` hashes are still queued."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def _hash(self, data: memoryview) -> None:
        """On the helper thread: hash ``data`` and count the CPU time it took."""
        started = time.thread_time()
        self.digest.update(data)
        self._helper_cpu += time.thread_time() - started

    def submit(self, data: memoryview) -> None:
        """Write ``data``, then hash it or queue its hash; the caller must not reuse its
        buffer until :data:`AHEAD` more submits or a wait (``AHEAD + 1`` buffers in turn
        are enough)."""
        write_all(self.fd, data)  # meanwhile earlier chunks are being hashed
        self.size += len(data)
        if self._inline:
            self.wait()
            self.digest.update(data)
        else:
            self.wait(keep=AHEAD - 1)  # the oldest buffer is free again
            self._pending.append(self._hasher.submit(self._hash, data))
        self._chunks += 1
        if self._chunks % WINDOW == 0:
            self._choose()

    def _choose(self) -> None:
        """Hash on the helper for the next window, or on the caller's thread."""
        wall0, cpu0, helper0 = self._mark
        wall, cpu, helper = time.perf_counter(), time.thread_time(), self._helper_cpu
        self._mark = (wall, cpu, helper)  # a hash still in flight counts in the next window
        if self._inline:
            self._windows_inline += 1
            self._inline = self._windows_inline < PROBE  # then a core may be free again
        else:
            cores = (cpu - cpu0 + helper - helper0) / max(wall - wall0, 1e-9)
            self._inline = cores < OVERLAP
            self._windows_inline = 0

    def finish(self) -> tuple[int, str]:
        try:
            self.wait()
        finally:
            self._hasher.shutdown(wait=True)
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
    """Copy a stream to ``fd`` in 1 MiB blocks with inline sha256 (``AHEAD + 1`` buffers).

    ``sink`` continues an earlier hash (a resumed file); with ``limit`` the copy
    stops after that many bytes in total and one more byte is read to tell a
    stream that is longer than announced (its size is then ``limit + 1``).
    """
    sink = sink or HashingSink(fd)
    buffers = [memoryview(bytearray(CHUNK)) for _ in range(AHEAD + 1)]
    turn = 0
    try:
        while True:
            view = buffers[turn]
            if limit is not None:
                view = view[: max(1, min(len(view), limit - sink.size + 1))]
            got = _fill(recv_into, view)
            if not got:
                break
            sink.submit(view[:got])  # frees the buffer of AHEAD turns ago
            if progress is not None:
                progress(got)
            turn = (turn + 1) % len(buffers)
            if limit is not None and sink.size > limit:
                break
    finally:
        size, digest = sink.finish()
    return size, digest
