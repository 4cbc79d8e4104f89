"""Keeping a long-running server's memory flat on glibc (see docs/operations.md, "Memory").

A server answers reads on the event loop and runs publishes, state reads and served-tree
syncs on worker threads. glibc's malloc gives each thread that allocates at once an
arena of its own (up to eight per core), and a freed block returns to the system only
from the top of its arena: a publish that builds a large document on one thread leaves
holes that later, differently-sized requests on other threads do not fill. The Python
heap stays flat while the process's RSS creeps up with every version published.

Two glibc calls, both through ``ctypes`` and only where glibc is the C library:

- :func:`cap_arenas` sets ``M_ARENA_MAX`` (two arenas unless ``$MALLOC_ARENA_MAX`` says
  otherwise: then glibc has already applied the user's value and it is left alone);
- :class:`Trimmer` calls ``malloc_trim(0)`` on a daemon thread every ``interval_s``
  seconds, which hands the free pages of every arena back to the system (``ctypes``
  drops the GIL for the call; requests go on meanwhile).

Elsewhere (musl, macOS, Windows) both do nothing and say so by returning False.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
DEFAULT_ARENAS = 2
TRIM_INTERVAL_S = 10.0


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
            return None  # not glibc (musl has neither)
        return libc
    except OSError:
        return None


def cap_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Limit malloc to ``arenas`` arenas from now on; True if glibc took the setting."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the user's own setting, applied by glibc at start-up
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Return free heap pages to the system now; True if any were returned."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


class Trimmer:
    """Calls :func:`trim` every ``interval_s`` seconds on a daemon thread. A trim costs
    a few milliseconds off the event loop; pages a read needs again are faulted back in
    (reads reuse the same few blocks, so that is little)."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the thread; False (and no thread) where there is no glibc."""
        if _libc() is None:
            return False
        self._thread = threading.Thread(target=self._run, name="regctl-trim", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            trim()
            self.trims += 1
