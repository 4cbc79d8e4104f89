"""A registry root in a local (or mounted) folder: :class:`Store` over the filesystem.

Conditional writes become rename tricks: ``create`` writes a temp file and
links it into place (``link`` refuses an existing name, atomically);
``replace`` compares the file's identity (inode, size, mtime in ns: every
replace makes a new inode) with the tag read earlier and swaps the new content
in with ``os.replace``. Callers hold the model's ``flock`` around read and
replace, which makes the comparison race-free; on filesystems where ``flock``
does nothing the rename rules still keep versions from clobbering each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from registry_cli.storage import layout, locks
from registry_cli.storage.atomic import (
    atomic_write_bytes,
    fsync_dir,
    is_temp_sibling,
    make_read_only,
    process_running,
    remove_tree,
    temp_sibling,
    temp_sibling_abandoned,
)
from registry_cli.storage.hashing import Progress, hash_file
from registry_cli.storage.layout import inside
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store, Tagged

SCRATCH = ".regctl/tmp"


def _tag(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to the new name ``dst``; copy (read-only) where linking fails."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, 0o444)


class FsStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, key: str) -> Path:
        """The local path of ``key``; refuses keys that would leave the root."""
        return inside(self.root, key) if key else self.root

    # -- documents ------------------------------------------------------
    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise Missing(key) from None

    def read_tagged(self, key: str) -> Tagged:
        try:
            with open(self.path(key), "rb") as fh:
                return Tagged(fh.read(), _tag(os.fstat(fh.fileno())))
        except (FileNotFoundError, NotADirectoryError):
            raise Missing(key) from None

    def create(self, key: str, data: bytes) -> str:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(path)
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise AlreadyExists(key) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(path.parent)
        return _tag(os.stat(path))

    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        path = self.path(key)
        try:
            current = _tag(os.stat(path))
        except FileNotFoundError:
            raise Conflict(key) from None
        if current != if_match:
            raise Conflict(key)
        atomic_write_bytes(path, data)
        return _tag(os.stat(path))

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.path(key), data)

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    # -- append-only log ------------------------------------------------
    def append(self, key: str, line: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A previous writer killed mid-line leaves no newline: start a fresh line.
            if os.fstat(fd).st_size:
                with open(path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)  # one write with O_APPEND: lines never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def lines(self, key: str) -> Iterator[bytes]:
        try:
            fh = open(self.path(key), "rb")
        except FileNotFoundError:
            return
        with fh:
            yield from fh

    # -- listing and streaming -----------------------------------------
    def kind(self, key: str) -> str | None:
        try:
            st = os.lstat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        return "dir" if stat.S_ISDIR(st.st_mode) else "file"

    def children(self, key: str) -> list[str]:
        """The entries of a folder, without the temporary names of writes in flight (or
        of writers killed before their rename: gc removes those)."""
        try:
            return sorted(e for e in os.listdir(self.path(key)) if not is_temp_sibling(e))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk_files(self, key: str) -> Iterator[str]:
        base = self.path(key)
        for dirpath, dirnames, filenames in os.walk(base):
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for fname in filenames + links:
                yield os.path.relpath(os.path.join(dirpath, fname), base).replace(os.sep, "/")

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise Missing(key) from None

    def hash(self, key: str, progress: Progress | None = None) -> tuple[int, str]:
        try:
            return hash_file(self.path(key), progress)
        except (FileNotFoundError, NotADirectoryError):
            raise Missing(key) from None

    def local_path(self, key: str) -> Path:
        return self.path(key)

    # -- versions -------------------------------------------------------
    @contextlib.contextmanager
    def scratch(self, kind: str) -> Iterator[Path]:
        """A folder under ``.regctl/tmp`` (same filesystem as the versions, so its
        contents can be renamed into place). A lock held while in use tells ``gc``
        it is alive; a killed process's folder is removed by the next ``gc`` (see
        :func:`_scratch_alive` for the moment between the folder and its lock)."""
        base = self.path(SCRATCH)
        base.mkdir(parents=True, exist_ok=True)
        folder = base / f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        try:
            with locks.hold(folder / ".alive", what="a scratch folder", timeout=0):
                yield folder
        finally:
            remove_tree(folder)

    def install_folder(self, staging: Path, key: str) -> None:
        target = self.path(key)
        make_read_only(staging)
        os.chmod(staging, 0o755)  # the folder itself stays removable by gc
        fsync_dir(staging)
        if os.path.lexists(target):
            raise AlreadyExists(key)
        os.rename(staging, target)  # an empty target dir would be replaced: checked above
        fsync_dir(target.parent)

    def remove_tree(self, key: str) -> None:
        remove_tree(self.path(key))

    def leftover_scratch(self) -> list[tuple[str, bool]]:
        out = []
        for name in self.children(SCRATCH):
            out.append((f"{SCRATCH}/{name}", _scratch_alive(self.path(SCRATCH) / name)))
        # a blob writer killed before its link (temporary files in blobs/sha256/)
        blobs = self.path(layout.BLOBS)
        for entry in os.listdir(blobs) if blobs.is_dir() else []:
            path = blobs / entry
            if is_temp_sibling(entry) and temp_sibling_abandoned(path):
                out.append((path.relative_to(self.root).as_posix(), False))
        # a writer of the served tree killed between its temporary write and the rename;
        # a younger one is left alone unreported (another machine may still rename it)
        for dirpath, dirnames, filenames in os.walk(self.path(layout.DIST)):
            for entry in dirnames + filenames:
                path = Path(dirpath, entry)
                if is_temp_sibling(entry) and temp_sibling_abandoned(path):
                    out.append((path.relative_to(self.root).as_posix(), False))
            dirnames[:] = [d for d in dirnames if not is_temp_sibling(d)]
        return out

    # -- the served tree ------------------------------------------------
    def copy_files(self, src: str, dst: str, files: list[str]) -> None:
        source, target = self.path(src), self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            for rel in files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                try:
                    link_or_copy(source / rel, tmp / rel)
                except FileNotFoundError:
                    raise Missing(f"{src}/{rel}") from None
            try:
                os.rename(tmp, target)
            except OSError:
                if not os.path.isdir(target):
                    raise
                # another writer (a rebuild) put it in place meanwhile
            fsync_dir(target.parent)
        finally:
            remove_tree(tmp)

    def copy_file(self, src: str, dst: str) -> None:
        source, target = self.path(src), self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(target) and not os.path.islink(target):
            remove_tree(target)
        tmp = temp_sibling(target)
        try:
            link_or_copy(source, tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def same_content(self, src: str, dst: str) -> bool:
        try:
            d = os.lstat(self.path(dst))
            s = os.stat(self.path(src))
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(d.st_mode):
            return False
        if (s.st_dev, s.st_ino) == (d.st_dev, d.st_ino):
            return True  # a hard link
        if s.st_size != d.st_size:
            return False
        return hash_file(self.path(src))[1] == hash_file(self.path(dst))[1]

    # -- blobs ----------------------------------------------------------
    def blobs_root(self) -> Path | None:
        return self.root

    # -- concurrency ----------------------------------------------------
    def lock(self, key: str, *, what: str) -> contextlib.AbstractContextManager[None]:
        return locks.hold(self.path(key), what=what)


SCRATCH_YOUNG_S = 60.0  # a scratch folder this young may not hold its lock yet


def _scratch_alive(folder: Path) -> bool:
    """Whether a scratch folder is in use: its lock is held, or it was made moments ago
    (its lock comes just after the folder) by a process that still runs on this
    machine. A killed writer's folder is not held and its pid is gone."""
    if locks.is_held(folder / ".alive"):
        return True
    try:
        age = time.time() - os.lstat(folder).st_mtime
    except FileNotFoundError:
        return True  # removed by its owner meanwhile: nothing left to collect
    found = re.fullmatch(r".+-(\d+)-[0-9a-f]{12}", folder.name)
    return age < SCRATCH_YOUNG_S and found is not None and process_running(int(found.group(1)))
