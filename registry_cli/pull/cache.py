"""Where pulled versions live, and the few operations that change the cache.

Cache layout (one folder per source, stage, model and version)::

    <cache>/regctl/
      blobs/sha256/xx/<sha256>    each verified file once (pull/blobs.py); payload
                                  files below are hard links of these
      <source-key>/               "<host>_<port>" for ftp:// and ftps://,
                                  "local_<16 hex of sha256(real path)>" for --from PATH
        <stage>/<name>/           <name> may be nested: team/project/task
          vN/                     complete and verified; never changed afterwards
            manifest.json
            payload/...           read-only files
            .regctl-pull.json     source, bundle sha256/size, time of the pull
          .vN.<pid>-<rand>.incomplete   a download in progress
          .vN.<pid>-<rand>.unpack/      an unpack in progress
      .locks/                     best-effort per-version locks

``<cache>`` is ``--cache-dir``, else ``$REGCTL_CACHE_DIR``, else ``pull.cache_dir``
in the config, else the torch hub folder: ``$TORCH_HOME/hub``, else
``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub`` (computed without
importing torch).

A version folder appears only by ``rename`` of a complete, verified folder
(:func:`install`); the first of two concurrent installs wins and the other
uses it. Nothing is fsynced: after a power loss a cached version may be
damaged; :func:`read_cached` checks file sizes on every hit, so a damaged copy
is downloaded again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from registry_cli.core.documents import validate_manifest
from registry_cli.core.names import format_version
from registry_cli.errors import RegctlError
from registry_cli.settings import PULL
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.cache_root import default_cache_root
from registry_cli.storage.locks import hold

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

MARKER = ".regctl-pull.json"


def resolve_cache_root(
    explicit: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """``--cache-dir``, else ``$REGCTL_CACHE_DIR``, else ``pull.cache_dir``, else the
    torch hub dir."""
    flag = os.fspath(explicit) if explicit else None
    chosen = PULL.resolve({"cache_dir": flag}, config, env)["cache_dir"]
    return Path(chosen).absolute() if chosen else default_cache_root().absolute()


def read_cached(vdir: Path, name: str, version: int) -> tuple[dict, dict] | None:
    """``(marker, manifest)`` of an intact cached version, else None (cheap: stats only)."""
    try:
        marker = json.loads((vdir / MARKER).read_bytes())
        with open(vdir / "manifest.json", "rb") as fh:
            manifest = validate_manifest(json.load(fh), str(vdir / "manifest.json"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(marker, dict)
        or manifest["name"] != name
        or manifest["version"] != format_version(version)
    ):
        return None
    for f in manifest["files"]:
        try:
            st = os.lstat(vdir / f["path"])
        except OSError:
            return None
        if (
            not os.path.isfile(vdir / f["path"])
            or os.path.islink(vdir / f["path"])
            or st.st_size != f["size"]
        ):
            return None
    return marker, manifest


def pull_marker(
    name: str, stage: str, vname: str, sha256: str, size: int, source: str
) -> dict[str, Any]:
    """The ``.regctl-pull.json`` of a version: where and when it came from, and the
    bundle's sha256 and size (what ``pull --json`` reports)."""
    return {
        "format_version": 1,
        "kind": "regctl/pull",
        "name": name,
        "stage": stage,
        "version": vname,
        "sha256": sha256,
        "size": size,
        "source": source,
        "pulled_at": _dt.datetime.now(_dt.timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
    }


def read_only_files(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            os.chmod(os.path.join(dirpath, fname), 0o444)


def install(tmp: Path, target: Path, intact: Callable[[], bool]) -> bool:
    """Rename ``tmp`` to ``target``. False if an intact ``target`` was there first."""
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
    if intact():
        return False  # a concurrent pull installed it first: use theirs
    aside = target.with_name(f".{target.name}.broken-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(target, aside)  # a damaged or stale copy: replace it
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not intact():
            raise
        return False
    finally:
        remove_tree(aside)


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while empty, never ``stop`` or above."""
    stop = stop.absolute()
    path = path.absolute()
    while path != stop and stop in path.parents:
        try:
            os.rmdir(path)
        except OSError:
            return
        path = path.parent


@contextlib.contextmanager
def best_effort_lock(lock_dir: Path, key: str, timeout: float) -> Iterator[None]:
    """Hold ``lock_dir/<key>.lock`` where file locks work; go on without them elsewhere
    (or after ``timeout``). ``flock`` directly, as the registry's writer locks: importing
    ``filelock`` cost each pull ~25 ms of CPU, as much as hashing 30 MiB."""
    with contextlib.ExitStack() as stack:
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(hold(lock_dir / f"{key}.lock", what="pull", timeout=timeout))
        except (OSError, RegctlError):
            pass  # no working locks here (some network filesystems), or a stuck holder
        yield


# -- in use: a shared flock on the version's marker ----------------------------------
_HELD: dict[str, int] = {}  # version folder -> the fd holding its shared lock
_HELD_LOCK = threading.Lock()


def hold_version(vdir: Path) -> bool:
    """Mark ``vdir`` in use by this process until it exits (or :func:`release_version`):
    a shared ``flock`` on its ``.regctl-pull.json``, which ``cache prune`` must get
    exclusively before it removes the version. Also stamps the marker's mtime (the last
    use, what ``--max-size`` removes the oldest of). False when the folder went away
    meanwhile (pruned); True where locks do not work (best effort, as the pull locks)."""
    key = str(vdir)
    with _HELD_LOCK:
        if key in _HELD:
            return True
        try:
            fd = os.open(vdir / MARKER, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_ino != os.stat(vdir / MARKER).st_ino:
                os.close(fd)
                return False  # removed (or replaced) while we waited for the lock
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                os.close(fd)
                return False
        with contextlib.suppress(OSError):
            os.utime(vdir / MARKER)
        _HELD[key] = fd
        return True


def release_version(vdir: Path) -> None:
    """This process no longer uses ``vdir`` (see :func:`hold_version`)."""
    with _HELD_LOCK:
        fd = _HELD.pop(str(vdir), None)
    if fd is not None:
        os.close(fd)


def take_version(vdir: Path) -> int | None:
    """An exclusive lock on ``vdir``'s marker when no process holds the version (its fd,
    the caller closes it), else None."""
    try:
        fd = os.open(vdir / MARKER, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if fcntl is None:  # pragma: no cover - not POSIX
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        pass  # no working locks on this filesystem: nothing can tell the version in use
    return fd
