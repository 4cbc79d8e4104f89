"""A set of version numbers stored as compact ranges ("1-37,39-10000").

Keeps ``model.yaml`` a few lines long however many versions a model has, so
commands that read it (show, resolve, promote) cost the same at v10 and v10000.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class VersionSet:
    __slots__ = ("_items",)

    def __init__(self, items: Iterable[int] = ()) -> None:
        self._items: set[int] = set(items)

    @classmethod
    def parse(cls, text: str | int | None) -> VersionSet:
        if text is None or text == "":
            return cls()
        out: set[int] = set()
        for part in str(text).split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            if sep:
                a, b = int(lo), int(hi)
                if a < 1 or b < a:
                    raise ValueError(f"bad range {part!r}")
                out.update(range(a, b + 1))
            else:
                n = int(part)
                if n < 1:
                    raise ValueError(f"bad version {part!r}")
                out.add(n)
        return cls(out)

    def dump(self) -> str:
        parts: list[str] = []
        items = sorted(self._items)
        i = 0
        while i < len(items):
            j = i
            while j + 1 < len(items) and items[j + 1] == items[j] + 1:
                j += 1
            parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
            i = j + 1
        return ",".join(parts)

    def add(self, n: int) -> None:
        self._items.add(n)

    def discard(self, n: int) -> None:
        self._items.discard(n)

    def __contains__(self, n: object) -> bool:
        return n in self._items

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def max(self) -> int | None:
        return max(self._items) if self._items else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionSet) and self._items == other._items

    def __repr__(self) -> str:
        return f"VersionSet({self.dump()!r})"
