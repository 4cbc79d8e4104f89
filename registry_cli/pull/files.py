"""Pull a version file by file: one write per byte, resumable, a few files at once.

Used when the served tree records ``manifest_sha256`` (see docs/pull.md) and ``--bundle``
is not asked for:

1. fetch ``versions/vN/manifest.json``, check it against ``manifest_sha256``
   and check every listed path (under ``payload/``, no ``..``);
2. link each file whose sha256 the cache's blobs hold (hashed first, see
   :mod:`registry_cli.pull.blobs`; no transfer); the served tree's ``"blobs"`` key
   says where the others are (:meth:`RemoteVersion.file_path`);
3. download each other payload file once, hashing it as it arrives, straight into a
   hidden work folder beside the target; up to :data:`PARALLEL_FILES` files
   at once, each on its own session (:meth:`Transport.fork`);
4. check each file's size and sha256 against the manifest, then rename it
   from ``*.incomplete`` to its name; the caller renames the finished folder
   to ``vN``.

Work folders (in ``<cache>/regctl/<source>/<stage>/<name>/``)::

    .vN.<key>.partial                      parked: the next run resumes it
    .vN.<key>.<host>-<pid>-<rand>.active   in use by that process

``<key>`` is the manifest's sha256[:16], or ``bundle-<bundle sha256[:16]>`` for
a bundle download (the bundle path resumes the same way).

A run adopts a parked folder, or the active folder of a dead process on this
host, by renaming it to its own name (rename is atomic: one run wins), so two
runs never write into one folder and correctness never depends on a lock. A
file's ``*.incomplete`` prefix is re-hashed and the transfer continues from
its end (FTP ``REST``, HTTP ``Range`` + ``If-Range``: the validator of the reply
that started the file is kept beside it in ``*.incomplete-etag``, written before
the first body byte, so a later process resumes with it); a resumed file that
does not match is downloaded once more from zero. A transfer cut short parks
the folder (exit 6); a file or manifest that arrives in full but does not
match is exit 5 and the folder is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import socket
import threading
import uuid
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from registry_cli.errors import IntegrityError, RemoteError
from registry_cli.pull.blobs import BlobCache, copy_verified
from registry_cli.pull.remote import SMALL_LIMIT, RemoteVersion, check_manifest_bytes
from registry_cli.pull.transports import Transport
from registry_cli.storage.hashing import CHUNK, Progress
from registry_cli.storage.layout import inside

PARALLEL_FILES = 4
HOST = socket.gethostname().replace(".", "_").replace("/", "_") or "host"


class TransportPool:
    """Hands out sessions to worker threads: the first one, then forks up to ``limit``.

    A server that refuses more connections (``max_cons_per_ip``) just means
    fewer files at once.
    """

    def __init__(self, first: Transport, limit: int) -> None:
        self._idle: queue.Queue[Transport] = queue.Queue()
        self._idle.put(first)
        self._first = first
        self._forked: list[Transport] = []
        self._limit = limit
        self._lock = threading.Lock()

    def acquire(self) -> Transport:
        with contextlib.suppress(queue.Empty):
            return self._idle.get_nowait()
        with self._lock:
            can_fork = 1 + len(self._forked) < self._limit
            if can_fork:
                try:
                    session = self._first.fork()
                except RemoteError:
                    self._limit = 1 + len(self._forked)
                else:
                    self._forked.append(session)
                    return session
        return self._idle.get()

    def release(self, session: Transport) -> None:
        self._idle.put(session)

    def close_forked(self) -> None:
        for session in self._forked:
            if session is not self._first:
                session.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def work_key(remote: RemoteVersion, bundle: bool) -> str:
    """What a work folder holds: this manifest's files, or this bundle."""
    if bundle or remote.manifest_sha256 is None:
        return f"bundle-{remote.sha256[:16]}"
    return remote.manifest_sha256[:16]


def claim_work_folder(parent: Path, vname: str, key: str) -> Path:
    """This run's own work folder: an adopted parked or orphaned one, else a new one."""
    prefix = f".{vname}.{key}"
    mine = parent / f"{prefix}.{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.active"
    candidates = [parent / f"{prefix}.partial"]
    with contextlib.suppress(OSError):
        for entry in os.listdir(parent):
            if entry.startswith(prefix + ".") and entry.endswith(".active"):
                owner = entry[len(prefix) + 1 : -len(".active")].rsplit("-", 2)
                if (
                    len(owner) == 3
                    and owner[0] == HOST
                    and owner[1].isdigit()
                    and not _pid_alive(int(owner[1]))
                ):
                    candidates.append(parent / entry)
    for candidate in candidates:
        try:
            os.rename(candidate, mine)
            return mine
        except OSError:
            continue
    mine.mkdir()
    return mine


def park_work_folder(work: Path, vname: str, key: str) -> None:
    """Leave ``work`` for the next run to resume (or as it is, if one is parked already)."""
    with contextlib.suppress(OSError):
        os.rename(work, work.parent / f".{vname}.{key}.partial")


def _hash_prefix(fd: int, length: int) -> Any:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    left = length
    while left:
        data = os.read(fd, min(CHUNK, left))
        if not data:
            break
        digest.update(data)
        left -= len(data)
    return digest


def fetch_one(
    transport: Transport,
    remote_folder: str,
    work: Path,
    entry: dict[str, Any],
    progress: Progress | None,
    recorded_in: str = "the manifest",
    remote_path: str | None = None,
) -> None:
    """Download one manifest entry (``path``, ``size``, ``sha256``) into ``work``, resuming
    its ``*.incomplete``, and verify it. ``remote_path``: where the served tree holds it
    (default ``<remote_folder>/<path>``)."""
    path, size, sha256 = entry["path"], entry["size"], entry["sha256"]
    remote_path = remote_path or f"{remote_folder}/{path}"
    target = inside(work, *path.split("/"))
    if target.is_file() and not target.is_symlink() and target.stat().st_size == size:
        if progress is not None:
            progress(size)
        return  # verified and renamed by an earlier run
    target.parent.mkdir(parents=True, exist_ok=True)
    incomplete = target.with_name(target.name + ".incomplete")
    validator_file = target.with_name(target.name + ".incomplete-etag")
    fd = os.open(incomplete, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        offset = os.fstat(fd).st_size
        offset = offset if offset <= size else 0
        prefix = _hash_prefix(fd, offset) if offset else None
        validator = None
        with contextlib.suppress(OSError):
            validator = validator_file.read_text().strip() or None
        if progress is not None and offset:
            progress(offset)
        for attempt in (1, 2):
            got = transport.download(
                remote_path,
                fd,
                progress,
                offset=offset,
                prefix=prefix,
                validator=validator,
                limit=size,
                on_validator=lambda v: keep_validator(validator_file, v),
            )
            if got.size == size and got.sha256 == sha256:
                break
            if got.offset and attempt == 1:  # the kept prefix may be stale: start over once
                offset, prefix, validator = 0, None, None
                continue
            raise IntegrityError(
                f"{path} from {transport.description}: "
                + (
                    f"got {got.size} bytes, {size} expected ({recorded_in})"
                    if got.size != size
                    else f"sha256 {got.sha256} != {sha256} recorded in {recorded_in}"
                ),
                hint="the served file is damaged or tampered with; run `regctl verify` "
                "on the server",
            )
    finally:
        os.close(fd)
    os.chmod(incomplete, 0o444)
    os.rename(incomplete, target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(validator_file)


def keep_validator(sidecar: Path, validator: str | None) -> None:
    """Keep the validator of the reply now arriving beside its ``*.incomplete`` file
    (written atomically, before the first body byte), so a resume in another process
    sends it as ``If-Range``; no validator removes a stale one."""
    if not validator or any(c in validator for c in "\r\n\0"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sidecar)
        return
    tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(validator)
    os.replace(tmp, sidecar)


def fetch_files(
    transport: Transport,
    stage: str,
    name: str,
    remote: RemoteVersion,
    work: Path,
    progress: Any = None,
    blobs: BlobCache | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Fill ``work`` with the verified payload and the manifest; ``(manifest, its bytes)``.

    Files whose sha256 ``blobs`` holds are linked from it, verified (no transfer); each
    distinct missing sha256 is downloaded once (the caller keeps them in ``blobs`` once
    the version is accepted). ``progress`` is the puller's factory (phase, total) ->
    per-chunk callback.
    """
    folder = remote.folder(stage, name)
    data = transport.read_small(f"{folder}/manifest.json", SMALL_LIMIT)
    manifest = check_manifest_bytes(data, remote, name)
    files = sorted(manifest["files"], key=lambda f: -f["size"])
    total = sum(f["size"] for f in files)
    advance = progress("download", total) if progress else None
    lock = threading.Lock()

    def counted(n: int) -> None:
        if advance is not None:
            with lock:
                advance(n)

    todo: list[dict[str, Any]] = []  # one entry per distinct sha256 still to download
    copies: list[dict[str, Any]] = []  # further paths of the same bytes
    seen: set[str] = set()
    for entry in files:
        target = inside(work, *entry["path"].split("/"))
        if target.is_file() and not target.is_symlink() and target.stat().st_size == entry["size"]:
            counted(entry["size"])  # verified by an earlier run of this work folder
            seen.add(entry["sha256"])
        elif entry["sha256"] in seen:
            copies.append(entry)
        elif blobs is not None and blobs.place(entry["sha256"], entry["size"], target):
            counted(entry["size"])
            seen.add(entry["sha256"])
        else:
            todo.append(entry)
            seen.add(entry["sha256"])

    def get(session: Transport, entry: dict[str, Any]) -> None:
        fetch_one(
            session,
            folder,
            work,
            entry,
            counted,
            remote_path=payload_path(session, stage, name, remote, entry),
        )

    pool = TransportPool(transport, PARALLEL_FILES)

    def one(entry: dict[str, Any]) -> None:
        session = pool.acquire()
        try:
            get(session, entry)
        finally:
            pool.release(session)

    if len(todo) <= 1:  # no helper threads for a single file
        for entry in todo:
            get(transport, entry)
    else:
        _fetch_parallel(todo, one, pool)
    by_sha = {e["sha256"]: e for e in files if e not in copies}
    for entry in copies:
        _copy_within(work, by_sha[entry["sha256"]], entry)
        counted(entry["size"])
    (work / "manifest.json").write_bytes(data)
    return manifest, data


def payload_path(
    transport: Transport, stage: str, name: str, remote: RemoteVersion, entry: dict[str, Any]
) -> str:
    """Where ``transport`` fetches a payload file: its own say (a registry server's
    files route), else the served tree's (:meth:`RemoteVersion.file_path`)."""
    own = getattr(transport, "payload_path", None)
    return own(stage, name, remote, entry) if own else remote.file_path(stage, name, entry)


def _fetch_parallel(todo: list[dict[str, Any]], one: Any, pool: TransportPool) -> None:
    try:
        with ThreadPoolExecutor(min(PARALLEL_FILES, len(todo))) as executor:
            futures = [executor.submit(one, f) for f in todo]
            _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            errors: list[BaseException] = [
                exc
                for f in futures
                if f.done() and not f.cancelled() and (exc := f.exception()) is not None
            ]
            if errors:
                integrity = [e for e in errors if isinstance(e, IntegrityError)]
                raise (integrity or errors)[0]
    finally:
        pool.close_forked()


def _copy_within(work: Path, have: dict[str, Any], entry: dict[str, Any]) -> None:
    """A second path of bytes already in ``work``: a hard link (else a checked copy)."""
    src = inside(work, *have["path"].split("/"))
    target = inside(work, *entry["path"].split("/"))
    if target.is_file() and target.stat().st_size == entry["size"]:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    try:
        os.link(src, target)
    except OSError:
        if copy_verified(src, target) != entry["sha256"]:
            raise IntegrityError(f"{entry['path']}: the copy in the cache does not match") from None
