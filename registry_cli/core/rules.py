"""The lifecycle commands as rules for :meth:`ModelStates.change`.

Each method returns a rule: a function of a model's state that applies
``core/lifecycle.py`` to it (reading the immutable facts it needs, such as
metrics for a gate) and returns ``(the version it chose, what changed)``. A
rule runs again on the newer state when a concurrent commit won, so nothing
here may have effects outside the state it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry_cli.core import lifecycle
from registry_cli.core.config import Config
from registry_cli.core.models import utc_now
from registry_cli.core.refs import BestBy, version_of
from registry_cli.core.state import ModelState
from registry_cli.core.versions import VersionReader
from registry_cli.errors import NotFound

Decision = tuple["int | None", dict[str, Any]]
Rule = Callable[[ModelState], Decision]
"""A lifecycle rule: changes the state, returns (the version it chose, what changed).
``changes["_stages"]`` names the stages whose served tree must follow."""


class Rules:
    def __init__(self, config: Config, versions: VersionReader) -> None:
        self.config = config
        self.stages = config.stages
        self.versions = versions

    def version(self, state: ModelState, given: str | int) -> int:
        """A version argument (``vN``, ``@alias``, ``latest``, ``best``, a reference)."""
        return version_of(
            state,
            given,
            self.stages,
            best=BestBy(self.config.best_metric, self.config.best_mode),
            metrics_of=lambda v: self.versions.metrics(state.name, v),
        )

    def promote(
        self,
        version: str | int | None,
        to: str | None,
        *,
        force: bool,
        reason: str | None,
        set_latest: bool,
    ) -> Rule:
        target = to or self.stages[-1]

        def rule(state: ModelState) -> Decision:
            number = self.version(state, version) if version is not None else None
            if number is None:
                number = state.aliases.get("candidate")
            facts: dict[str, Any] = {}
            if number is not None and number in state.versions:
                facts = {
                    "metrics": self.versions.metrics(state.name, number),
                    "tags": self.versions.current_tags(state, number),
                }
                gate = self.config.gates.get(target)
                if gate is not None and gate.signed_by:
                    facts.update(self.signatures(state.name, number, gate.signed_by))
            changes = lifecycle.promote(
                state,
                self.stages,
                version=number,
                to_stage=to,
                gate=self.config.gates.get(target),
                facts=facts,
                force=force,
                reason=reason,
                set_latest=set_latest,
                now=utc_now(),
            )
            changes["_stages"] = list(self.stages)  # aliases.json of every stage
            return number, changes

        return rule

    def signatures(self, name: str, number: int, keys: tuple[str, ...]) -> dict[str, Any]:
        """The ``signers`` fact of a ``signed_by`` gate (checked only when one is set)."""
        from registry_cli.core.signatures import trusted_signers
        from registry_cli.core.signing import key_file

        files = self.versions.facts(name, number).get("files") or []
        paths = [key_file(k, "gate signed_by key") for k in keys]
        trusted, _checked, problems = trusted_signers(
            self.versions.store, name, number, files, paths
        )
        return {"signers": trusted, "unsigned_why": "; ".join(problems)}

    def rollback(self, to: str | int | None) -> Rule:
        def rule(state: ModelState) -> Decision:
            number = self.version(state, to) if to is not None else None
            changes = lifecycle.rollback(state, self.stages, to=number)
            changes["_stages"] = list(self.stages)  # LATEST of the last; every aliases.json
            return state.aliases.get("champion") or number, changes

        return rule

    def archive(self, version: str | int, reason: str | None) -> Rule:
        def rule(state: ModelState) -> Decision:
            number = self.version(state, version)
            changes = lifecycle.archive(state, self.stages, number)
            if reason:
                changes["reason"] = reason
            changes["_stages"] = state.stages_of(number, self.stages)
            return number, changes

        return rule

    def set_alias(self, alias: str, version: str | int) -> Rule:
        def rule(state: ModelState) -> Decision:
            number = self.version(state, version)
            changes = lifecycle.set_alias(state, alias, number)
            changes["_stages"] = list(self.stages)  # aliases.json
            return number, changes

        return rule

    def remove_alias(self, alias: str) -> Rule:
        def rule(state: ModelState) -> Decision:
            number = state.aliases.get(alias)
            changes = lifecycle.remove_alias(state, alias)
            changes["_stages"] = list(self.stages)  # aliases.json
            return number, changes

        return rule

    def tag(self, version: str | int, wanted: dict[str, str], dropped: list[str]) -> Rule:
        """Current tags change; the publish-time tags in the manifest stay."""

        def rule(state: ModelState) -> Decision:
            number = self.version(state, version)
            lifecycle.require_version(state, number)
            current = self.versions.current_tags(state, number)
            before = dict(current)
            for key in dropped:
                if key not in current:
                    raise NotFound(f"{state.name}:v{number} has no tag {key!r}")
                current.pop(key)
            current.update(wanted)
            if current == before:
                return number, {"noop": True}
            state.tags[number] = current
            return number, {"tags": {"set": wanted, "removed": dropped}}

        return rule
