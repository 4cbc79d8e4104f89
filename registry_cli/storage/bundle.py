"""``bundle.tar.gz``: the version's ``payload/`` plus ``manifest.json``.

Compression defaults to gzip level 0 ("stored" deflate blocks): still a
``.tar.gz`` every client opens, but written at disk speed. Model weights are
mostly float noise that gzip shrinks by only a few percent, at 20-30 MB/s.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from registry_cli.storage.hashing import CHUNK, HashingWriter, Progress
from registry_cli.storage.payload import FileRecord


class _ProgressReader:
    def __init__(self, raw, progress: Progress | None) -> None:  # type: ignore[no-untyped-def]
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if self._progress is not None and data:
            self._progress(len(data))
        return data


def _info(name: str, *, size: int = 0, is_dir: bool = False, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = 0 if is_dir else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_bundle(
    version_dir: Path,
    files: list[FileRecord],
    manifest: bytes,
    *,
    level: int = 0,
    mtime: int = 0,
    progress: Progress | None = None,
) -> tuple[int, str]:
    """Write ``version_dir/bundle.tar.gz``; return its ``(size, sha256)``."""
    target = version_dir / "bundle.tar.gz"
    folders = sorted(
        {"payload"}
        | {f.path.rsplit("/", i)[0] for f in files for i in range(1, f.path.count("/"))}
    )
    with open(target, "xb") as raw:
        hasher = HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=hasher, compresslevel=level,
                           mtime=mtime) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT,
                              copybufsize=CHUNK) as tar:
                for folder in folders:
                    tar.addfile(_info(folder, is_dir=True, mtime=mtime))
                for record in files:
                    with open(version_dir / record.path, "rb") as fh:
                        tar.addfile(_info(record.path, size=record.size, mtime=mtime),
                                    _ProgressReader(fh, progress))
                tar.addfile(_info("manifest.json", size=len(manifest), mtime=mtime),
                            io.BytesIO(manifest))
        raw.flush()
        os.fsync(raw.fileno())
        return hasher.size, hasher.hexdigest()
