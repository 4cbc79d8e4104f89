"""The threads of publishing's one pass over a payload file (:class:`Pump`).

A file new to the root is copied into its temporary blob by the kernel
(``copy_file_range``, as GNU ``cp`` does, no bytes through user space) and the
bytes WRITTEN are hashed, mapped read-only from the blob chunk by chunk as each
is copied: the hasher thread computes the file's sha256 and CRC-32, the bundler
thread frames the same memory into the bundle and hashes that
(:class:`~registry_cli.storage.bundle.BundleWriter`, whose CRC is combined from
the file's, see :mod:`registry_cli.storage.crc`). Where the kernel cannot copy
between the two files, each chunk is read into a buffer and written instead.
A file read without being written (it may be a blob already) is read into
buffers: a mapping of a file someone else truncates would kill the process. A
file published again unchanged is read from its blob (ours, never truncated),
mapped. ``hashlib``, ``zlib`` and the copies release the GIL, so on two cores a
publish of new bytes costs about its three hashes shared out over both cores.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import mmap
import os
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from registry_cli.errors import BadInput
from registry_cli.storage.bundle import IN_FLIGHT, BundleWriter
from registry_cli.storage.hashing import CHUNK, Progress
from registry_cli.storage.payload import PlannedFile
from registry_cli.storage.streams import write_all

KERNEL_CHUNK = 4 << 20  # bytes per copy_file_range call: fewer hand-overs to threads
KERNEL_COPY = [hasattr(os, "copy_file_range")]  # False once the kernel lacks it
# the kernel or filesystem cannot copy these files: read and write instead
NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


MAPPED = hasattr(mmap, "MAP_SHARED")  # POSIX mmap flags (Windows: buffers only)
MAP_FLAGS = getattr(mmap, "MAP_SHARED", 0) | getattr(mmap, "MAP_POPULATE", 0)


def _crc32_function() -> Callable[[memoryview, int], int]:
    """ISA-L's CRC-32 where the optional ``isal`` package is installed (the ``fast``
    extra: ~3x zlib 1.2's, with the same values), else zlib's."""
    try:
        return importlib.import_module("isal.isal_zlib").crc32  # type: ignore[no-any-return]
    except ImportError:
        return zlib.crc32


crc32 = _crc32_function()


class _NoKernelCopy(Exception):
    pass


class Pump:
    """Streams one file: copied (or read) once, then hashed and framed into the bundle
    on two threads, ``IN_FLIGHT`` chunks at a time. The bundle is fed the file in
    ``KERNEL_CHUNK`` or ``CHUNK`` pieces from its start (its stored blocks do not
    depend on those pieces)."""

    def __init__(
        self, hasher: ThreadPoolExecutor, bundler: ThreadPoolExecutor, bundle: BundleWriter
    ) -> None:
        self.hasher = hasher
        self.bundler = bundler
        self.bundle = bundle
        self.buffers = [bytearray(CHUNK) for _ in range(IN_FLIGHT)]
        self.turn = 0

    def run(
        self,
        item: PlannedFile,
        src: Path,
        out: Path | None,
        *,
        feed: bool,
        fsync: bool,
        progress: Progress | None,
        known: str | None = None,
        known_crc: int | None = None,
        stable: bool = False,
    ) -> tuple[str, int | None]:
        """Read ``src`` (copying it to the new file ``out`` when given); its sha256
        (``known``, not hashed again, when the caller hashed it already) and, when
        it is ``feed`` to the bundle, its CRC-32. The CRC is computed on the hasher
        thread, not the bundler's: :meth:`BundleWriter.end_file` combines it in.
        ``stable``: ``src`` is a blob (read-only, never truncated), so it is mapped."""
        digest = hashlib.sha256()
        crc = [0 if known_crc is None else known_crc]
        want_crc = feed and known_crc is None

        def hash_chunk(view: memoryview) -> None:
            if not known:
                digest.update(view)
            if want_crc:
                crc[0] = crc32(view, crc[0])

        job = hash_chunk if want_crc or not known else None
        size = -1
        if out is None and stable and item.size > 0 and MAPPED:
            fd = os.open(src, os.O_RDONLY)
            try:
                size = self._mapped_chunks(item, fd, -1, feed, False, progress, job)
            finally:
                os.close(fd)
        elif out is not None and item.size > 0 and KERNEL_COPY[0] and MAPPED:
            size = self._copy_in_kernel(item, src, out, feed, fsync, progress, job)
        if size < 0:
            size = self._copy_in_user_space(item, src, out, feed, fsync, progress, job)
        if size != item.size:
            raise BadInput(
                f"{item.source} changed size while being published",
                hint="publish a file that is no longer being written",
            )
        return known or digest.hexdigest(), crc[0] if feed else None

    def _copy_in_kernel(
        self,
        item: PlannedFile,
        src: Path,
        out: Path,
        feed: bool,
        fsync: bool,
        progress: Progress | None,
        hash_chunk: Callable[[memoryview], None] | None,
    ) -> int:
        """Copy with ``copy_file_range`` (no bytes through user space, as ``cp`` does)
        and hash the bytes WRITTEN, mapped read-only from ``out`` chunk by chunk as
        each is copied. The bytes read (a source may be ``item.size`` or not); -1
        with ``out`` not created where the kernel cannot copy between these files."""
        fd_in = os.open(src, os.O_RDONLY)
        try:
            fd_out = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                return self._mapped_chunks(item, fd_in, fd_out, feed, fsync, progress, hash_chunk)
            except _NoKernelCopy:
                os.close(fd_out)
                fd_out = -1
                os.unlink(out)
                return -1
            finally:
                if fd_out >= 0:
                    os.close(fd_out)
        finally:
            os.close(fd_in)

    def _mapped_chunks(
        self,
        item: PlannedFile,
        fd_in: int,
        fd_out: int,
        feed: bool,
        fsync: bool,
        progress: Progress | None,
        hash_chunk: Callable[[memoryview], None] | None,
    ) -> int:
        """Hand the threads ``fd_in``'s bytes mapped, ``KERNEL_CHUNK`` at a time: those
        of ``fd_out`` after copying each chunk there when it is given (>= 0)."""
        pending: deque[list[Future[None]]] = deque()
        fd_map = fd_in if fd_out < 0 else fd_out
        pos = 0
        try:
            while pos < item.size:
                if len(pending) == IN_FLIGHT:
                    for fut in pending.popleft():
                        fut.result()
                want = min(KERNEL_CHUNK, item.size - pos)
                got = 0 if fd_out >= 0 else max(0, min(want, os.fstat(fd_in).st_size - pos))
                while got < want:
                    try:
                        n = os.copy_file_range(fd_in, fd_out, want - got, pos + got, pos + got)
                    except OSError as exc:
                        if pos + got == 0 and exc.errno in NO_KERNEL_COPY:
                            if exc.errno == errno.ENOSYS:  # not on this system at all
                                KERNEL_COPY[0] = False
                            raise _NoKernelCopy from exc  # these files: read and write
                        raise
                    if n == 0:
                        if pos + got == 0:  # some filesystems copy nothing: read instead
                            raise _NoKernelCopy
                        break
                    got += n
                if got == 0:
                    break
                # the mapping lives while a thread holds a view of it (unmapped after);
                # its pages are mapped here, not by the hashing threads' page faults
                view = memoryview(
                    mmap.mmap(fd_map, got, flags=MAP_FLAGS, prot=mmap.PROT_READ, offset=pos)
                )
                jobs = [] if hash_chunk is None else [self.hasher.submit(hash_chunk, view)]
                if feed:
                    jobs.append(self.bundler.submit(self.bundle.feed, view, crc=False))
                pending.append(jobs)
                del view
                pos += got
                if progress is not None:
                    progress(got)
                if got < want:
                    break
            if pos == item.size and os.pread(fd_in, 1, pos):
                pos += 1  # grew after planning: refused by the caller
            if fsync and fd_out >= 0:
                os.fsync(fd_out)
        finally:
            while pending:
                for fut in pending.popleft():
                    fut.result()
        return pos

    def _copy_in_user_space(
        self,
        item: PlannedFile,
        src: Path,
        out: Path | None,
        feed: bool,
        fsync: bool,
        progress: Progress | None,
        hash_chunk: Callable[[memoryview], None] | None,
    ) -> int:
        """Read each chunk into a buffer, hand it to the threads, write it to ``out``
        (when given): the bytes read."""
        size = 0
        pending: deque[list[Future[None]]] = deque()
        fd_in = os.open(src, os.O_RDONLY)
        try:
            fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644) if out else -1
            try:
                while True:
                    if len(pending) == IN_FLIGHT:
                        for fut in pending.popleft():
                            fut.result()
                    buf = self.buffers[self.turn]
                    self.turn = (self.turn + 1) % IN_FLIGHT
                    n = os.readv(fd_in, [buf])
                    if n == 0:
                        break
                    size += n
                    if size > item.size:
                        break
                    view = memoryview(buf)[:n]
                    jobs = [] if hash_chunk is None else [self.hasher.submit(hash_chunk, view)]
                    if feed:
                        jobs.append(self.bundler.submit(self.bundle.feed, view, crc=False))
                    pending.append(jobs)
                    if fd_out >= 0:
                        write_all(fd_out, view)
                    if progress is not None:
                        progress(n)
                if fsync and fd_out >= 0:
                    os.fsync(fd_out)
            finally:
                if fd_out >= 0:
                    os.close(fd_out)
                while pending:
                    for fut in pending.popleft():
                        fut.result()
        finally:
            os.close(fd_in)
        return size
