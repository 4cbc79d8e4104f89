"""Plan and copy a version's payload from the user's files and folders.

Planning walks every source first and refuses what cannot be published
(symlinks that leave their folder, devices, sockets, name clashes), so a bad
source fails before anything is written.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from registry_cli.errors import BadInput, NotFound
from registry_cli.storage import faults


@dataclass(frozen=True)
class PlannedFile:
    source: Path
    relpath: str  # relative to payload/, '/'-separated
    size: int
    move: bool = False  # renamed into the payload, not copied (a converter's own output)
    sha256: str | None = None  # of a moved file hashed as it was received (an upload)


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the version folder: payload/...
    size: int
    sha256: str

    def to_doc(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def _plan_dir(top: Path, prefix: str, out: list[PlannedFile]) -> None:
    top_real = os.path.realpath(top)
    seen = {top_real}

    def walk(directory: str, rel: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            full = os.path.join(directory, entry.name)
            if entry.is_symlink():
                target = os.path.realpath(full)
                if os.path.commonpath([top_real, target]) != top_real:
                    raise BadInput(
                        f"symlink {full} points outside {top} (to {target})",
                        hint="copy the target into the folder, or publish it as its own path",
                    )
                if not os.path.exists(target):
                    raise BadInput(f"symlink {full} is broken")
                full = target
            st = os.stat(full)
            if stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(full)
                if real in seen:
                    raise BadInput(f"symlink loop at {os.path.join(directory, entry.name)}")
                seen.add(real)
                walk(full, relpath)
            elif stat.S_ISREG(st.st_mode):
                out.append(PlannedFile(Path(full), f"{prefix}/{relpath}", st.st_size))
            else:
                raise BadInput(f"{full} is not a regular file or folder")

    walk(str(top), "")


def plan_payload(
    sources: list[Path],
    extra: list[tuple[Path, str]] = (),  # type: ignore[assignment]
    *,
    move_extra: bool = False,
) -> list[PlannedFile]:
    """Every file to copy, with its place in ``payload/``. Raises before any write."""
    if not sources and not extra:
        raise BadInput("nothing to publish", hint="give one or more files or folders")
    planned: list[PlannedFile] = []
    for src in sources:
        try:
            os.lstat(src)  # lexists() says False for a path in a folder we may not search
        except FileNotFoundError:
            raise NotFound(f"source path {src} does not exist") from None
        except PermissionError as exc:
            raise faults.translate(exc, "publish", src) or exc from None
        if not src.exists():
            raise BadInput(f"source path {src} is a broken symlink")
        st = src.stat()
        name = src.resolve().name if src.name in ("", ".", "..") else src.name
        if stat.S_ISDIR(st.st_mode):
            _plan_dir(src, name, planned)
        elif stat.S_ISREG(st.st_mode):
            planned.append(PlannedFile(src, name, st.st_size))
        else:
            raise BadInput(f"{src} is not a regular file or folder")
    for src, relpath in extra:
        planned.append(PlannedFile(src, relpath, src.stat().st_size, move_extra))
    seen: dict[str, Path] = {}
    for item in planned:
        key = item.relpath
        if key in seen:
            raise BadInput(
                f"two sources would both be payload/{key} ({seen[key]} and {item.source})",
                hint="rename one of them or put them in a folder",
            )
        seen[key] = item.source
    # a file and a folder of the same name cannot coexist either
    folders = {p.rsplit("/", i)[0] for p in seen for i in range(1, p.count("/") + 1)}
    clash = folders & set(seen)
    if clash:
        raise BadInput(f"payload/{sorted(clash)[0]} would be both a file and a folder")
    return sorted(planned, key=lambda p: p.relpath)
