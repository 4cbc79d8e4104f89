"""Publishing's one pass over the payload: each source file is read once and, on
threads, copied to its blob (or payload file), hashed for the manifest and framed
into the bundle by :class:`~registry_cli.storage.bundle.BundleWriter` (which hashes
what it frames); :class:`~registry_cli.storage.pump.Pump` moves the bytes. Which
files are copied, hashed only, or read from an existing blob is decided here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from registry_cli.errors import BadInput
from registry_cli.storage import fs_blobs
from registry_cli.storage.bundle import BundleWriter, FdSink, HashOnly, bundle_folders
from registry_cli.storage.hashing import Progress
from registry_cli.storage.payload import FileRecord, PlannedFile
from registry_cli.storage.pump import Pump

if TYPE_CHECKING:
    from registry_cli.storage.fs_prehash import Prehash


def write_payload_and_bundle(
    planned: list[PlannedFile],
    version_dir: Path,
    make_manifest: Callable[[list[FileRecord]], bytes],
    *,
    level: int = 0,
    mtime: int = 0,
    progress: Progress | None = None,
    fsync: bool = False,
    blobs_root: Path | None = None,
    copy: bool = True,
    store_bundle: bool = True,
    on_blob: Callable[[str], None] | None = None,
    prehash: Prehash | None = None,
) -> tuple[list[FileRecord], tuple[int, str], int]:
    """Hash every planned file and place it, computing the bundle from the same reads.

    * ``blobs_root`` (a folder root): each file is copied once into a temporary blob,
      hashed as it is copied, and becomes ``blobs/sha256/xx/<sha>`` unless that blob
      exists (the copy is dropped); ``version_dir/payload/<path>`` is a hard link to it.
      A file of the size of an existing blob is hashed first without writing, so bytes
      the root holds already cost one read and no write.
    * else with ``copy``: a plain copy into ``version_dir/payload``;
    * else: hashed only (an object store uploads its blobs from the sources).

    ``on_blob`` hears each sha256 before its blob is looked for (the pending marker).
    ``make_manifest`` receives the file records and returns manifest.json's bytes,
    written beside the payload and last into the bundle. ``bundle.tar.gz`` is
    written only with ``store_bundle``, its sha256 and size are always computed.
    Returns the records, the bundle's ``(size, sha256)`` and how many payload files
    are copies of their blob because the filesystem refused a hard link.

    ``prehash``: the bundle framed from the blobs since the command began
    (:mod:`registry_cli.storage.fs_prehash`, with this ``mtime``), used when it
    framed exactly these files, unchanged, into a level-0 bundle that is not stored.
    """
    if prehash is not None and blobs_root is not None and level == 0 and not store_bundle:
        done = _from_prehash(prehash, planned, version_dir, make_manifest, blobs_root, on_blob)
        if done is not None:
            if progress is not None:
                progress(sum(p.size for p in planned))
            return done
    elif prehash is not None:
        prehash.cancel()
    payload = version_dir / "payload"
    placed = copy or blobs_root is not None
    if placed:
        payload.mkdir(parents=True, exist_ok=True)
    folders = bundle_folders([f"payload/{p.relpath}" for p in planned])
    known = fs_blobs.sizes(blobs_root) if blobs_root is not None else set()
    seen = fs_blobs.load_seen(blobs_root) if blobs_root is not None else {}
    seen_before = dict(seen)
    records: list[FileRecord] = []
    copies = 0
    # without store_bundle the bundle is assembled from the blobs when read: only
    # its size and sha256 are kept
    bundle_fd = (
        os.open(version_dir / "bundle.tar.gz", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if store_bundle
        else -1
    )
    try:
        with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(1) as bundler:
            bundle = BundleWriter(
                FdSink(bundle_fd) if store_bundle else HashOnly(), level=level, mtime=mtime
            )
            pump = Pump(hasher, bundler, bundle)
            for folder in folders:
                bundler.submit(bundle.add_dir, folder)
            for item in planned:
                dst = payload / item.relpath
                if placed:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                # the header records the planned size; a file that changes size
                # while being read would corrupt the bundle, so it is refused
                bundler.submit(bundle.begin_file, f"payload/{item.relpath}", item.size)
                if blobs_root is not None:
                    sha, crc = _into_blob(
                        pump, item, blobs_root, known, seen, fsync, progress, on_blob
                    )
                    if not fs_blobs.link_payload(fs_blobs.blob_path(blobs_root, sha), dst):
                        copies += 1
                else:
                    src, out = item.source, (dst if copy else None)
                    if item.move and copy:  # already on this filesystem: rename, then read
                        os.rename(item.source, dst)
                        src, out = dst, None
                    sha, crc = pump.run(
                        item, src, out, feed=True, fsync=fsync, progress=progress,
                        known=None if copy else item.sha256,  # hashed by an object store
                    )  # fmt: skip
                    if on_blob is not None:
                        on_blob(sha)
                bundler.submit(bundle.end_file, item.size, crc).result()
                records.append(FileRecord(f"payload/{item.relpath}", item.size, sha))
            manifest = make_manifest(records)
            (version_dir / "manifest.json").write_bytes(manifest)
            bundler.submit(bundle.add_bytes, "manifest.json", manifest).result()
            result = bundler.submit(bundle.close).result()
        if fsync and store_bundle:
            os.fsync(bundle_fd)
    finally:
        if store_bundle:
            os.close(bundle_fd)
    if blobs_root is not None and seen != seen_before:
        fs_blobs.save_seen(blobs_root, seen)
    return records, result, copies


def _into_blob(
    pump: Pump,
    item: PlannedFile,
    root: Path,
    known: set[int],
    seen: fs_blobs.Seen,
    fsync: bool,
    progress: Progress | None,
    on_blob: Callable[[str], None] | None,
) -> tuple[str, int | None]:
    """Store one planned file as its blob (if new); its sha256 and CRC-32. ``known``:
    sizes of the blobs present; ``seen``: source identities hashed before (updated)."""
    ident = None if item.move else fs_blobs.identity(item.source)
    if item.move or item.size in known:
        # may be a blob already (or is ours to rename): hash without writing first,
        # or only read it for the bundle when this very file was hashed before
        before = seen.get(ident) if ident else None
        if before and not fs_blobs.blob_path(root, before[0]).exists():
            before = None
        known_sha = item.sha256 or (before[0] if before else None)
        same = before is not None and before[0] == known_sha
        known_crc = before[1] if before and same else None
        # this file's bytes are that blob's: read the blob (mapped, nobody truncates it)
        src = fs_blobs.blob_path(root, before[0]) if before and same else item.source
        sha, crc = pump.run(
            item,
            src,
            None,
            feed=True,
            fsync=False,
            progress=progress,
            known=known_sha,
            known_crc=known_crc,
            stable=src != item.source,
        )
        if before and fs_blobs.identity(item.source) != ident:
            raise BadInput(
                f"{item.source} changed while being published",
                hint="publish a file that is no longer being written",
            )
        if on_blob is not None:
            on_blob(sha)
        if fs_blobs.blob_path(root, sha).exists():
            if ident:
                seen[ident] = (sha, crc)
            return sha, crc
        if item.move:
            fs_blobs.adopt(root, item.source, sha, fsync=fsync)
            return sha, crc
        tmp = fs_blobs.incoming(root)
        try:
            again, _ = pump.run(item, item.source, tmp, feed=False, fsync=fsync, progress=None)
            if again != sha:
                raise BadInput(
                    f"{item.source} changed while being published",
                    hint="publish a file that is no longer being written",
                )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    else:
        tmp = fs_blobs.incoming(root)
        try:
            sha, crc = pump.run(item, item.source, tmp, feed=True, fsync=fsync, progress=progress)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if on_blob is not None:
            on_blob(sha)
    known.add(item.size)
    try:
        fs_blobs.adopt(root, tmp, sha, fsync=fsync)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # dropped, or left by a failed adopt
    if ident and fs_blobs.identity(item.source) == ident:
        seen[ident] = (sha, crc)
    return sha, crc


def _from_prehash(
    prehash: Prehash,
    planned: list[PlannedFile],
    version_dir: Path,
    make_manifest: Callable[[list[FileRecord]], bytes],
    blobs_root: Path,
    on_blob: Callable[[str], None] | None,
) -> tuple[list[FileRecord], tuple[int, str], int] | None:
    """The version from a finished prehash (None: not usable, nothing written): each
    payload file a link to its blob, then manifest.json and the bundle's trailer."""
    from registry_cli.storage.fs_prehash import usable

    pre = prehash.result()
    if pre is None or not usable(pre, planned, blobs_root):
        return None
    shas = [sha for _ident, sha in pre.files]
    if on_blob is not None:  # the pending marker names them before they are looked for
        for sha in shas:
            on_blob(sha)
    if not all(fs_blobs.blob_path(blobs_root, sha).exists() for sha in shas):
        return None  # collected meanwhile: the publish stores the bytes again
    payload = version_dir / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    records: list[FileRecord] = []
    copies = 0
    for item, sha in zip(planned, shas, strict=True):
        dst = payload / item.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not fs_blobs.link_payload(fs_blobs.blob_path(blobs_root, sha), dst):
            copies += 1
        records.append(FileRecord(f"payload/{item.relpath}", item.size, sha))
    for item, (ident, _sha) in zip(planned, pre.files, strict=True):
        if fs_blobs.identity(item.source) != ident:  # written to since the pass began
            raise BadInput(
                f"{item.source} changed while being published",
                hint="publish a file that is no longer being written",
            )
    manifest = make_manifest(records)
    (version_dir / "manifest.json").write_bytes(manifest)
    pre.writer.add_bytes("manifest.json", manifest)
    return records, pre.writer.close(), copies
