"""Writer locks. They serialise writers; renames are what make crashes harmless.

On POSIX the lock is ``fcntl.flock`` on a lock file: the kernel drops it when
its holder dies, so a SIGKILLed writer never leaves a stale lock behind. (We
call flock directly rather than through ``filelock``, whose import costs
~20 ms on every CLI command; ``filelock`` is the fallback where ``fcntl`` does
not exist.) On filesystems where flock is a no-op the rename rules still keep
versions from clobbering each other.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from registry_cli.errors import RegctlError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

DEFAULT_TIMEOUT = 300.0


def default_timeout() -> float:
    """Seconds a writer waits for a lock: $REGCTL_LOCK_TIMEOUT, read when a lock is taken."""
    try:
        return float(os.environ.get("REGCTL_LOCK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def _timeout_error(what: str) -> RegctlError:
    return RegctlError(
        f"timed out waiting for the lock on {what}",
        hint="another regctl writer holds it; retry, or raise REGCTL_LOCK_TIMEOUT",
    )


@contextlib.contextmanager
def hold(path: Path, *, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    limit = default_timeout() if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not POSIX
        from filelock import FileLock, Timeout

        lock = FileLock(str(path), timeout=limit)
        try:
            lock.acquire()
        except Timeout:
            raise _timeout_error(what) from None
        try:
            yield
        finally:
            lock.release()
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + limit
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _timeout_error(what) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_held(path: Path) -> bool:
    """True if some live process holds the lock at ``path`` (used by gc)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return False
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
