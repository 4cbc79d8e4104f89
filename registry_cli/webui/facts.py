"""What never changes about a published version, kept in memory: its metrics and
what it was derived from.

A version's manifest is immutable and its number is never reused, so once read,
these facts hold for the life of the server. Pages ask for them instead of
re-reading thousands of manifests: the metric charts of a model and its lineage
both ways ("derived from", and "what was derived from this model").
:meth:`VersionFacts.refresh` learns versions of every model from the audit log,
which has one ``publish`` line per version (imports publish too): each model
page reads that log anyway, and only versions not seen before are read from
the registry (a whole model at once when it has many new ones). Everything
that can change (status, stages, aliases, tags) is read from the core on
every request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from registry_cli.core.contract import Registry
from registry_cli.core.types import VersionInfo
from registry_cli.errors import RegctlError

BULK = 20  # more unknown versions than this in one model: list them all at once


@dataclass(frozen=True)
class Edge:
    model: str
    version: int
    parent_model: str
    parent_version: int | None


@dataclass(frozen=True)
class Known:
    parent: tuple[str, int | None] | None
    metrics: dict[str, Any]


def parse_parent(text: str | None) -> tuple[str, int | None] | None:
    """``("name", N)`` from a ``derived_from`` fact (``name:vN``), or None."""
    if not text:
        return None
    name, sep, ver = text.rpartition(":")
    if not sep:
        return text, None
    digits = ver.lstrip("vV")
    return name, int(digits) if digits.isdigit() else None


class VersionFacts:
    """Immutable facts of the versions of one root, learned as pages need them."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], Known] = {}
        self._entries_seen = 0
        self._lock = threading.Lock()

    def learn(self, infos: Iterable[VersionInfo]) -> None:
        with self._lock:
            for info in infos:
                self._known[(info.name, info.version)] = Known(
                    parse_parent(info.derived_from), dict(info.metrics)
                )

    def ensure(self, reg: Registry, model: str, numbers: Iterable[int]) -> None:
        """Read the facts of ``model``'s versions ``numbers`` not known yet."""
        with self._lock:
            missing = [n for n in numbers if (model, n) not in self._known]
        if missing:
            self.learn(_read(reg, model, missing, strict=True))

    def refresh(self, reg: Registry, entries: list[dict[str, Any]]) -> None:
        """Learn the versions published since the last call (``entries``: the audit log)."""
        with self._lock:
            if len(entries) < self._entries_seen:  # another root or a rewritten log
                self._known.clear()
                self._entries_seen = 0
            fresh = entries[self._entries_seen :]
            self._entries_seen = len(entries)
            missing: dict[str, list[int]] = {}
            for e in fresh:
                number = _number(e.get("version"))
                if e.get("action") == "publish" and e.get("model") and number:
                    if (e["model"], number) not in self._known:
                        missing.setdefault(e["model"], []).append(number)
        for model, numbers in missing.items():
            self.learn(_read(reg, model, numbers, strict=False))

    def metrics(self, model: str, version: int) -> dict[str, Any]:
        known = self._known.get((model, version))
        return known.metrics if known else {}

    def parent_of(self, model: str, version: int) -> tuple[str, int | None] | None:
        known = self._known.get((model, version))
        return known.parent if known else None

    def children_of(self, model: str) -> list[Edge]:
        """Versions (of other models) derived from a version of ``model``."""
        with self._lock:
            found = [
                Edge(m, v, known.parent[0], known.parent[1])
                for (m, v), known in self._known.items()
                if known.parent is not None and known.parent[0] == model and m != model
            ]
        return sorted(found, key=lambda e: (e.model, e.version))


def _number(text: Any) -> int | None:
    digits = str(text or "").lstrip("vV")
    return int(digits) if digits.isdigit() else None


def _read(reg: Registry, model: str, numbers: list[int], *, strict: bool) -> list[VersionInfo]:
    """The versions ``numbers`` of ``model``; ``strict=False`` skips what cannot be read."""
    try:
        if len(numbers) > BULK:
            wanted = set(numbers)
            return [i for i in reg.list_versions(model) if i.version in wanted]
        out = []
        for n in numbers:
            try:
                out.append(reg.get(f"{model}:v{n}", with_bundle=False))
            except RegctlError:
                if strict:
                    raise
        return out
    except RegctlError:
        if strict:
            raise
        return []
