"""``audit.jsonl``: one JSON object per line, appended with a single write.

Stores append a line in one write (``O_APPEND`` on a folder root) so
concurrent writers never interleave; a line torn by a crash is skipped on
read and reported, never hiding the entries before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AuditRead:
    entries: list[dict[str, Any]] = field(default_factory=list)
    damaged_lines: list[int] = field(default_factory=list)


ENTRY_KEYS = ("time", "actor", "action", "model", "version", "details")


def parse_lines(lines: Iterable[bytes]) -> AuditRead:
    out = AuditRead()
    for number, raw in enumerate(lines, start=1):
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
