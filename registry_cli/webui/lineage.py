"""Lineage both ways: what a version was derived from, and what was derived from it.

``derived_from`` is an immutable fact of a version (``"name:vN"``), so the
answer to "what was derived from this model" only grows. :class:`LineageIndex`
keeps every version's parent in memory and learns new versions from the audit
log, which has one ``publish`` line per version (imports publish too): each
page reads the log anyway, and only versions not seen before are read from
the registry (a whole model at once when it has many new ones).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from registry_cli.core.registry import ModelRegistry
from registry_cli.core.types import VersionInfo
from registry_cli.errors import RegctlError

BULK = 20  # more new versions than this in one model: list them all at once


@dataclass(frozen=True)
class Edge:
    model: str
    version: int
    parent_model: str
    parent_version: int | None


def parse_parent(text: str | None) -> tuple[str, int | None] | None:
    """``("name", N)`` from a ``derived_from`` fact (``name:vN``), or None."""
    if not text:
        return None
    name, sep, ver = text.rpartition(":")
    if not sep:
        return text, None
    digits = ver.lstrip("vV")
    return name, int(digits) if digits.isdigit() else None


class LineageIndex:
    """Parents of every version of one root, learned incrementally."""

    def __init__(self) -> None:
        self._parent: dict[tuple[str, int], tuple[str, int | None] | None] = {}
        self._entries_seen = 0
        self._lock = threading.Lock()

    def learn(self, infos: Iterable[VersionInfo]) -> None:
        with self._lock:
            for info in infos:
                self._parent[(info.name, info.version)] = parse_parent(info.derived_from)

    def refresh(self, reg: ModelRegistry, entries: list[dict[str, Any]]) -> None:
        """Read the parents of versions published since the last call."""
        with self._lock:
            if len(entries) < self._entries_seen:  # another root or a rewritten log
                self._parent.clear()
                self._entries_seen = 0
            fresh = entries[self._entries_seen :]
            self._entries_seen = len(entries)
            missing: dict[str, list[int]] = {}
            for e in fresh:
                number = _number(e.get("version"))
                if e.get("action") == "publish" and e.get("model") and number:
                    if (e["model"], number) not in self._parent:
                        missing.setdefault(e["model"], []).append(number)
        for model, numbers in missing.items():
            self.learn(_read(reg, model, numbers))

    def parent_of(self, model: str, version: int) -> tuple[str, int | None] | None:
        return self._parent.get((model, version))

    def children_of(self, model: str) -> list[Edge]:
        """Versions (of any model) derived from a version of ``model``."""
        with self._lock:
            found = [
                Edge(m, v, parent[0], parent[1])
                for (m, v), parent in self._parent.items()
                if parent is not None and parent[0] == model and m != model
            ]
        return sorted(found, key=lambda e: (e.model, e.version))


def _number(text: Any) -> int | None:
    digits = str(text or "").lstrip("vV")
    return int(digits) if digits.isdigit() else None


def _read(reg: ModelRegistry, model: str, numbers: list[int]) -> list[VersionInfo]:
    try:
        if len(numbers) > BULK:
            return reg.list_versions(model)
        out = []
        for n in numbers:
            try:
                out.append(reg.get(f"{model}:v{n}", with_bundle=False))
            except RegctlError:
                continue  # unreadable or gone: no lineage to show for it
        return out
    except RegctlError:
        return []
