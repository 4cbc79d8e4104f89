"""The content-addressed part of the pull cache: each verified file once, by sha256.

::

    <cache>/regctl/blobs/sha256/<first two hex>/<sha256>   read-only (0444)

A cached version's ``payload/`` files are hard links of these blobs (copies where
the filesystem refuses hard links), so a file pulled once, for any version, stage or
source, is never downloaded again (see docs/pull.md, "Delta pulls").

- :meth:`BlobCache.place` puts a blob into a work folder for a new version: the
  blob is hashed first (a cached file damaged on disk is found here, set aside and
  downloaded again), then hard-linked (or copied, hashing the copy).
- :meth:`BlobCache.keep` links a file that was just downloaded and verified into the
  blob folder. ``link`` creates the name atomically, so a blob never exists half
  written under its final name; a copy (no hard links) goes through a temporary
  sibling and a rename.

Whether a blob is still used is told by its link count: a blob that no cached
version links to has ``st_nlink == 1`` (``cache prune`` removes it). Caches written
before blobs existed hold plain files; they keep working and their files are
adopted on demand (same sha256 in a cached version of the same model).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from registry_cli.storage.hashing import CHUNK, hash_file
from registry_cli.storage.layout import BLOBS, is_sha256

NO_LINKS = (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES)


class BlobCache:
    """The blob folder of one cache root (``<cache>/regctl``)."""

    def __init__(self, regctl_dir: Path, legacy: Path | None = None) -> None:
        self.dir = regctl_dir.joinpath(*BLOBS.split("/"))
        self.legacy = legacy  # a model's cache folder, maybe holding pre-blob versions
        self._legacy_files: dict[str, Path] | None = None
        self.reused = 0  # files placed from the cache by this instance (for reports)
        self.reused_bytes = 0

    def path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / sha256

    def place(self, sha256: str, size: int, target: Path) -> bool:
        """Put the cached blob ``sha256`` at ``target`` (a new name), verified; False
        when the cache does not hold it intact (a damaged blob is set aside)."""
        blob = self.path(sha256)
        try:
            st = os.stat(blob)
        except OSError:
            old = self._legacy().pop(sha256, None)
            if old is None:
                return False
            self.keep(old, sha256)  # hashed below before any use
            try:
                st = os.stat(blob)
            except OSError:
                return False
        if st.st_size != size or hash_file(blob)[1] != sha256:
            self.discard(blob)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, target)
        except FileNotFoundError:
            return False  # pruned meanwhile: download it
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                raise
            if copy_verified(blob, target) != sha256:
                with contextlib.suppress(OSError):
                    os.unlink(target)
                return False
        self.reused += 1
        self.reused_bytes += size
        return True

    def keep(self, path: Path, sha256: str) -> None:
        """Make the verified file ``path`` the blob of ``sha256`` unless one is there."""
        if not is_sha256(sha256):
            return
        blob = self.path(sha256)
        try:
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, blob)
            return
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                return  # the cache still works without the blob: a later pull downloads it
        tmp = blob.with_name(f".{sha256}.copy-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o444)
            if not blob.exists():
                os.rename(tmp, blob)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def keep_folder(self, folder: Path, files: Iterable[dict]) -> None:
        """:meth:`keep` every manifest entry of a verified version folder."""
        for entry in files:
            self.keep(folder.joinpath(*entry["path"].split("/")), entry["sha256"])

    def discard(self, blob: Path) -> None:
        """Take a damaged blob out of the way (versions linking it keep their inode)."""
        with contextlib.suppress(OSError):
            os.unlink(blob)

    def _legacy(self) -> dict[str, Path]:
        """sha256 -> a file of a version of ``legacy`` cached before blobs existed (read
        from their manifests once), so an old cache still gives delta pulls."""
        if self._legacy_files is None:
            self._legacy_files = {}
            with contextlib.suppress(OSError, TypeError):
                for entry in os.listdir(self.legacy or ""):
                    self._legacy_files.update(_version_files(Path(self.legacy or ""), entry))
        return self._legacy_files


def _version_files(model_cache: Path, entry: str) -> dict[str, Path]:
    vdir = model_cache / entry
    found: dict[str, Path] = {}
    if not entry.startswith("v") or not (vdir / "manifest.json").is_file():
        return found
    try:
        files = json.loads((vdir / "manifest.json").read_bytes())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return found
    for f in files if isinstance(files, list) else []:
        sha = f.get("sha256") if isinstance(f, dict) else None
        if isinstance(sha, str) and is_sha256(sha) and isinstance(f.get("path"), str):
            path = vdir.joinpath(*f["path"].split("/"))
            if ".." not in f["path"].split("/") and path.is_file() and not path.is_symlink():
                found[sha] = path
    return found


def copy_verified(src: Path, dest: Path) -> str:
    """Copy ``src`` to the new file ``dest`` (read-only), hashing it; its sha256."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fin, open(dest, "xb", buffering=0) as fout:
        while n := fin.readinto(buf):
            digest.update(view[:n])
            fout.write(view[:n])
    os.chmod(dest, 0o444)
    return digest.hexdigest()
