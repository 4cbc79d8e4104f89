"""What an importer reads from a system regctl replaces, before anything is written.

Each source module (``mlflow``, ``ftp_tree``, ``yaml_registry``, ``sqlite_registry``)
turns its system into one :class:`SourceRegistry`: every model, every version
with its facts and a way to fetch its files, and the lifecycle the versions
should end in (stage members in the order they entered, LATEST, champion,
aliases, archived, old audit entries). Reading it writes nothing; a malformed
source raises :class:`~registry_cli.errors.BadInput` (exit 2) here, so nothing
is imported at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.errors import NotFound


class Unfetchable(NotFound):
    """A version whose files this importer cannot fetch: reported, never invented."""


@dataclass
class Fetched:
    """A version's files, brought to this machine.

    ``files`` are ``(file, path inside payload/)`` pairs; with ``move`` they sit in
    the scratch folder the fetch was given and are renamed into the version,
    else they are copied (files of a local source). ``metrics``, ``params``,
    ``source`` and ``signature`` complete facts only known once fetched.
    """

    files: list[tuple[Path, str]]
    move: bool = True
    metrics: dict[str, float] | None = None
    params: dict[str, str] | None = None
    source: dict[str, Any] | None = None
    signature: dict[str, Any] | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    created_at: str | None = None
    created_by: str | None = None
    standard_artifacts: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] | None = None  # more immutable facts kept as they were (license, card)


def fetched_as_recorded(
    facts: dict[str, Any],
    files: list[tuple[Path, str]],
    *,
    move: bool,
    extra: dict[str, Any] | None = None,
) -> Fetched:
    """A version whose facts travel with it (a regctl ``manifest.json``, e.g. in an OCI
    artifact's config): every recorded fact is kept as it was."""
    return Fetched(
        files=files,
        move=move,
        metrics=dict(facts.get("metrics") or {}),
        params=dict(facts.get("params") or {}),
        source=dict(facts.get("source") or {}),
        signature=facts.get("signature"),
        description=facts.get("description"),
        tags=dict(facts.get("tags") or {}),
        created_at=facts.get("created_at"),
        created_by=facts.get("created_by"),
        standard_artifacts=dict(facts.get("standard_artifacts") or {}),
        facts=extra,
    )


Fetch = Callable[[Path], Fetched]
"""Bring a version's files into the given empty scratch folder (verifying them)."""


@dataclass
class SourceVersion:
    """One version as the old system knows it."""

    label: str  # as the source names it: "v0003", "3", "1.0.0"
    identity: str  # recorded as source["uri"]; a rerun skips versions already carrying it
    source: dict[str, Any]
    fetch: Fetch | None  # None: nothing this importer can fetch (see ``problem``)
    problem: str | None = None  # known before fetching: reported, never invented
    size: int | None = None  # bytes to fetch, when the source says
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    created_at: str | None = None
    created_by: str | None = None
    archived: bool = False


@dataclass
class AuditRecord:
    """An entry of the old system's audit trail, appended as it was."""

    identity: str  # recorded as details.imported_from; a rerun skips entries already there
    time: str
    actor: str
    action: str
    version_label: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceModel:
    """A model and the lifecycle its versions should end in."""

    name: str
    versions: list[SourceVersion]  # in the source's order
    # stage (after the first) -> labels in the order they entered it; the last one
    # ends as that stage's LATEST (and champion for the last stage)
    promotions: dict[str, list[str]] = field(default_factory=dict)
    # the first stage's LATEST as the source had it; None: regctl's rule (the newest)
    first_latest: str | None = None
    keep_first_latest: bool = False
    # the candidate as the source had it; unless explicit, regctl's rule (the newest)
    candidate: str | None = None
    explicit_candidate: bool = False
    aliases: dict[str, str] = field(default_factory=dict)  # user aliases -> label
    audit: list[AuditRecord] = field(default_factory=list)

    def version(self, label: str) -> SourceVersion | None:
        for v in self.versions:
            if v.label == label:
                return v
        return None


@dataclass
class SourceRegistry:
    """Everything read from one old system."""

    kind: str  # "mlflow" | "ftp-registry" | "yaml-registry" | "sqlite-registry"
    display: str  # where it came from, without secrets: for reasons and messages
    models: list[SourceModel]
    parallel_fetches: int = 1  # fetches that may run at once (one FTP session: 1)
    notes: list[str] = field(default_factory=list)  # warnings found while reading
    close: Callable[[], None] = lambda: None
    # how a local version names its origin (default: ``source.uri``); with ``keep_source``
    # the source's own ``source`` is recorded unchanged (a regctl export carries it)
    identify: Callable[[Any], str | None] | None = None
    keep_source: bool = False
    # after the versions and their lifecycle: what else a source brings (signatures)
    finish: Callable[[Any, Any], None] | None = None


def chain_promotions(model: SourceModel, stages: tuple[str, ...]) -> None:
    """A version in a later stage went through the earlier ones (no skipping): add it
    to each earlier stage it is missing from, ahead of that stage's own order."""
    for k in range(len(stages) - 1, 1, -1):
        later = model.promotions.get(stages[k], [])
        earlier = model.promotions.setdefault(stages[k - 1], [])
        missing = [label for label in later if label not in earlier]
        model.promotions[stages[k - 1]] = missing + earlier
