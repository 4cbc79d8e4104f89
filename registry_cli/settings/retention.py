"""The ``retention:`` section: which versions ``regctl prune`` (without flags) retires.

Either one rule for every model::

    retention: {keep_last: 10, older_than_days: 30}

or a list of rules, each for the models whose name matches ``pattern`` (shell-style,
``*`` crosses ``/``); the first rule that matches a model applies to it, and a model
no rule matches is left alone::

    retention:
      - {pattern: "team/ppe*", keep_last: 5}
      - {pattern: "*", keep_last: 20, older_than_days: 90}

Pure: imports only the standard library.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

KEYS = {"pattern", "keep_last", "older_than_days"}


@dataclass(frozen=True)
class RetentionRule:
    pattern: str
    keep_last: int
    older_than_days: float | None = None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)


def parse_retention(value: Any) -> tuple[RetentionRule, ...]:
    """The rules of ``retention:``; ValueError naming what is wrong."""
    if value is None:
        return ()
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise ValueError("retention must be a mapping or a list of mappings")
    rules = []
    for i, item in enumerate(items):
        where = f"retention[{i}]" if isinstance(value, list) else "retention"
        if not isinstance(item, dict) or set(item) - KEYS:
            raise ValueError(f"{where} has only {', '.join(sorted(KEYS))}")
        keep = item.get("keep_last")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"{where}.keep_last must be a whole number >= 0")
        days = item.get("older_than_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))):
            raise ValueError(f"{where}.older_than_days must be a number of days")
        if days is not None and days < 0:
            raise ValueError(f"{where}.older_than_days must be >= 0")
        pattern = item.get("pattern", "*")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{where}.pattern must be a model name pattern")
        rules.append(RetentionRule(pattern, keep, None if days is None else float(days)))
    return tuple(rules)


def rule_for(rules: tuple[RetentionRule, ...], name: str) -> RetentionRule | None:
    return next((r for r in rules if r.matches(name)), None)
