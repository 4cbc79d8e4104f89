"""Model states and the audit log over a :class:`Store`: the commit loop lives here.

:meth:`ModelStates.change` is the one way a model's state changes: read the
state with its tag, apply a pure rule, replace the state if it is unchanged
(see ``storage/store.py``); on a conflict, re-read and re-apply. The writer
lock of the backend (``flock`` on a folder) is held around each attempt.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from registry_cli.core.names import format_version
from registry_cli.core.state import ModelState, StateFormatError, dump_state_text, load_state_text
from registry_cli.errors import IntegrityError, NotFound, RegctlError, RuleViolation
from registry_cli.storage import layout
from registry_cli.storage.audit import AuditRead, parse_lines
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store

T = TypeVar("T")
MAX_ATTEMPTS = 50  # registry_cli.net.retry.COMMIT.tries (imported on a conflict only)


def utc_now() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


class ModelStates:
    """Reads and commits ``models/<name>/model.yaml``; appends and reads the audit log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: called with each audit entry right after it is appended, in the commit step
        #: (the registry records the change's webhook deliveries there: core/events.py)
        self.on_audit: Callable[[dict[str, Any]], None] | None = None

    # -- reading ----------------------------------------------------------
    def require_root(self) -> None:
        if self.store.kind(layout.MODELS) != "dir":
            raise NotFound(
                f"no registry at {self.store.location}",
                hint="create one with: regctl init, or point --root / REGCTL_ROOT at it",
            )

    def _parse(self, name: str, data: bytes) -> ModelState:
        where = f"{self.store.location}/{layout.state_key(name)}"
        try:
            state = ModelState.from_doc(load_state_text(data))
        except (ValueError, StateFormatError) as exc:
            raise IntegrityError(f"{where}: unreadable model state: {exc}") from None
        if state.name != name:
            raise IntegrityError(f"{where}: records name {state.name!r}, expected {name!r}")
        return state

    def _not_found(self, name: str) -> NotFound:
        self.require_root()
        return NotFound(
            f"no model named {name!r} in {self.store.location}",
            hint="list the models with: regctl list",
        )

    def load(self, name: str) -> ModelState:
        try:
            data = self.store.read(layout.state_key(name))
        except Missing:
            raise self._not_found(name) from None
        return self._parse(name, data)

    def exists(self, name: str) -> bool:
        return self.store.kind(layout.state_key(name)) == "file"

    def names(self) -> list[str]:
        """Every model, sorted; a folder holding ``model.yaml`` is a model (names nest)."""
        out: list[str] = []

        def walk(key: str, prefix: str) -> None:
            entries = self.store.children(key)
            if "model.yaml" in entries:
                out.append(prefix)
                return
            for entry in entries:
                if not entry.startswith(".") and self.store.kind(f"{key}/{entry}") == "dir":
                    walk(f"{key}/{entry}", f"{prefix}/{entry}" if prefix else entry)

        walk(layout.MODELS, "")
        return [n for n in out if n]

    # -- writing ----------------------------------------------------------
    def create(self, name: str) -> None:
        """Create the model's state unless it exists, refusing name-prefix clashes."""
        if self.exists(name):
            return
        with self.store.lock(layout.REGISTRY_LOCK, what="the registry"):
            if self.exists(name):
                return
            parts = name.split("/")
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if self.exists(prefix):
                    raise RuleViolation(
                        f"model name {name!r} conflicts with existing model {prefix!r}",
                        hint="a model's name cannot be a whole-segment prefix of another's; "
                        "use e.g. '__' for variants",
                    )
            if self._has_model_below(layout.model_key(name)):
                if self.exists(name):
                    return  # another writer created it meanwhile (no lock on object storage)
                raise RuleViolation(
                    f"model name {name!r} conflicts with an existing model below it",
                    hint="a model's name cannot be a whole-segment prefix of another's",
                )
            try:
                self.store.create(
                    layout.state_key(name), dump_state_text(ModelState(name).to_doc()).encode()
                )
            except AlreadyExists:
                pass  # another writer created it first: the same empty state

    def _has_model_below(self, key: str) -> bool:
        for entry in self.store.children(key):
            sub = f"{key}/{entry}"
            if entry == "model.yaml" or (
                self.store.kind(sub) == "dir" and self._has_model_below(sub)
            ):
                return True
        return False

    def change(
        self,
        name: str,
        rule: Callable[[ModelState], T],
        then: Callable[[ModelState, T], None] | None = None,
    ) -> tuple[ModelState, T]:
        """Apply ``rule`` to the current state and commit it; re-apply after a conflict.

        ``rule`` mutates the state it is given and returns what it decided; it
        may raise to refuse. A state it leaves unchanged is not written.
        ``then`` runs after the commit, still under the writer lock (the audit
        line and the served tree follow commits in commit order).
        """
        key = layout.state_key(name)
        for attempt in range(MAX_ATTEMPTS):
            with self.store.lock(layout.model_lock_key(name), what=f"model {name!r}"):
                try:
                    read = self.store.read_tagged(key)
                except Missing:
                    raise self._not_found(name) from None
                state = self._parse(name, read.data)
                before = dump_state_text(state.to_doc())
                result = rule(state)
                after = dump_state_text(state.to_doc())
                try:
                    if after != before:
                        self.store.replace(key, after.encode(), if_match=read.tag)
                except Conflict:
                    pass
                else:
                    if then is not None:
                        then(state, result)
                    return state, result
            from registry_cli.net.retry import COMMIT  # off the start-up path

            time.sleep(COMMIT.delay(attempt + 1))  # full jitter: writers spread out
        raise RegctlError(
            f"gave up committing to {name!r} after {MAX_ATTEMPTS} conflicting writers",
            hint="retry the command",
        )

    # -- audit --------------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        name: str | None,
        version: int | None,
        details: dict[str, Any],
    ) -> dict[str, Any]:
        entry = {
            "time": utc_now(),
            "actor": actor,
            "action": action,
            "model": name,
            "version": format_version(version) if version else None,
            "details": details,
        }
        self.append_entry(entry)
        if self.on_audit is not None:
            self.on_audit(entry)
        return entry

    def append_entry(self, entry: dict[str, Any]) -> None:
        """Append one audit line as given (``audit`` builds it; importers bring old ones)."""
        line = json.dumps(entry, sort_keys=False, separators=(",", ":")) + "\n"
        self.store.append(layout.AUDIT, line.encode())

    def audit_entries(self) -> AuditRead:
        return parse_lines(self.store.lines(layout.AUDIT))
