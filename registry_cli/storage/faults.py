"""Faults of the machine (see docs/operations.md): the disk says no, and the user must fix it.

No space or quota (ENOSPC, EDQUOT), a read-only filesystem (EROFS), permission
denied (EACCES, EPERM), too many open files (EMFILE, ENFILE) and locks that do
not work (ENOLCK) are not bugs: they become a :class:`MachineFault` (exit 2)
with one line naming the operation, the user's path (the root, the source file,
the cache; never an internal ``.regctl/tmp/...`` path), what was needed and
what to do.

Callers use it three ways::

    check_free_space(root, needed, "publish", "big.pt", what="payload + bundle")
    with translated("publish big.pt", root):
        ...                                   # any OSError above becomes a MachineFault
    fault = translate(exc, "publish", root)   # None when exc is not a machine fault

Only the standard library and :mod:`registry_cli.errors` are imported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from registry_cli.errors import MachineFault

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS})
DENIED = frozenset({errno.EACCES, errno.EPERM})
TOO_MANY_FILES = frozenset({errno.EMFILE, errno.ENFILE})
NO_LOCKS = frozenset({errno.ENOLCK})
FAULT_ERRNOS = NO_SPACE | READ_ONLY | DENIED | TOO_MANY_FILES | NO_LOCKS

PathLike = str | os.PathLike[str]


def is_fault(exc: BaseException) -> bool:
    """True for an OSError this module turns into a :class:`MachineFault`."""
    # an SSLError's errno is an OpenSSL code (1 = SSL_ERROR_SSL), not an OS errno
    ssl = sys.modules.get("ssl")  # an SSLError exists only once ssl is loaded: no import here
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return False
    return isinstance(exc, OSError) and exc.errno in FAULT_ERRNOS


def human_size(n: int) -> str:
    """Decimal units, rounded up to one significant step: 60 MB, 1.2 GB, 11 kB."""
    value = float(max(n, 0))
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (statvfs needs one that exists)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: PathLike) -> int:
    """Bytes this process may still write on the filesystem holding ``path``."""
    st = os.statvfs(_existing(Path(path)))
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may use the reserve
    return blocks * st.f_frsize


def bytes_in(paths: Iterable[PathLike]) -> int:
    """Total size of the regular files in ``paths`` (files or folders, walked)."""
    total = 0
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue  # the caller's own checks report a missing source
        if os.path.isdir(p):
            for top, _dirs, files in os.walk(p):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(top, f)).st_size
        else:
            total += st.st_size
    return total


def check_free_space(
    path: PathLike,
    needed_bytes: int,
    operation: str,
    subject: str | None = None,
    *,
    what: str | None = None,
) -> None:
    """Refuse early when the filesystem of ``path`` has less than ``needed_bytes`` free.

    ``error: not enough space in /mnt/reg to publish big.pt: needs ~60 MB
    (payload + bundle), 11 MB free``. A filesystem that cannot be asked
    (statvfs fails) is not refused here: the write itself will tell.
    """
    try:
        free = free_bytes(path)
    except OSError:
        return
    if needed_bytes <= free:
        return
    doing = f"{operation} {subject}" if subject else operation
    need = f"needs ~{human_size(needed_bytes)}" + (f" ({what})" if what else "")
    raise MachineFault(
        f"not enough space in {path} to {doing}: {need}, {human_size(free)} free",
        hint=f"free up space on the filesystem of {path}, or use another location",
        errno=errno.ENOSPC,
    )


def user_path(filename: PathLike | None, roots: Iterable[PathLike] = ()) -> Path | None:
    """The path to name to the user for a fault on ``filename``.

    A path inside one of ``roots`` (the registry root, the cache) is that root;
    any other path is cut before its first hidden or ``*.incomplete`` component,
    so an internal scratch path never reaches the user.
    """
    if filename is None:
        return None
    path = Path(os.fsdecode(filename)).absolute()
    for root in roots:
        base = Path(root).absolute()
        if path == base or base in path.parents:
            return base
    parts = path.parts
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith(".") or part.endswith(".incomplete"):
            return Path(*parts[:i])
    return path


def _fd_limit(code: int | None) -> str:
    if code == errno.ENFILE:
        return "the system's limit"
    try:
        import resource

        return f"limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} per process"
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return "the per-process limit"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - not POSIX, or no passwd entry
        return str(os.geteuid())


def translate(
    exc: BaseException,
    operation: str,
    path: PathLike | None = None,
    *,
    roots: Iterable[PathLike] = (),
) -> MachineFault | None:
    """The :class:`MachineFault` for ``exc``, or None when it is not a machine fault.

    ``path`` is the user's path for this operation (the root, the cache); the
    file the OS names is shown instead only when it lies outside ``path`` and
    ``roots`` (a source file, say).
    """
    if not is_fault(exc):
        return None
    assert isinstance(exc, OSError)
    bases = ([path] if path is not None else []) + list(roots)
    where = user_path(exc.filename, bases) or (Path(path) if path is not None else None)
    at = f" {where}" if where is not None else ""
    code = exc.errno
    if code in NO_SPACE:
        kind = "the disk quota ran out" if code == errno.EDQUOT else "the filesystem ran out"
        free = ""
        if where is not None:
            with contextlib.suppress(OSError):
                free = f" ({human_size(free_bytes(where))} free now)"
        inside = f" in {where}" if where is not None else ""
        message = f"not enough space{inside} to {operation}: {kind}{free}"
        hint = f"free up space on the filesystem of{at or ' the target'}, or use another location"
    elif code in READ_ONLY:
        what = f"{where} is on" if where is not None else "the target is on"
        message = f"cannot {operation}: {what} a read-only filesystem (needs write access)"
        hint = "remount it read-write, or point --root / --cache-dir at a writable place"
    elif code in DENIED:
        user = _user()
        on = f" on {where}" if where is not None else ""
        message = f"cannot {operation}: permission denied{on} for user {user}"
        hint = f"give {user} access to{at or ' it'} (chown/chmod), or run as a user who has it"
    elif code in TOO_MANY_FILES:
        message = f"cannot {operation}: too many open files ({_fd_limit(code)})"
        hint = "raise the limit (ulimit -n) or close other programs, then retry"
    else:  # NO_LOCKS
        message = f"cannot {operation}: file locks do not work on the filesystem of{at}"
        hint = "put the registry root on a local filesystem (check with: regctl doctor)"
    return MachineFault(message, hint=hint, errno=code)


@contextlib.contextmanager
def translated(
    operation: str, path: PathLike | None = None, *, roots: Iterable[PathLike] = ()
) -> Iterator[None]:
    """Turn a machine fault raised inside the block into a :class:`MachineFault`."""
    try:
        yield
    except OSError as exc:
        fault = translate(exc, operation, path, roots=roots)
        if fault is None:
            raise
        raise fault from exc


def http_status(exc: BaseException) -> int | None:
    """The reply a server gives for a machine fault (see docs/operations.md): 507 Insufficient
    Storage for no space or quota, 503 Service Unavailable for the rest; None when
    ``exc`` is not a machine fault. The server logs the fault and keeps running."""
    if not is_fault(exc):
        return None
    return 507 if getattr(exc, "errno", None) in NO_SPACE else 503


def ftp_reply(exc: BaseException) -> str | None:
    """The FTP reply code for a machine fault: 452 (insufficient storage) for no space
    or quota, 550 (not available) for the rest; None when not a machine fault."""
    if not is_fault(exc):
        return None
    return "452" if getattr(exc, "errno", None) in NO_SPACE else "550"
