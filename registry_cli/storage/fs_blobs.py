"""Blobs of a folder root: ``blobs/sha256/<first two hex>/<sha256>``, read-only.

A blob is written to a temporary name in ``blobs/sha256/`` (the hash, hence
its folder, is known only once the bytes are in) and linked to its final name
when complete, so a writer killed at any instant leaves at most a temporary
file (``gc`` removes it), never a half blob under its final name. Two writers
of the same bytes both succeed: the second finds the name taken, drops its
temporary file and uses the first one's blob.

A version's ``payload/<path>`` is a hard link to its blob; where the
filesystem refuses hard links (EXDEV, EPERM, EMLINK...) it gets a copy and
the caller is told (``regctl doctor`` reports such a root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from registry_cli.storage import layout
from registry_cli.storage.atomic import fsync_dir, is_temp_sibling, temp_sibling


def hard_link(src: Path, dst: Path) -> None:
    """One hard link (the single place blobs are linked: tests make it fail)."""
    os.link(src, dst, follow_symlinks=False)


def blobs_dir(root: Path) -> Path:
    return root.joinpath(*layout.BLOBS.split("/"))


def blob_path(root: Path, sha256: str) -> Path:
    return root.joinpath(*layout.blob_key(sha256).split("/"))


def incoming(root: Path) -> Path:
    """A fresh temporary name for a blob being written (same filesystem as the blobs)."""
    folder = blobs_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    return temp_sibling(folder / "incoming")


def sizes(root: Path) -> set[int]:
    """The sizes of the blobs present: a file of another size cannot be one of them."""
    found: set[int] = set()
    try:
        shards = list(os.scandir(blobs_dir(root)))
    except FileNotFoundError:
        return found
    for shard in shards:
        if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError), os.scandir(shard.path) as it:
            for entry in it:
                if not is_temp_sibling(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        found.add(entry.stat(follow_symlinks=False).st_size)
    return found


def adopt(root: Path, tmp: Path, sha256: str, *, fsync: bool = False) -> Path:
    """Make the complete file ``tmp`` the blob ``sha256`` (read-only); when the blob
    exists already, ``tmp`` is dropped and the existing blob is the result."""
    final = blob_path(root, sha256)
    if final.exists():
        os.unlink(tmp)
        return final
    os.chmod(tmp, 0o444)
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        hard_link(tmp, final)  # refuses an existing name: the first writer's blob stays
    except FileExistsError:
        pass
    except OSError:
        # no hard links here: a rename, which would replace a blob another writer
        # linked meanwhile (same bytes, so harmless)
        if not final.exists():
            os.rename(tmp, final)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    if fsync:
        fsync_dir(final.parent)
    return final


def link_payload(blob: Path, dst: Path) -> bool:
    """``dst`` as a hard link of ``blob``; a read-only copy where linking fails.
    True when it is a link."""
    try:
        hard_link(blob, dst)
        return True
    except FileExistsError:
        raise
    except OSError:
        shutil.copyfile(blob, dst, follow_symlinks=False)
        os.chmod(dst, 0o444)
        return False


def links_work(root: Path) -> bool:
    """Whether ``root``'s filesystem makes hard links (a probe in ``.regctl/``)."""
    folder = root / ".regctl"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    probe = temp_sibling(folder / "linkprobe")
    linked = temp_sibling(folder / "linkprobe")
    try:
        probe.write_bytes(b"")
        os.link(probe, linked)
        return True
    except OSError:
        return False
    finally:
        for p in (probe, linked):
            with contextlib.suppress(OSError):
                os.unlink(p)


def copied_payloads(root: Path, limit: int = 200) -> tuple[int, int]:
    """``(checked, copies)``: payload files of the newest versions that are not hard
    links of their blob (a filesystem, or a copy tool, that did not keep the links).
    Versions from before blobs have none and are skipped; at most ``limit`` files."""
    import json

    checked = copies = 0
    models = root / layout.MODELS
    for state in sorted(models.rglob("model.yaml")) if models.is_dir() else []:
        versions = [p for p in state.parent.glob("v*") if p.name[1:].isdigit()]
        for vdir in sorted(versions, key=lambda p: int(p.name[1:]), reverse=True)[:1]:
            try:
                files = json.loads((vdir / "manifest.json").read_bytes())["files"]
            except (OSError, ValueError, KeyError):
                continue
            for f in files:
                try:
                    blob = os.stat(blob_path(root, f["sha256"]))
                    mine = os.stat(vdir / f["path"])
                except (OSError, KeyError, ValueError):
                    continue
                checked += 1
                copies += (blob.st_dev, blob.st_ino) != (mine.st_dev, mine.st_ino)
                if checked >= limit:
                    return checked, copies
    return checked, copies


# -- sources already hashed ---------------------------------------------------
# A file published again unchanged (same inode, size, mtime and ctime, as git's index
# and rsync judge it) need not be hashed again to find its blob: the bundle's hash
# still reads it once. ctime cannot be set back by a user, so any write is noticed.
# Each entry keeps the file's sha256 and, when known, its CRC-32 (the bundle's gzip
# trailer needs it: a re-publish then reads the file once, for the bundle's sha256).
SEEN = ".regctl/hashed.json"
SEEN_MAX = 4096  # entries kept, newest last

Seen = dict[str, tuple[str, int | None]]  # identity -> (sha256, crc32 or None)


def identity(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def load_seen(root: Path) -> Seen:
    """The entries of ``.regctl/hashed.json``: ``"<sha256>"`` (older releases) or
    ``["<sha256>", crc32]``; anything else is ignored (it only costs a hash)."""
    import json

    try:
        doc = json.loads((root / SEEN).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    seen: Seen = {}
    for k, v in doc.items():
        if isinstance(v, str) and layout.is_sha256(v):
            seen[k] = (v, None)
        elif (
            isinstance(v, list)
            and len(v) == 2
            and isinstance(v[0], str)
            and layout.is_sha256(v[0])
            and type(v[1]) is int
            and 0 <= v[1] <= 0xFFFFFFFF
        ):
            seen[k] = (v[0], v[1])
    return seen


def save_seen(root: Path, seen: Seen) -> None:
    """Best effort, atomically (a lost entry only costs a hash next time)."""
    import json

    path = root / SEEN
    keep = {k: v[0] if v[1] is None else list(v) for k, v in list(seen.items())[-SEEN_MAX:]}
    tmp = temp_sibling(path)
    try:
        tmp.write_text(json.dumps(keep))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
