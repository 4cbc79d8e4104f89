"""``model.yaml``: the mutable state of one model, kept small on purpose.

Every version is in the first stage, so only later stages list members.
Membership sets are stored as ranges (:class:`VersionSet`); stage-entry times
are stored only for later stages (the first stage's is the version's
``created_at``); tags only for versions retagged after publishing. The
``rollback`` alias is not stored: it is always the top of ``history``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry_cli.core.names import format_version, parse_version
from registry_cli.core.versionset import VersionSet

STATE_FORMAT = 1


class StateFormatError(ValueError):
    """model.yaml does not have the expected shape."""


def dump_state_text(doc: dict[str, Any]) -> str:
    """model.yaml is written in JSON syntax, which is valid YAML: readers parse it
    with ``json`` (fast, no YAML import on the CLI's hot path); a hand-edited
    file in block YAML still loads through the YAML fallback."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def load_state_text(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        import yaml

        try:
            return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML: {exc}") from None


@dataclass
class ModelState:
    name: str
    next_version: int = 1
    description: str | None = None
    versions: VersionSet = field(default_factory=VersionSet)
    archived: VersionSet = field(default_factory=VersionSet)
    purged: VersionSet = field(default_factory=VersionSet)  # archived, payload deleted
    stages: dict[str, VersionSet] = field(default_factory=dict)
    latest: dict[str, int | None] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    history: list[int] = field(default_factory=list)
    stage_entered: dict[str, dict[int, str]] = field(default_factory=dict)
    tags: dict[int, dict[str, str]] = field(default_factory=dict)

    # -- derived views -------------------------------------------------
    def all_aliases(self) -> dict[str, int]:
        """Every alias including the derived ``rollback`` (top of the champion history)."""
        out = dict(self.aliases)
        if self.history:
            out["rollback"] = self.history[-1]
        return dict(sorted(out.items()))

    def aliases_of(self, version: int) -> list[str]:
        return [a for a, v in self.all_aliases().items() if v == version]

    def in_stage(self, version: int, stage: str, first_stage: str) -> bool:
        if version not in self.versions:
            return False
        return stage == first_stage or version in self.stages.get(stage, VersionSet())

    def stages_of(self, version: int, stages: tuple[str, ...]) -> list[str]:
        return [s for s in stages if self.in_stage(version, s, stages[0])]

    def status_of(self, version: int) -> str:
        if version in self.purged:
            return "purged"
        return "archived" if version in self.archived else "active"

    def active(self) -> list[int]:
        return [v for v in self.versions if v not in self.archived]

    # -- serialisation -------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "format_version": STATE_FORMAT,
            "kind": "regctl/model",
            "name": self.name,
            "description": self.description,
            "next_version": self.next_version,
            "versions": self.versions.dump(),
            "archived": self.archived.dump(),
            **({"purged": self.purged.dump()} if self.purged else {}),
            "stages": {s: vs.dump() for s, vs in sorted(self.stages.items())},
            "latest": {s: (format_version(v) if v else None) for s, v in self.latest.items()},
            "aliases": {a: format_version(v) for a, v in sorted(self.aliases.items())},
            "champion_history": [format_version(v) for v in self.history],
            "stage_entered": {
                s: {format_version(v): t for v, t in sorted(m.items())}
                for s, m in sorted(self.stage_entered.items())
            },
            "tags": {format_version(v): dict(t) for v, t in sorted(self.tags.items())},
        }

    @classmethod
    def from_doc(cls, doc: Any) -> ModelState:
        if not isinstance(doc, dict):
            raise StateFormatError("not a mapping")
        if doc.get("format_version") != STATE_FORMAT or doc.get("kind") != "regctl/model":
            raise StateFormatError(
                f"unsupported format_version {doc.get('format_version')!r} "
                f"/ kind {doc.get('kind')!r}"
            )
        try:
            state = cls(
                name=str(doc["name"]),
                next_version=int(doc["next_version"]),
                description=doc.get("description"),
                versions=VersionSet.parse(doc.get("versions")),
                archived=VersionSet.parse(doc.get("archived")),
                purged=VersionSet.parse(doc.get("purged")),
                stages={str(s): VersionSet.parse(v) for s, v in (doc.get("stages") or {}).items()},
                latest={
                    str(s): (parse_version(v) if v else None)
                    for s, v in (doc.get("latest") or {}).items()
                },
                aliases={str(a): parse_version(v) for a, v in (doc.get("aliases") or {}).items()},
                history=[parse_version(v) for v in doc.get("champion_history") or []],
                stage_entered={
                    str(s): {parse_version(v): str(t) for v, t in (m or {}).items()}
                    for s, m in (doc.get("stage_entered") or {}).items()
                },
                tags={
                    parse_version(v): {str(k): str(x) for k, x in (t or {}).items()}
                    for v, t in (doc.get("tags") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFormatError(f"malformed model state: {exc}") from None
        if "rollback" in state.aliases:
            raise StateFormatError("'rollback' is derived from champion_history, not stored")
        return state
