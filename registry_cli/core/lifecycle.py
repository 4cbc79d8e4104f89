"""The lifecycle rules (docs/concepts.md) as pure functions on :class:`ModelState`.

Each function checks its rule, mutates the state it is given and returns the
``details`` for the audit line. Nothing here touches disk: the registry calls
these under the model lock and persists the state afterwards.
"""

from __future__ import annotations

from typing import Any

from registry_cli.core.gates import StageGate
from registry_cli.core.names import RESERVED_ALIASES, format_version, vname
from registry_cli.core.state import ModelState
from registry_cli.core.versionset import VersionSet
from registry_cli.errors import BadInput, GateFailed, NotFound, RuleViolation


def require_version(state: ModelState, version: int) -> None:
    if version not in state.versions:
        raise NotFound(
            f"{state.name} has no version v{version}",
            hint=f"see the versions with: regctl versions {state.name}",
        )


def require_stage(stage: str, stages: tuple[str, ...]) -> int:
    if stage not in stages:
        raise BadInput(f"unknown stage {stage!r}", hint=f"stages are: {', '.join(stages)}")
    return stages.index(stage)


def _move_alias(state: ModelState, alias: str, version: int | None, changes: dict) -> None:
    old = state.aliases.get(alias)
    if old == version:
        return
    if version is None:
        state.aliases.pop(alias, None)
    else:
        state.aliases[alias] = version
    changes.setdefault("aliases", {})[alias] = [vname(old), vname(version)]


def _set_latest(state: ModelState, stage: str, version: int | None, changes: dict) -> None:
    old = state.latest.get(stage)
    if old == version:
        return
    state.latest[stage] = version
    changes.setdefault("latest", {})[stage] = [vname(old), vname(version)]


def _set_history(state: ModelState, history: list[int], changes: dict) -> None:
    before = state.all_aliases().get("rollback")
    state.history = history
    after = state.all_aliases().get("rollback")
    if before != after:
        changes.setdefault("aliases", {})["rollback"] = [vname(before), vname(after)]


def add_published(
    state: ModelState, version: int, first_stage: str, *, set_latest: bool, set_alias: bool
) -> dict[str, Any]:
    """Rule 1. LATEST and ``candidate`` only move forward, so concurrent publishes
    finishing out of order still end on the highest version."""
    changes: dict[str, Any] = {"stage": first_stage}
    state.versions.add(version)
    if set_latest and (state.latest.get(first_stage) or 0) < version:
        _set_latest(state, first_stage, version, changes)
    if set_alias and (state.aliases.get("candidate") or 0) < version:
        _move_alias(state, "candidate", version, changes)
    return changes


def promote(
    state: ModelState,
    stages: tuple[str, ...],
    *,
    version: int | None,
    to_stage: str | None,
    gate: StageGate | None,
    facts: dict[str, Any],
    force: bool,
    reason: str | None,
    set_latest: bool,
    now: str,
) -> dict[str, Any]:
    """Rules 2, 3 and 5. ``facts`` holds the version's ``metrics`` and current ``tags``."""
    target = to_stage or stages[-1]
    idx = require_stage(target, stages)
    if force and not reason:
        raise BadInput("--force needs --reason", hint="say why the gate is overridden")
    if idx == 0:
        raise RuleViolation(
            f"versions enter {target!r} by publishing, not by promotion",
            hint=f"promote to {stages[1]!r}" if len(stages) > 1 else None,
        )
    if version is None:
        version = state.aliases.get("candidate")
        if version is None:
            raise RuleViolation(
                f"{state.name} has no candidate to promote",
                hint=f"publish a version, or name one: regctl promote {state.name} --version vN",
            )
    require_version(state, version)
    if version in state.archived:
        raise RuleViolation(
            f"{state.name}:v{version} is archived and cannot be promoted",
            hint="archiving is final; publish the artifact again as a new version",
        )
    prev = stages[idx - 1]
    if not state.in_stage(version, prev, stages[0]):
        raise RuleViolation(
            f"{state.name}:v{version} is not in {prev!r}; stages cannot be skipped",
            hint=f"promote it to {prev!r} first: regctl promote {state.name} "
            f"--version v{version} --to {prev}",
        )
    is_last = idx == len(stages) - 1
    already = state.in_stage(version, target, stages[0])
    changes: dict[str, Any] = {"from_stage": prev, "stage": target}
    if already and (
        (is_last and state.aliases.get("champion") == version)
        or (not is_last and (not set_latest or state.latest.get(target) == version))
    ):
        changes["noop"] = True
        return changes
    if not already and gate is not None:
        failures = gate.failures(
            facts.get("metrics", {}),
            facts.get("tags", {}),
            facts.get("signers", ()),
            facts.get("unsigned_why", ""),
        )
        if failures and not force:
            raise GateFailed(
                f"v{version} fails the gate for {target!r}: " + "; ".join(failures),
                failures,
                hint="fix the version, or override with --force --reason TEXT",
            )
        if failures:
            changes["forced"] = True
            changes["overridden"] = failures
    if reason:
        changes["reason"] = reason
    if not already:
        state.stages.setdefault(target, VersionSet()).add(version)
        state.stage_entered.setdefault(target, {})[version] = now
    if set_latest:
        _set_latest(state, target, version, changes)
    if is_last:
        old = state.aliases.get("champion")
        history = [h for h in state.history if h != version]
        if old is not None and old != version:
            history.append(old)
        _set_history(state, history, changes)
        _move_alias(state, "champion", version, changes)
        if state.aliases.get("candidate") == version:
            _move_alias(state, "candidate", None, changes)
    return changes


def rollback(state: ModelState, stages: tuple[str, ...], *, to: int | None) -> dict[str, Any]:
    """Rule 4 with the rollback history stack (docs/concepts.md)."""
    last = stages[-1]
    champion = state.aliases.get("champion")
    changes: dict[str, Any] = {"stage": last}
    if to is None:
        if not state.history:
            raise RuleViolation(
                f"{state.name} has nothing to roll back to",
                hint="no earlier champion is recorded; "
                "use rollback --to vN to pick a released version",
            )
        history = list(state.history)
        target = history.pop()
    else:
        require_version(state, to)
        target = to
        if target in state.archived:
            raise RuleViolation(f"{state.name}:v{target} is archived and cannot become champion")
        if not state.in_stage(target, last, stages[0]):
            raise RuleViolation(
                f"{state.name}:v{target} was never in {last!r}",
                hint=f"promote it instead: regctl promote {state.name} --version v{target}",
            )
        if target == champion:
            changes["noop"] = True
            return changes
        history = list(state.history)
        if target in history:
            history = history[: history.index(target)]
    if champion is None:
        raise RuleViolation(f"{state.name} has no champion to roll back from")
    _set_history(state, history, changes)
    _move_alias(state, "champion", target, changes)
    _move_alias(state, "candidate", champion, changes)
    changes["demoted"] = format_version(champion)
    _set_latest(state, last, target, changes)
    return changes


def archive(state: ModelState, stages: tuple[str, ...], version: int) -> dict[str, Any]:
    """Rule 6."""
    require_version(state, version)
    changes: dict[str, Any] = {}
    if version in state.archived:
        changes["noop"] = True
        return changes
    if state.aliases.get("champion") == version:
        raise RuleViolation(
            f"{state.name}:v{version} is the champion and cannot be archived",
            hint=f"promote another version or roll back first: regctl rollback {state.name}",
        )
    state.archived.add(version)
    for alias, v in list(state.aliases.items()):
        if v == version:
            _move_alias(state, alias, None, changes)
    if version in state.history:
        _set_history(state, [h for h in state.history if h != version], changes)
    for stage in stages:
        if state.latest.get(stage) == version:
            remaining = [
                v
                for v in state.versions
                if v not in state.archived and state.in_stage(v, stage, stages[0])
            ]
            _set_latest(state, stage, max(remaining) if remaining else None, changes)
    changes["status"] = ["active", "archived"]
    return changes


def set_alias(state: ModelState, alias: str, version: int) -> dict[str, Any]:
    if alias in RESERVED_ALIASES:
        raise RuleViolation(
            f"alias {alias!r} is reserved",
            hint="candidate, champion and rollback move only through publish, promote and rollback",
        )
    require_version(state, version)
    if version in state.archived:
        raise RuleViolation(f"{state.name}:v{version} is archived; aliases cannot point at it")
    changes: dict[str, Any] = {}
    _move_alias(state, alias, version, changes)
    if not changes:
        changes["noop"] = True
    return changes


def remove_alias(state: ModelState, alias: str) -> dict[str, Any]:
    if alias in RESERVED_ALIASES:
        raise RuleViolation(
            f"alias {alias!r} is reserved",
            hint="candidate, champion and rollback move only through publish, promote and rollback",
        )
    if alias not in state.aliases:
        raise NotFound(f"{state.name} has no alias {alias!r}")
    changes: dict[str, Any] = {}
    _move_alias(state, alias, None, changes)
    return changes


def purge(state: ModelState, version: int) -> dict[str, Any]:
    """An archived version's payload goes; its number, facts and audit lines stay."""
    require_version(state, version)
    if version in state.purged:
        return {"noop": True}
    if version not in state.archived:
        raise RuleViolation(
            f"{state.name}:v{version} is {state.status_of(version)}; only an archived "
            "version can be purged",
            hint=f"archive it first: regctl archive {state.name} v{version}",
        )
    state.purged.add(version)
    return {"status": ["archived", "purged"]}
