"""What a root offers as OCI (see docs/oci.md): per model, its tags and each
version's artifact, and where each blob's bytes are in the store.

Tags of a model: ``vN`` for every version whose payload is kept (archived ones too,
as ``dist/`` keeps them for pinned clients), each stage name for that stage's
LATEST, and each alias (``rollback`` included). A stage name wins over an alias of
the same name, and ``vN`` over both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from registry_cli.core.names import parse_version
from registry_cli.core.signatures import SIG_FOLDER, SIG_SUFFIX, signature_names
from registry_cli.errors import BadInput, NotFound
from registry_cli.oci import mapping
from registry_cli.storage import layout

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.core.state import ModelState


@dataclass(frozen=True)
class Entry:
    """One version as OCI: its artifact and what points at it now."""

    artifact: mapping.Artifact
    number: int
    stages: list[str]
    latest_of: list[str]
    aliases: list[str]
    archived: bool = False

    @property
    def tags(self) -> list[str]:
        return mapping.tags_of(self.artifact.version, self.latest_of, self.aliases)

    def annotations(self) -> dict[str, str]:
        return mapping.descriptor_annotations(
            self.artifact, self.stages, self.latest_of, self.aliases, archived=self.archived
        )


def _kept(state: ModelState) -> list[int]:
    return [v for v in state.versions if state.status_of(v) != "purged"]


def tags(reg: ModelRegistry, state: ModelState) -> dict[str, int]:
    """Every tag of a model and the version it names."""
    out: dict[str, int] = {}
    kept = set(_kept(state))
    for alias, number in state.all_aliases().items():
        if number in kept:
            out[alias] = number
    for stage in reg.stages:
        latest = state.latest.get(stage)
        if latest is not None and latest in kept:
            out[stage] = latest
    for number in sorted(kept):
        out[f"v{number}"] = number
    return out


def resolve(reg: ModelRegistry, state: ModelState, tag: str) -> int:
    """The version a tag names; :class:`NotFound` for an unknown tag."""
    found = tags(reg, state).get(tag)
    if found is None and tag[:1] in "vV" and tag[1:].isdigit():
        try:
            found = tags(reg, state).get(f"v{parse_version(tag)}")
        except BadInput:
            found = None
    if found is None:
        raise NotFound(f"{state.name} has no tag {tag!r}")
    return found


def entry(reg: ModelRegistry, state: ModelState, number: int) -> Entry:
    facts = reg.versions.facts(state.name, number)
    aliases = state.aliases_of(number)
    latest_of = [s for s in reg.stages if state.latest.get(s) == number]
    return Entry(
        mapping.artifact_of(facts),
        number,
        state.stages_of(number, reg.stages),
        latest_of,
        aliases,
        archived=number in state.archived,
    )


def blob_key(reg: ModelRegistry, name: str, number: int, layer: mapping.Layer) -> str:
    """Where a layer's bytes are: its blob on a content-addressed root, else the
    version's payload file."""
    key = layout.blob_key(layer.sha256)
    if reg.store.kind(key) == "file":
        return key
    return f"{layout.version_key(name, number)}/{layer.path}"


def signatures(reg: ModelRegistry, name: str, number: int) -> list[tuple[str, bytes]]:
    """``(signer, signature bytes)`` of every signature the version carries."""
    vkey = layout.version_key(name, number)
    return [
        (signer, reg.store.read(f"{vkey}/{SIG_FOLDER}/{signer}{SIG_SUFFIX}"))
        for signer in sorted(signature_names(reg.store, name, number))
    ]
