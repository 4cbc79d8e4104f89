"""References: ``NAME``, ``NAME:vN``, ``NAME:latest``, ``NAME:best``, ``NAME@alias``:
parsing, and resolving them against a model state as pure functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry_cli.core import lifecycle
from registry_cli.core.names import parse_version, validate_alias, validate_model_name
from registry_cli.core.state import ModelState
from registry_cli.errors import BadInput, NotFound


@dataclass(frozen=True)
class Ref:
    """A parsed reference. Exactly one of ``version``/``alias``/``selector`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    selector: str | None = None  # "latest" or "best"

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:v{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.selector}"


def parse_ref(text: str) -> Ref:
    """Parse a reference string; raise :class:`BadInput` on anything malformed."""
    text = (text or "").strip()
    if "@" in text:
        name, _, alias = text.rpartition("@")
        return Ref(validate_model_name(name), alias=validate_alias(alias))
    if ":" in text:
        name, _, spec = text.rpartition(":")
        validate_model_name(name)
        if spec in ("latest", "best"):
            return Ref(name, selector=spec)
        try:
            return Ref(name, version=parse_version(spec))
        except BadInput:
            raise BadInput(
                f"invalid reference {text!r}",
                hint="use NAME, NAME:vN, NAME:latest, NAME:best or NAME@alias",
            ) from None
    return Ref(validate_model_name(text), selector="latest")


@dataclass(frozen=True)
class BestBy:
    """How ``NAME:best`` ranks versions: a metric and ``max``/``min``."""

    metric: str | None
    mode: str = "max"


def resolve_number(
    state: ModelState,
    ref: Ref,
    stages: tuple[str, ...],
    *,
    stage: str | None = None,
    best: BestBy = BestBy(None),
    metrics_of: Callable[[int], dict[str, Any]] | None = None,
) -> int:
    """The version number ``ref`` names in ``state`` (see docs/concepts.md).

    ``metrics_of(v)`` reads a version's recorded metrics; only ``best`` needs it.
    """
    if ref.version is not None:
        lifecycle.require_version(state, ref.version)
        return ref.version
    if ref.alias is not None:
        found = state.all_aliases().get(ref.alias)
        if found is None:
            raise NotFound(
                f"{state.name} has no alias {ref.alias!r}",
                hint=f"aliases: {', '.join(state.all_aliases()) or 'none'}",
            )
        return found
    if stage is not None:
        lifecycle.require_stage(stage, stages)
    if ref.selector == "latest":
        if stage is not None:
            latest = state.latest.get(stage)
            if latest is None:
                raise NotFound(f"{state.name} has no LATEST in stage {stage!r}")
            return latest
        active = state.active()
        if not active:
            raise NotFound(f"{state.name} has no active version")
        return max(active)
    if not best.metric:
        raise BadInput("'best' needs a metric", hint="pass --metric M (or set best.metric)")
    if best.mode not in ("max", "min"):
        raise BadInput(f"--mode must be max or min, not {best.mode!r}")
    candidates = state.active()
    if stage is not None:
        candidates = [v for v in candidates if state.in_stage(v, stage, stages[0])]
    scored = []
    for v in candidates:
        value = (metrics_of(v) if metrics_of else {}).get(best.metric)
        if value is not None:
            scored.append((float(value), v))
    if not scored:
        raise NotFound(f"no active version of {state.name} has metric {best.metric!r}")
    chosen = max(scored) if best.mode == "max" else min(scored, key=lambda t: (t[0], -t[1]))
    return chosen[1]


def version_of(
    state: ModelState,
    given: str | int,
    stages: tuple[str, ...],
    *,
    best: BestBy = BestBy(None),
    metrics_of: Callable[[int], dict[str, Any]] | None = None,
) -> int:
    """A version argument of a lifecycle command: ``vN``/``N``, ``@alias``,
    ``latest``/``best``, or a full reference to this same model."""
    if isinstance(given, int):
        return parse_version(given)
    text = str(given)
    if text.startswith("@"):
        ref = Ref(state.name, alias=validate_alias(text[1:]))
    elif ":" in text or "@" in text:
        ref = parse_ref(text)
        if ref.name != state.name:
            raise BadInput(f"{text!r} is not a version of {state.name}")
    elif text in ("latest", "best"):
        ref = Ref(state.name, selector=text)
    else:
        return parse_version(text)
    return resolve_number(state, ref, stages, best=best, metrics_of=metrics_of)
