"""What an MLflow alias or stage change means under regctl's lifecycle rules.

Pure decisions on a model's state; the routes then make the one core call chosen
(``promote``, ``rollback``, ``archive``, ``set_alias``, ``remove_alias``), so gates,
the one-champion rule, the audit and the events stay the core's.

* ``champion`` -> the champion already: nothing; a version released before (in the
  last stage, an earlier champion or ``@rollback``): ``rollback --to``; else ``promote``.
* ``candidate``/``rollback`` -> accepted when regctl's rules already put them there
  (``rollback`` = the current champion is where promoting the candidate will put it).
* Any other alias -> ``alias set`` / ``alias rm``.
"""

from __future__ import annotations

from typing import Literal

from registry_cli.core.lifecycle import require_version
from registry_cli.core.names import RESERVED_ALIASES
from registry_cli.core.state import ModelState
from registry_cli.errors import RuleViolation

Action = Literal["noop", "promote", "rollback", "set", "remove", "archive"]


def on_set_alias(state: ModelState, stages: tuple[str, ...], alias: str, version: int) -> Action:
    require_version(state, version)
    name = state.name
    aliases = state.all_aliases()
    if alias == "champion":
        if aliases.get("champion") == version:
            return "noop"
        if version in state.history or state.in_stage(version, stages[-1], stages[0]):
            return "rollback"
        return "promote"
    if alias == "candidate":
        if aliases.get("candidate") == version:
            return "noop"
        raise RuleViolation(
            f"{name}: 'candidate' is set by publishing and by rollback, not by hand "
            f"(it is {_at(aliases.get('candidate'))}, not v{version})",
            hint=f"publish a new version (regctl publish {name} ...) or roll back "
            f"(regctl rollback {name})",
        )
    if alias == "rollback":
        if version in (aliases.get("rollback"), aliases.get("champion")):
            return "noop"  # promoting the candidate moves the champion there
        raise RuleViolation(
            f"{name}: 'rollback' is the previous champion ({_at(aliases.get('rollback'))}); "
            f"it cannot be set to v{version}",
            hint=f"make a released version champion with: regctl rollback {name} --to vN",
        )
    return "set"


def on_delete_alias(state: ModelState, alias: str) -> Action:
    if alias not in state.all_aliases():
        return "noop"  # as MLflow: deleting an absent alias changes nothing
    if alias in RESERVED_ALIASES:
        raise RuleViolation(
            f"{state.name}: alias {alias!r} is reserved and moves only through "
            "publish, promote and rollback",
            hint=f"regctl promote {state.name} / regctl rollback {state.name}",
        )
    return "remove"


def on_transition(state: ModelState, stage: str, current: str, version: int) -> Action:
    """``stage`` is canonical (``None``, ``Staging``, ``Production``, ``Archived``)."""
    require_version(state, version)
    if stage == "Production":
        return "noop" if state.aliases.get("champion") == version else "promote"
    if stage == "Archived":
        return "archive"
    if stage == current:
        return "noop"
    raise RuleViolation(
        f"{state.name}:v{version} is {current}; regctl moves versions forward only "
        f"(promote to Production, or archive), not to {stage}",
        hint=f"regctl promote {state.name} --version v{version} / regctl archive {state.name} "
        f"v{version}",
    )


def _at(version: int | None) -> str:
    return f"v{version}" if version is not None else "not set"
