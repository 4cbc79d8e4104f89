"""Atomic file replacement and read-only trees.

A state file is never rewritten in place: the new content goes to a unique
temporary file in the same folder, is fsynced, and ``os.replace`` swaps it in,
so a reader sees the old or the new file and a crash leaves one of the two.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import time
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (best effort on odd filesystems)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ``.NAME.TAG-PID-HEX8``: what :func:`temp_sibling` (and a served-tree folder copy) names
TEMP_SIBLING_RE = re.compile(r"\A\..+\.[a-z]+-(?P<pid>\d+)-[0-9a-f]{8}\Z")


def is_temp_sibling(entry: str) -> bool:
    """True for the temporary name of a write not yet renamed into place."""
    return TEMP_SIBLING_RE.match(entry) is not None


def temp_sibling_abandoned(path: Path, min_age_s: float = 3600.0) -> bool:
    """A temporary sibling whose writer is gone: its process no longer runs on this
    machine and it is older than ``min_age_s`` (another machine sharing the folder may
    still be writing a younger one)."""
    found = TEMP_SIBLING_RE.match(path.name)
    if found is None:
        return False
    try:
        age = time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return False
    return not process_running(int(found.group("pid"))) and age >= min_age_s


def process_running(pid: int) -> bool:
    """True if a process with this pid runs on this machine (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """A unique name beside ``path`` (same folder, so same filesystem for rename)."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_durable(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (a document of a version being staged)."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def make_read_only(root: Path) -> None:
    """Drop write bits on every file and folder below ``root`` (``root`` included)."""
    # bottom-up, so a folder is still writable while its entries are changed
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) & ~0o222)
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) & ~0o222)


def _make_writable_and_retry(func, path, _exc) -> None:  # type: ignore[no-untyped-def]
    parent = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.chmod(parent, 0o755)
    with contextlib.suppress(OSError):
        if not os.path.islink(path):
            os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    func(path)


def remove_tree(path: Path) -> None:
    """Remove a folder even when parts of it are read-only; a missing folder is fine."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o755)
        try:
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=_make_writable_and_retry)
            else:
                shutil.rmtree(path, onerror=_make_writable_and_retry)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            _remove_by_path(str(path))  # rmtree holds a descriptor per level
    else:
        os.unlink(path)


def _remove_by_path(top: str) -> None:
    """Remove a tree holding at most one descriptor at a time (the process is out of them)."""
    for name in os.listdir(top):
        full = os.path.join(top, name)
        if os.path.isdir(full) and not os.path.islink(full):
            with contextlib.suppress(OSError):
                os.chmod(full, 0o755)
            _remove_by_path(full)
        else:
            os.unlink(full)
    os.rmdir(top)
