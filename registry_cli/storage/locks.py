"""Writer locks. They serialise writers; renames are what make crashes harmless.

``filelock`` uses ``fcntl.flock``: the kernel drops the lock when its holder
dies, so a SIGKILLed writer never leaves a stale lock behind. On filesystems
where flock is a no-op the rename rules still keep versions from clobbering
each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from registry_cli.errors import RegctlError

DEFAULT_TIMEOUT = float(os.environ.get("REGCTL_LOCK_TIMEOUT", "300"))


@contextlib.contextmanager
def hold(path: Path, *, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                    thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise RegctlError(
            f"timed out waiting for the lock on {what}",
            hint="another regctl writer holds it; retry, or raise REGCTL_LOCK_TIMEOUT",
        ) from None
    try:
        yield
    finally:
        lock.release()


def is_held(path: Path) -> bool:
    """True if some live process holds the lock at ``path`` (used by gc)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
