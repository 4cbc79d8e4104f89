"""Validation of everything a user names: models, versions, aliases, stages, metadata keys.

Checked at the door, before anything touches disk (see docs/concepts.md).
"""

from __future__ import annotations

import re

from registry_cli.errors import BadInput

SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
VERSION_RE = re.compile(r"v?0*([0-9]+)\Z")
VERSION_SEGMENT_RE = re.compile(r"[vV][0-9]+\Z")
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}\Z")

RESERVED_ALIASES = ("candidate", "champion", "rollback")

NAME_RULE = (
    "a model name is one or more '/'-separated segments, each 1-64 characters of "
    "letters, digits, '.', '_' or '-' starting with a letter or digit, and not like a version (v3)"
)


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`BadInput`."""
    if not isinstance(name, str) or not name:
        raise BadInput("model name is empty", hint=NAME_RULE)
    for segment in name.split("/"):
        if not SEGMENT_RE.match(segment):
            raise BadInput(f"invalid model name {name!r}: bad segment {segment!r}", hint=NAME_RULE)
        if VERSION_SEGMENT_RE.match(segment):
            raise BadInput(
                f"invalid model name {name!r}: segment {segment!r} looks like a version",
                hint=NAME_RULE,
            )
    return name


def parse_version(text: str | int) -> int:
    """``3``, ``"3"``, ``"v3"`` and ``"v0003"`` all mean version 3."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        m = VERSION_RE.match(str(text).strip())
        if not m:
            raise BadInput(f"invalid version {text!r}", hint="write versions as vN, e.g. v3")
        number = int(m.group(1))
    if number < 1:
        raise BadInput(f"invalid version {text!r}: versions start at v1")
    return number


def format_version(number: int) -> str:
    return f"v{number}"


def vname(number: int | None) -> str | None:
    """``vN``, or None for no version."""
    return f"v{number}" if number else None


def validate_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias or "") or VERSION_SEGMENT_RE.match(alias):
        raise BadInput(
            f"invalid alias {alias!r}",
            hint="aliases are 1-64 letters, digits, '_' or '-', starting with a letter",
        )
    return alias


def validate_key(key: str, what: str = "key") -> str:
    if not KEY_RE.match(key or ""):
        raise BadInput(
            f"invalid {what} {key!r}",
            hint=f"a {what} is 1-128 letters, digits and '_.:/-', "
            "starting with a letter, digit or '_'",
        )
    return key


def parse_key_values(items: list[str] | None, what: str) -> dict[str, str]:
    """Parse ``k=v`` pairs from the command line; later pairs win."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"invalid {what} {item!r}: expected KEY=VALUE")
        out[validate_key(key.strip(), what)] = value
    return out


def parse_metrics(items: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in parse_key_values(items, "metric").items():
        try:
            out[key] = float(value)
        except ValueError:
            raise BadInput(f"invalid metric {key}={value!r}: not a number") from None
    return out
