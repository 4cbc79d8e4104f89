"""``gc --dedup``: move an old root's payload files into blobs (docs/operations.md,
"Retention, gc and du"), leaving what a fresh publish into blobs leaves.

Folder root, for each payload file of each version that is not purged:

1. no blob yet: the file is hashed (it must match its manifest entry), hard-linked to
   a temporary sibling of the blob and renamed into place: the blob *is* the payload
   file, so nothing is copied and no byte moves;
2. a blob that is another file: the blob is checked once against its name, hard-linked
   to a temporary sibling of the payload file and renamed over it; the served tree's
   copies under ``dist/<stage>/<name>/versions/vN/`` are relinked the same way.

Every step is one ``link`` or one ``rename``: a reader always finds a whole file with
the right bytes under every name, a SIGKILL at any instant leaves at most a temporary
name (removed by the next run), and running again finds the work done.

Object-store root: each payload object is copied server-side to its blob key (when
missing) and the blob is read back and checked. Only then may the version's payload
object be deleted (readers then find its files as blobs); ``gc`` then rebuilds the
served tree, which points at the blobs instead of keeping copies.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from registry_cli.core.models import ModelStates
from registry_cli.core.types import GcReport
from registry_cli.core.versions import VersionReader
from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.atomic import (
    fsync_dir,
    is_temp_sibling,
    temp_sibling,
    temp_sibling_abandoned,
)
from registry_cli.storage.hashing import hash_file
from registry_cli.storage.store import Missing, Store

TAG = "dedup"  # the temporary names of this module: .NAME.dedup-PID-HEX8
DROP_VERSION_OBJECTS = True  # object store: delete vN/payload/* once its blobs verify


def dedup(
    store: Store,
    states: ModelStates,
    versions: VersionReader,
    stages: tuple[str, ...],
    report: GcReport,
    *,
    dry_run: bool,
) -> None:
    root = getattr(store, "root", None) if hasattr(store, "path") else None
    checked: set[str] = set()  # blobs verified against their name in this run
    for name in states.names():
        state = states.load(name)
        for v in state.versions:
            if v in state.purged:
                continue
            vkey = layout.version_key(name, v)
            files = versions.facts(name, v).get("files") or []
            if root is None:
                _dedup_object_version(store, vkey, files, report, checked, dry_run)
                continue
            dist = [root / layout.dist_key(s, name) / "versions" / f"v{v}" for s in stages]
            _dedup_folder_version(root, root / vkey, dist, files, report, checked, dry_run)


# -- folder root -----------------------------------------------------------
def _same(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@contextlib.contextmanager
def _writable(folder: Path) -> Any:
    """A read-only version folder opened for one rename (its mode put back after)."""
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    if mode & 0o200:
        yield
        return
    os.chmod(folder, mode | 0o200)
    try:
        yield
    finally:
        os.chmod(folder, mode)


def _clean_temps(folder: Path) -> None:
    """Temporary names a killed ``gc --dedup`` left in ``folder`` (its process gone); a
    publish's temporary blobs (another tag) are ``gc``'s after an hour."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in names:
        path = folder / entry
        if f".{TAG}-" in entry and is_temp_sibling(entry) and temp_sibling_abandoned(path, 0.0):
            with _writable(folder), contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _relink(blob: Path, target: Path) -> None:
    """Replace ``target`` by a hard link of ``blob``: temporary link, then rename over."""
    folder = target.parent
    with _writable(folder):
        tmp = temp_sibling(target, TAG)
        os.link(blob, tmp)
        try:
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    fsync_dir(folder)


def _dedup_folder_version(
    root: Path,
    vdir: Path,
    dist: list[Path],
    files: list[dict[str, Any]],
    report: GcReport,
    checked: set[str],
    dry_run: bool,
) -> None:
    for f in files:
        rel, sha, size = str(f["path"]), str(f["sha256"]), int(f["size"])
        payload = vdir / rel
        blob = root / layout.blob_key(sha)
        if not dry_run:
            _clean_temps(payload.parent)
            _clean_temps(blob.parent)
        if not os.path.exists(payload):
            continue  # verify reports it; nothing to move
        if not blob.exists():
            if dry_run:
                report.removed.append(f"dedup {payload} -> {blob}")
                report.deduped += 1
                continue
            if hash_file(payload) != (size, sha):
                raise IntegrityError(
                    f"{payload}: content does not match its manifest; not moved into a blob",
                    hint="run: regctl verify",
                )
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_sibling(blob, TAG)
            os.link(payload, tmp)
            os.chmod(tmp, 0o444)
            if blob.exists():
                os.unlink(tmp)  # another run put it there meanwhile
            else:
                os.rename(tmp, blob)
                fsync_dir(blob.parent)
            checked.add(sha)
            report.deduped += 1
        elif not _same(payload, blob):
            if dry_run:
                report.removed.append(f"dedup {payload} -> {blob}")
                report.deduped += 1
                continue
            if sha not in checked:
                if hash_file(blob) != (size, sha):
                    raise IntegrityError(
                        f"{blob}: blob does not match its name", hint="run: regctl verify"
                    )
                checked.add(sha)
            _relink(blob, payload)
            report.deduped += 1
        for served in dist:
            copy = served / rel
            if dry_run or not os.path.isfile(copy) or _same(copy, blob):
                continue
            _clean_temps(copy.parent)
            _relink(blob, copy)


# -- object-store root -------------------------------------------------------
def _dedup_object_version(
    store: Store,
    vkey: str,
    files: list[dict[str, Any]],
    report: GcReport,
    checked: set[str],
    dry_run: bool,
) -> None:
    present = set(store.walk_files(f"{vkey}/payload"))
    for f in files:
        rel, sha, size = str(f["path"]), str(f["sha256"]), int(f["size"])
        if rel.removeprefix("payload/") not in present:
            continue
        blob = layout.blob_key(sha)
        missing = sha not in checked and store.kind(blob) != "file"
        if not missing and not DROP_VERSION_OBJECTS:
            continue
        if dry_run:
            report.removed.append(f"dedup {store.location}/{vkey}/{rel} -> {blob}")
            report.deduped += 1
            checked.add(sha)
            continue
        if sha not in checked:
            if missing:
                store.copy_file(f"{vkey}/{rel}", blob)
            try:
                got = store.hash(blob)
            except Missing:
                got = (-1, "")
            if got != (size, sha):
                store.delete(blob)  # a copy of damaged bytes: never leave it under the name
                raise IntegrityError(
                    f"{store.location}/{vkey}/{rel}: content does not match its manifest; "
                    "not moved into a blob",
                    hint="run: regctl verify",
                )
            checked.add(sha)
        if DROP_VERSION_OBJECTS:
            store.delete(f"{vkey}/{rel}")
            # the store remembers which versions hold payload objects of their own
            getattr(store, "_own_payload", {}).pop(vkey, None)
        report.deduped += 1
