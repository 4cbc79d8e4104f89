"""``audit.jsonl``: one JSON object per line, appended with a single write.

Lines are written with ``O_APPEND`` in one ``write`` call so concurrent
writers never interleave; a line torn by a crash is skipped on read and
reported, never hiding the entries before it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AuditRead:
    entries: list[dict[str, Any]] = field(default_factory=list)
    damaged_lines: list[int] = field(default_factory=list)


ENTRY_KEYS = ("time", "actor", "action", "model", "version", "details")


def append(path: Path, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=False, separators=(",", ":")) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A previous writer killed mid-line leaves no newline; start a fresh line.
        if os.fstat(fd).st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> AuditRead:
    out = AuditRead()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return out
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                out.damaged_lines.append(number)
                continue
            if not isinstance(entry, dict) or not all(k in entry for k in ENTRY_KEYS):
                out.damaged_lines.append(number)
                continue
            out.entries.append(entry)
    return out
