"""What each page shows, gathered from the same core calls the API makes.

Pure functions of a :class:`ModelRegistry` returning plain data for the
templates; no HTTP here, and no lifecycle rule: who is champion, what a
stage's LATEST is, which versions exist all come from the core as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from registry_cli.core.contract import Registry
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.types import ModelSummary, VersionInfo
from registry_cli.webui.chart import Chart, metric_charts
from registry_cli.webui.facts import Edge, VersionFacts

VERSIONS_PER_PAGE = 50
AUDIT_PER_PAGE = 100
RECENT_CHANGES = 15
CHAMPION_HISTORY = 30


# ----------------------------------------------------------------- models
@dataclass
class ModelRow:
    summary: ModelSummary

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def prefix(self) -> str:
        head, sep, _ = self.summary.name.rpartition("/")
        return head + sep

    @property
    def leaf(self) -> str:
        return self.summary.name.rpartition("/")[2]


def matches(name: str, query: str) -> bool:
    """Every word of ``query`` occurs in ``name`` (case-insensitive)."""
    lowered = name.lower()
    return all(word in lowered for word in query.lower().split())


def model_rows(reg: Registry, query: str = "") -> tuple[list[ModelRow], int]:
    """The models whose names match ``query`` (sorted by name), and how many exist."""
    every = reg.list_models()
    shown = [ModelRow(m) for m in every if matches(m.name, query)]
    shown.sort(key=lambda r: r.name)
    return shown, len(every)


# ----------------------------------------------------------------- model
@dataclass
class ChampionChange:
    time: str
    actor: str
    action: str
    old: str | None
    new: str | None
    reason: str | None
    forced: bool


@dataclass
class ModelPage:
    name: str
    description: str | None
    stages: tuple[str, ...]
    total: int
    page: int
    pages: int
    rows: list[VersionInfo]
    aliases: dict[str, str]
    latest: dict[str, str | None]
    charts: list[Chart]
    champion_history: list[ChampionChange]
    recent: list[dict[str, Any]]
    parents: list[tuple[str, str, str]]  # (version, parent model, parent version)
    children: list[Edge]
    newest: str | None = None


def champion_changes(entries: list[dict[str, Any]]) -> list[ChampionChange]:
    """Every move of ``@champion`` in ``entries`` (newest first), as the audit recorded it."""
    out = []
    for e in entries:
        details = e.get("details") or {}
        moved = (details.get("aliases") or {}).get("champion")
        if not moved or details.get("noop"):
            continue
        out.append(
            ChampionChange(
                time=str(e.get("time", "")),
                actor=str(e.get("actor", "")),
                action=str(e.get("action", "")),
                old=moved[0],
                new=moved[1],
                reason=details.get("reason"),
                forced=bool(details.get("forced")),
            )
        )
    out.reverse()
    return out


def model_page(
    reg: ModelRegistry, name: str, page: int, facts: VersionFacts, entries: list[dict[str, Any]]
) -> ModelPage:
    """One page of a model: the rows of this page read from the core, the charts and
    lineage from the versions' immutable facts (read once per server)."""
    state = reg.model_state(name)
    numbers = list(state.versions)
    facts.ensure(reg, name, numbers)
    facts.refresh(reg, entries)
    pages = max(1, math.ceil(len(numbers) / VERSIONS_PER_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * VERSIONS_PER_PAGE
    shown = sorted(numbers, reverse=True)[start : start + VERSIONS_PER_PAGE]
    if len(numbers) <= 2 * VERSIONS_PER_PAGE:  # one listing is cheaper than a get per row
        by_number = {i.version: i for i in reg.list_versions(name)}
        rows = [by_number[n] for n in shown if n in by_number]
    else:
        rows = [reg.get(f"{name}:v{n}", with_bundle=False) for n in shown]
    mine = [e for e in entries if e.get("model") == name]
    parents = []
    for n in numbers:
        parent = facts.parent_of(name, n)
        if parent is not None:
            parents.append((f"v{n}", parent[0], f"v{parent[1]}" if parent[1] else ""))
    active = [v for v in numbers if v not in state.archived]
    return ModelPage(
        name=name,
        description=state.description,
        stages=reg.stages,
        total=len(numbers),
        page=page,
        pages=pages,
        rows=rows,
        aliases={a: f"v{v}" for a, v in sorted(state.all_aliases().items())},
        latest={s: (f"v{state.latest[s]}" if state.latest.get(s) else None) for s in reg.stages},
        charts=metric_charts(
            {n: facts.metrics(name, n) for n in numbers},
            champion=state.aliases.get("champion"),
            archived=set(state.archived),
        ),
        champion_history=champion_changes(mine)[:CHAMPION_HISTORY],
        recent=list(reversed(mine[-RECENT_CHANGES:])),
        parents=parents,
        children=facts.children_of(name),
        newest=f"v{max(active)}" if active else None,
    )


# ----------------------------------------------------------------- version
@dataclass
class DiffRow:
    key: str
    left: str | None
    right: str | None

    @property
    def differs(self) -> bool:
        return self.left != self.right


@dataclass
class Comparison:
    other: VersionInfo
    sections: dict[str, list[DiffRow]]

    @property
    def differences(self) -> int:
        return sum(r.differs for rows in self.sections.values() for r in rows)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rows(left: dict[str, Any], right: dict[str, Any]) -> list[DiffRow]:
    return [DiffRow(k, _text(left.get(k)), _text(right.get(k))) for k in sorted({*left, *right})]


def compare(this: VersionInfo, other: VersionInfo) -> Comparison:
    """The two versions' metrics, params, tags and files side by side."""

    def files(info: VersionInfo) -> dict[str, str]:
        return {
            f["path"]: f"{f.get('size', '?')} B · {str(f.get('sha256', ''))[:12]}"
            for f in info.files
        }

    def facts(info: VersionInfo) -> dict[str, str | None]:
        signature = info.signature or {}
        return {
            "status": info.status,
            "stages": ", ".join(info.stages),
            "aliases": ", ".join(f"@{a}" for a in info.aliases) or None,
            "created_by": info.created_by,
            "derived_from": info.derived_from,
            "preferred_weight": info.preferred_weight,
            "signature": ", ".join(f"{k}: {v}" for k, v in sorted(signature.items())) or None,
            "description": info.description,
        }

    return Comparison(
        other=other,
        sections={
            "facts": _rows(facts(this), facts(other)),
            "metrics": _rows(this.metrics, other.metrics),
            "params": _rows(this.params, other.params),
            "tags": _rows(this.tags, other.tags),
            "files": _rows(files(this), files(other)),
        },
    )


# ----------------------------------------------------------------- audit
@dataclass
class AuditView:
    entries: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    actions: list[str]
    actors: list[str]
    models: list[str]


def audit_view(
    entries: list[dict[str, Any]], *, model: str, action: str, actor: str, page: int
) -> AuditView:
    """``entries`` filtered (exact model/action/actor; empty means any), newest first."""
    chosen = [
        e
        for e in entries
        if (not model or e.get("model") == model)
        and (not action or e.get("action") == action)
        and (not actor or e.get("actor") == actor)
    ]
    chosen.reverse()
    pages = max(1, math.ceil(len(chosen) / AUDIT_PER_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * AUDIT_PER_PAGE
    return AuditView(
        entries=chosen[start : start + AUDIT_PER_PAGE],
        total=len(chosen),
        page=page,
        pages=pages,
        actions=sorted({str(e.get("action")) for e in entries if e.get("action")}),
        actors=sorted({str(e.get("actor")) for e in entries if e.get("actor")}),
        models=sorted({str(e.get("model")) for e in entries if e.get("model")}),
    )


def details_text(details: Any) -> str:
    """An audit entry's details on one line (``key: value; ...``)."""
    if not isinstance(details, dict):
        return "" if details is None else str(details)
    parts = []
    for key, value in details.items():
        if isinstance(value, dict):
            inner = ", ".join(
                f"{k} {v[0] or '-'} → {v[1] or '-'}"
                if isinstance(v, list) and len(v) == 2
                else f"{k}={v}"
                for k, v in value.items()
            )
            parts.append(f"{key}: {inner}")
        elif isinstance(value, list) and len(value) == 2 and key == "status":
            parts.append(f"{key}: {value[0]} → {value[1]}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)
