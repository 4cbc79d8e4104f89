"""The search filters of MLflow's registry API that regctl answers.

``name = '...'``, ``name LIKE '...'`` (``%`` and ``_`` wildcards), ``run_id = '...'``
and ``tags.K = '...'`` (the key may be back-quoted), joined with ``AND``; also ``!=``
(MLflow's client itself adds ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every
model search). Anything else is refused naming the clause. Pure: a parsed filter
matches ``ModelVersion`` documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry_cli.errors import BadInput

_CLAUSE = re.compile(
    r"""\s*(?P<field>name|run_id|tags?\.(?:`[^`]+`|[A-Za-z0-9_.:/-]+))\s*
        (?P<op>!=|=|LIKE)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*\Z""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
SUPPORTED = "name = '...', name LIKE '...', run_id = '...', tags.KEY = '...' (joined with AND)"


@dataclass(frozen=True)
class Clause:
    field: str  # "name", "run_id" or "tags.KEY"
    op: str  # "=", "!=" or "LIKE"
    value: str

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.field == "name":
            got: str | None = doc.get("name")
        elif self.field == "run_id":
            got = doc.get("run_id")
        else:
            key = self.field[len("tags.") :]
            got = {t["key"]: t["value"] for t in doc.get("tags") or []}.get(key)
        if self.op == "!=":
            return got != self.value
        if got is None:
            return False
        if self.op == "LIKE":
            return like(self.value).fullmatch(got) is not None
        return got == self.value


def like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as a regex: ``%`` any run, ``_`` one character."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _split(text: str) -> list[str]:
    """Split on AND outside quotes."""
    parts, quote, start, i = [], "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch.isspace() and (found := _AND.match(text, i)):
            parts.append(text[start:i])
            start = i = found.end()
            continue
        i += 1
    parts.append(text[start:])
    return parts


def parse_filter(
    text: str | None, fields: tuple[str, ...] = ("name", "run_id", "tags")
) -> list[Clause]:
    """The clauses of ``text`` (none for an empty filter); BadInput naming a bad one."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _split(text.strip()):
        found = _CLAUSE.match(part)
        if not found:
            raise BadInput(f"unsupported filter {part.strip()!r}", hint=f"supported: {SUPPORTED}")
        field = found["field"]
        kind = "tags" if field.lower().startswith("tag") else field.lower()
        if kind not in fields:
            raise BadInput(f"unsupported filter {part.strip()!r}: {kind} is not searchable here")
        op = found["op"].upper()
        if op == "LIKE" and kind != "name":
            raise BadInput(f"unsupported filter {part.strip()!r}: LIKE applies to name only")
        if kind == "tags":
            key = field.split(".", 1)[1].strip("`")
            field = f"tags.{key}"
        else:
            field = kind
        raw = found["value"][1:-1]
        clauses.append(Clause(field, op, re.sub(r"\\(.)", r"\1", raw)))
    return clauses


def matches(clauses: list[Clause], doc: dict[str, Any]) -> bool:
    return all(c.matches(doc) for c in clauses)


def exact_name(clauses: list[Clause]) -> str | None:
    """The model a filter is limited to (``name = '...'``), to read only that model."""
    for clause in clauses:
        if clause.field == "name" and clause.op == "=":
            return clause.value
    return None


_ORDER = re.compile(r"\s*(?P<key>[A-Za-z_]+)(?:\s+(?P<dir>ASC|DESC))?\s*\Z", re.IGNORECASE)
ORDER_KEYS = {
    "name": lambda d: d["name"],
    "version_number": lambda d: int(d.get("version") or 0),
    "creation_timestamp": lambda d: d.get("creation_timestamp") or 0,
    "last_updated_timestamp": lambda d: d.get("last_updated_timestamp") or 0,
    "timestamp": lambda d: d.get("last_updated_timestamp") or 0,
}


def order(
    docs: list[dict[str, Any]], order_by: list[str], default: list[str], keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """``docs`` sorted by MLflow ``order_by`` clauses (``KEY [ASC|DESC]``, KEY in ``keys``)."""
    out = list(docs)
    for clause in reversed(order_by or default):
        found = _ORDER.match(clause)
        key = found["key"].lower() if found else ""
        if key not in keys:
            raise BadInput(
                f"invalid order_by clause {clause!r}",
                hint=f"order by {', '.join(keys)}, each with ASC or DESC",
            )
        descending = bool(found and (found["dir"] or "").upper() == "DESC")
        out.sort(key=ORDER_KEYS[key], reverse=descending)
    return out
