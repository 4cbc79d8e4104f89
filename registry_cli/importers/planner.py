"""The plan of an import: for each source version, ``import``, ``skip`` or ``report``.

A version is already imported when a local version of the same model records
its identity in ``source.uri`` (``models:/NAME/N`` for MLflow). Numbers: where
every label of a model is a plain integer (``v0005``, ``5``) it is kept; else
the versions are numbered 1, 2, 3 ... in the source's order. When a number is
taken locally the imported versions move above the local ones by one offset,
so they keep their order and their gaps; a rerun reuses the offset the
earlier run chose (read back from the versions it imported), so a version
that arrives late (or whose publish was killed) still gets its own number
when no version holds it. Only a number a local version holds sends a
version on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry_cli.core.names import format_version, parse_version
from registry_cli.core.registry import ModelRegistry
from registry_cli.errors import BadInput, NotFound
from registry_cli.importers.source import SourceModel, SourceRegistry, SourceVersion


@dataclass
class PlanRow:
    model: str
    version: str | None  # the local version ("v5"): planned, or already there
    source: str  # the source identity
    action: str  # "import" | "skip" | "report"
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class ModelPlan:
    model: SourceModel
    numbers: dict[str, int] = field(default_factory=dict)  # label -> local number
    present: set[str] = field(default_factory=set)  # labels imported by an earlier run
    to_import: list[SourceVersion] = field(default_factory=list)
    rows: list[PlanRow] = field(default_factory=list)


@dataclass
class Plan:
    source: SourceRegistry
    models: list[ModelPlan]

    @property
    def rows(self) -> list[PlanRow]:
        return [row for m in self.models for row in m.rows]

    def bytes_to_fetch(self) -> int:
        return sum(v.size or 0 for m in self.models for v in m.to_import)


def ordinals(model: SourceModel) -> dict[str, int]:
    """Each label's number in the source: the integer it is, else its position."""
    try:
        found = {v.label: parse_version(v.label) for v in model.versions}
    except BadInput:
        return {v.label: i for i, v in enumerate(model.versions, start=1)}
    if len(set(found.values())) != len(found):
        seen: dict[int, str] = {}
        for label, n in found.items():
            if n in seen:
                raise BadInput(
                    f"{model.name}: versions {seen[n]!r} and {label!r} are the same number"
                )
            seen[n] = label
    return found


def _local_versions(
    reg: ModelRegistry, name: str, identify: Callable[[Any], str | None] | None = None
) -> tuple[dict[str, int], set[int]]:
    """Identities of a model's local versions, and the numbers its versions hold."""
    try:
        state = reg.model_state(name)
    except NotFound:
        return {}, set()
    by_identity: dict[str, int] = {}
    for info in reg.list_versions(name):
        uri = identify(info) if identify is not None else info.source.get("uri")
        if isinstance(uri, str):
            by_identity[uri] = info.version
    # numbers a killed publish reserved but never listed are free again for an importer
    # (the core grants Produced.version for them); numbers of listed versions are not
    return by_identity, set(state.versions)


def plan_model(
    reg: ModelRegistry, model: SourceModel, identify: Callable[[Any], str | None] | None = None
) -> ModelPlan:
    out = ModelPlan(model)
    numbers = ordinals(model)
    local, held = _local_versions(reg, model.name, identify)
    next_free = max(held, default=0) + 1
    imported: list[tuple[int, int]] = []
    remaining: list[SourceVersion] = []
    for v in sorted(model.versions, key=lambda x: numbers[x.label]):
        if v.identity in local:
            out.present.add(v.label)
            out.numbers[v.label] = local[v.identity]
            imported.append((numbers[v.label], local[v.identity]))
        elif v.problem is None:
            remaining.append(v)
    if imported:
        top, at = max(imported)
        offset = at - top
    elif remaining:
        offset = max(0, next_free - numbers[remaining[0].label])
    else:
        offset = 0
    late: list[SourceVersion] = []
    for v in remaining:
        wanted = numbers[v.label] + offset
        if wanted in held:  # a local version holds it: placed above them all, in order
            late.append(v)
            continue
        out.numbers[v.label] = wanted  # its own number (also below a version imported since)
        held.add(wanted)
    next_free = max(held, default=0) + 1
    for v in late:
        out.numbers[v.label] = next_free
        next_free += 1
    out.to_import = sorted(remaining, key=lambda x: out.numbers[x.label])
    for v in sorted(model.versions, key=lambda x: numbers[x.label]):
        number = out.numbers.get(v.label)
        if v.label in out.present:
            row = PlanRow(model.name, format_version(number or 0), v.identity, "skip")
            row.reason = "already imported"
        elif v.problem is not None:
            row = PlanRow(model.name, None, v.identity, "report", v.problem)
        else:
            row = PlanRow(model.name, format_version(number or 0), v.identity, "import")
        out.rows.append(row)
    return out


def make_plan(reg: ModelRegistry, source: SourceRegistry) -> Plan:
    """The plan against the registry as it is now (reads only)."""
    return Plan(source, [plan_model(reg, m, source.identify) for m in source.models])
