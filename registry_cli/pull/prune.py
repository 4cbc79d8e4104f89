"""``regctl cache prune``: free space in the pull cache without breaking a version in use.

- ``--keep-last N``: of each model (per source and stage) the N highest versions stay.
- ``--max-size SIZE``: then, while the cache holds more than SIZE (each file counted
  once however many versions link it), the version used longest ago goes (the mtime of
  its ``.regctl-pull.json``, which every pull and cache hit stamps).
- Always: blobs no cached version links to (``st_nlink == 1`` and not listed by a
  version's manifest, for caches with copies instead of links) are removed.

"In use" is a shared ``flock`` on the version's ``.regctl-pull.json``, held by every
process that pulled the version or found it in the cache, until it exits
(:func:`registry_cli.pull.cache.hold_version`). Prune takes the lock exclusively
without waiting; a version it cannot lock is left alone (reported ``in_use``). While
it holds the lock it renames the folder to a hidden ``.vN.pruned-*`` name, so a new
reader either finds it intact or not at all (and pulls it again), then deletes it.
A pull running meanwhile links blobs into its own hidden work folder: a blob it
linked keeps its bytes (a link of its own), one removed before it links is
downloaded again. Hidden work folders (``.vN.*.partial``/``.active``) are not
touched: they are the resumes of interrupted pulls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.names import format_version
from registry_cli.errors import BadInput
from registry_cli.pull.cache import MARKER, take_version
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.layout import BLOBS, is_sha256

SIZE_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*\Z", re.IGNORECASE)
VERSION_RE = re.compile(r"\Av([1-9]\d*)\Z")


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``4096`` (bytes): powers of 1024."""
    found = SIZE_RE.match(text or "")
    if found is None:
        raise BadInput(
            f"invalid size {text!r}",
            hint="give a number of bytes with an optional unit: 500M, 2G, 1.5GiB (powers of 1024)",
        )
    power = " kmgtp".index((found.group(2) or " ").lower())
    return int(float(found.group(1)) * (1024**power))


@dataclass
class CachedVersion:
    path: Path
    number: int
    last_used: float
    files: list[tuple[int, int]] = field(default_factory=list)  # (inode, size)
    shas: set[str] = field(default_factory=set)


@dataclass
class PruneReport:
    removed: list[dict[str, Any]] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    blobs_removed: int = 0
    size_before: int = 0
    size_after: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": self.removed,
            "in_use": self.in_use,
            "blobs_removed": self.blobs_removed,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "freed": self.size_before - self.size_after,
            "dry_run": self.dry_run,
        }


def _scan_versions(regctl: Path) -> list[CachedVersion]:
    found: list[CachedVersion] = []
    for dirpath, dirs, files in os.walk(regctl):
        here = Path(dirpath)
        if here == regctl:
            dirs[:] = [d for d in dirs if d not in (BLOBS.split("/")[0], ".locks")]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        matched = VERSION_RE.match(here.name)
        if matched is None or MARKER not in files:
            continue
        dirs[:] = []  # a version folder: nothing below is another version
        try:
            last_used = os.stat(here / MARKER).st_mtime
            manifest = json.loads((here / "manifest.json").read_bytes())
        except (OSError, ValueError):
            continue
        version = CachedVersion(here, int(matched.group(1)), last_used)
        for f in manifest.get("files", []) if isinstance(manifest, dict) else []:
            with contextlib.suppress(OSError, TypeError, KeyError, AttributeError):
                st = os.lstat(here.joinpath(*str(f["path"]).split("/")))
                version.files.append((st.st_ino, st.st_size))
                version.shas.add(str(f["sha256"]))
        found.append(version)
    return found


def _blobs(regctl: Path) -> list[tuple[Path, os.stat_result]]:
    out = []
    with contextlib.suppress(OSError):
        for sub in os.scandir(regctl.joinpath(*BLOBS.split("/"))):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for blob in os.scandir(sub.path):
                if is_sha256(blob.name):
                    with contextlib.suppress(OSError):
                        out.append((Path(blob.path), blob.stat(follow_symlinks=False)))
    return out


def _usage(versions: list[CachedVersion], blobs: list[tuple[Path, os.stat_result]]) -> int:
    """Bytes held: each inode once (a version's file and its blob are one inode)."""
    sizes = {ino: size for v in versions for ino, size in v.files}
    referenced = {sha for v in versions for sha in v.shas}
    for path, st in blobs:
        if st.st_ino in sizes or path.name in referenced:
            sizes[st.st_ino] = st.st_size  # a copy still used by a version
    return sum(sizes.values())


def prune_cache(
    cache_root: Path,
    *,
    keep_last: int | None = None,
    max_size: int | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Apply ``keep_last``/``max_size`` to ``<cache_root>/regctl``, then drop unused blobs."""
    if keep_last is not None and keep_last < 0:
        raise BadInput(f"--keep-last must be 0 or more, not {keep_last}")
    regctl = cache_root / "regctl"
    report = PruneReport(dry_run=dry_run)
    versions = _scan_versions(regctl)
    blobs = _blobs(regctl)
    report.size_before = _usage(versions, blobs)
    chosen: list[CachedVersion] = []
    if keep_last is not None:
        by_model: dict[Path, list[CachedVersion]] = {}
        for v in versions:
            by_model.setdefault(v.path.parent, []).append(v)
        for group in by_model.values():
            chosen += sorted(group, key=lambda v: -v.number)[keep_last:]
    kept = [v for v in versions if v not in chosen]

    def remove(v: CachedVersion) -> bool:
        if dry_run:
            return True
        fd = take_version(v.path)
        if fd is None:
            report.in_use.append(str(v.path))
            return False
        aside = v.path.with_name(f".{v.path.name}.pruned-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(v.path, aside)
        except OSError:
            report.in_use.append(str(v.path))
            return False
        finally:
            os.close(fd)
        remove_tree(aside)
        return True

    survivors = list(kept)
    for v in chosen:
        if not remove(v):
            survivors.append(v)
            continue
        report.removed.append(_describe(regctl, v))
    if max_size is not None:
        for v in sorted(list(survivors), key=lambda v: v.last_used):
            if _usage(survivors, blobs) <= max_size:
                break
            if remove(v):
                survivors.remove(v)
                report.removed.append(_describe(regctl, v))
    report.blobs_removed = _drop_unused_blobs(regctl, survivors, dry_run)
    if dry_run:
        report.size_after = _usage(survivors, blobs)
    else:
        report.size_after = _usage(_scan_versions(regctl), _blobs(regctl))
    return report


def _drop_unused_blobs(regctl: Path, survivors: list[CachedVersion], dry_run: bool) -> int:
    """Remove the blobs no surviving version lists and nothing else links (a pull in
    progress links the blobs it uses into its work folder); their count."""
    listed = {sha for v in survivors for sha in v.shas}
    removed = 0
    for path, _st in _blobs(regctl):
        if path.name in listed:
            continue
        if dry_run:
            removed += 1
            continue
        with contextlib.suppress(OSError):
            if os.lstat(path).st_nlink == 1:
                os.unlink(path)
                removed += 1
    return removed


def _describe(regctl: Path, v: CachedVersion) -> dict[str, Any]:
    rel = v.path.parent.relative_to(regctl).as_posix().split("/")
    return {
        "source": rel[0],
        "stage": rel[1] if len(rel) > 1 else "",
        "name": "/".join(rel[2:]),
        "version": format_version(v.number),
        "path": str(v.path),
    }
