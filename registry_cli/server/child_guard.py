"""Run ``regctl ARGS...`` as a child that dies with the process that started it, even
when that process is killed by SIGKILL (see docs/operations.md, "FTP children").

    python -m registry_cli.server.child_guard --root ROOT serve-ftp ...

with ``$REGCTL_PARENT_PID`` (the parent's pid) and ``$REGCTL_PARENT_FD`` (the read end
of a pipe whose write end only the parent holds) in the environment. Two guards, so
that either one is enough:

- on Linux, the parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``): the kernel
  sends SIGTERM when the thread that started the child ends; the parent starts its
  children from one long-lived thread for that reason;
- everywhere, a thread reads the pipe: when the parent dies the kernel closes the
  write end and the read returns end-of-file.

Either way the child gets SIGTERM (``serve-ftp`` closes its connections and exits),
and is forced out ``GRACE_S`` seconds later if it is still there. Standard library
only; the command itself runs through ``runpy`` as ``python -m registry_cli`` would.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import sys
import threading
import time

PID_VAR = "REGCTL_PARENT_PID"
FD_VAR = "REGCTL_PARENT_FD"
GRACE_S = 5.0
PR_SET_PDEATHSIG = 1


def _die() -> None:
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os._exit(1)  # the graceful stop did not finish in time


def set_parent_death_signal() -> bool:
    """Ask the kernel for SIGTERM when the parent goes (Linux only); True if it took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def watch_pipe(fd: int) -> threading.Thread:
    """A daemon thread that stops this process once ``fd`` reads end-of-file."""

    def watch() -> None:
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass
        _die()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def guard() -> None:
    parent = os.environ.pop(PID_VAR, "")
    fd = os.environ.pop(FD_VAR, "")
    set_parent_death_signal()
    if parent.isdigit() and os.getppid() != int(parent):
        os._exit(1)  # the parent died before the guard was in place
    if fd.isdigit():
        watch_pipe(int(fd))


def main() -> None:
    guard()
    sys.argv = ["regctl", *sys.argv[1:]]
    runpy.run_module("registry_cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
