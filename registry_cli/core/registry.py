"""``ModelRegistry``: the product. The CLI and the servers are thin layers over it.

A façade built from parts, each in its own module:

* ``storage/store.py`` — the seam every byte goes through (a folder today);
* ``core/models.py`` — model states and the commit loop, the audit log;
* ``core/publishing.py`` — the publish pipeline;
* ``core/refs.py`` — references, resolved by pure functions;
* ``core/rules.py`` — each lifecycle command as a rule over a model's state;
* ``core/lifecycle.py`` and ``core/gates.py`` — the lifecycle rules (docs/concepts.md), pure;
* ``core/served/`` — the served tree ``dist/``, updated after each commit;
* ``core/upkeep.py`` — ``verify`` and ``gc``;
* ``core/events.py``, ``core/mirror_plan.py`` — webhooks and OCI mirror pushes (outbox).

Each lifecycle method is a rule: a function of the model state that changes
it and returns what it chose; :meth:`ModelStates.change` commits it.

Start-up: publishing (tar, threads), upkeep and event delivery are imported by
the methods that use them, so ``regctl resolve`` loads none of them.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core import lifecycle
from registry_cli.core.config import (
    INIT_CONFIG,
    Config,
    config_in_store,
    is_object_store,
    resolve_root_and_config,
    root_location,
)
from registry_cli.core.contract import PublishProgress, Registry
from registry_cli.core.models import ModelStates
from registry_cli.core.names import format_version, validate_alias, validate_key, vname
from registry_cli.core.names import validate_model_name as _name
from registry_cli.core.refs import BestBy, Ref, parse_ref, resolve_number
from registry_cli.core.registry_upkeep import Upkeep
from registry_cli.core.rules import Decision, Rule, Rules
from registry_cli.core.state import ModelState
from registry_cli.core.types import (
    AuditLog,
    ChangeResult,
    ModelSummary,
    VersionInfo,
)
from registry_cli.core.versions import VersionReader
from registry_cli.errors import BadInput
from registry_cli.storage import layout
from registry_cli.storage.layout import Layout
from registry_cli.storage.open import open_store
from registry_cli.storage.store import AlreadyExists, Store

if TYPE_CHECKING:
    from registry_cli.core.publishing import Produced
    from registry_cli.core.served.tree import ServedTree


def default_actor() -> str:
    env = os.environ.get("REGCTL_ACTOR")
    if env:
        return env
    import getpass  # and termios: only when $REGCTL_ACTOR is not set

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


class ModelRegistry(Upkeep):
    """A registry root. Every public method maps to a CLI command; the operations of
    :class:`~registry_cli.core.contract.Registry` are the ones a server offers too."""

    remote = False

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        config: Config | str | os.PathLike[str] | None = None,
        actor: str | None = None,
        store: Store | None = None,
    ) -> None:
        """``config`` is a parsed :class:`Config`; a path (or None) is looked up as
        docs/configuration.md says. ``store`` replaces the folder store of ``root``
        (another backend)."""
        self.root: Path | str  # an s3://BUCKET/PREFIX URL for an object-store root
        if isinstance(config, Config):
            self.root = root_location(root or config.root or "registry")
            self.config = config
        else:
            self.root, self.config = resolve_root_and_config(root, config)
        self.actor = actor or default_actor()
        self.store: Store = store or open_store(self.root, self.config.section("s3"))
        if is_object_store(self.root) and self.config.path is None:
            self.config = config_in_store(self.store) or self.config
        self.layout = Layout(self.store.local_path(""))  # the local cache on an s3 root
        self.states = ModelStates(self.store)
        self.versions = VersionReader(self.store, self.stages)
        self.rules = Rules(self.config, self.versions)
        self._queued: list[Any] = []  # deliveries recorded by a commit, tried after it
        if self.config.webhooks or self.config.oci_mirrors:
            self.states.on_audit = self._record

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | None = None,
        actor: str | None = None,
    ) -> ModelRegistry:
        """Find the root and config as the CLI does (flags, then env vars, then files)."""
        found_root, found_config = resolve_root_and_config(root, config)
        return cls(found_root, config=found_config, actor=actor)

    @functools.cached_property
    def served(self) -> ServedTree:
        """The served tree ``dist/``, loaded on first use: reading commands never touch it."""
        from registry_cli.core.served.tree import ServedTree

        return ServedTree(self.store, self.stages)

    @property
    def stages(self) -> tuple[str, ...]:
        return self.config.stages

    def init(self) -> Path | str:
        """Create the root (idempotent) with a commented registry.yaml."""
        if isinstance(self.root, Path):
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / layout.MODELS).mkdir(exist_ok=True)
        else:  # an object store has no folders: a marker makes models/ exist
            with contextlib.suppress(AlreadyExists):
                self.store.create(f"{layout.MODELS}/.keep", b"")
        with contextlib.suppress(AlreadyExists):
            self.store.create(layout.CONFIG, INIT_CONFIG.encode())
        return self.root

    def scratch(self, kind: str) -> contextlib.AbstractContextManager[Path]:
        """A private folder on the registry's filesystem, removed afterwards (see Store)."""
        return self.store.scratch(kind)

    # ------------------------------------------------------------------ publish
    def publish(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        stage: str | None = None,
        set_latest: bool = True,
        set_alias: bool = True,
        derived_from: str | None = None,
        signature: dict[str, Any] | None = None,
        facts: dict[str, Any] | None = None,
        produced: Produced | None = None,
        progress: PublishProgress | None = None,
    ) -> VersionInfo:
        """Copy files/folders into the next version of ``name`` and return it.

        ``produced`` carries what a converter or importer adds (its own files,
        standard artifacts, the recorded source)."""
        from registry_cli.core.publishing import Produced, Publisher, PublishOptions

        _name(name)
        parent = None
        if derived_from:
            found = self.get(derived_from, with_bundle=False)
            parent = f"{found.name}:{found.vname}"
        options = PublishOptions(
            metrics=dict(metrics or {}),
            params=dict(params or {}),
            tags=dict(tags or {}),
            description=description,
            stage=stage,
            set_latest=set_latest,
            set_alias=set_alias,
            derived_from=parent,
            signature=signature,
            facts=dict(facts or {}),
        )
        publisher = Publisher(self.store, self.states, self.config, self.actor)
        done = publisher.publish(
            name,
            [Path(p) for p in paths or []],
            options,
            produced or Produced(),
            progress,
            after_commit=self.served.sync,
        )
        self._announce(done.entry)
        return self.versions.info(done.state, done.number)

    def _record(self, entry: dict[str, Any]) -> None:
        """In the commit step: webhook deliveries and OCI mirror pushes to the outbox."""
        from registry_cli.core import events, mirror_plan

        self._queued.extend(events.record(self.store, self.config, entry))  # [] without hooks
        self._queued.extend(mirror_plan.record(self.store, self.config, self.states, entry))

    def _announce(self, entry: dict[str, Any]) -> None:
        """After the lock: try what the commit recorded (docs/events.md, oci.md#mirrors)."""
        if self._queued:
            from registry_cli.core import events, mirror_plan

            queued, self._queued = self._queued, []
            events.announce([q for q in queued if isinstance(q, events.Queued)])
            mirror_plan.announce([q for q in queued if isinstance(q, mirror_plan.Recorded)])

    # ------------------------------------------------------------------ reading
    def _best(self, metric: str | None, mode: str | None) -> BestBy:
        return BestBy(metric or self.config.best_metric, mode or self.config.best_mode)

    def get(
        self,
        ref: str | Ref,
        *,
        stage: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        with_bundle: bool = True,
    ) -> VersionInfo:
        """Resolve a reference (``NAME``, ``NAME:vN``, ``NAME:latest|best``, ``NAME@alias``).

        ``with_bundle=False`` skips reading version.yaml (the bundle's facts)."""
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        state = self.states.load(parsed.name)
        number = resolve_number(
            state,
            parsed,
            self.stages,
            stage=stage,
            best=self._best(metric, mode),
            metrics_of=lambda v: self.versions.metrics(state.name, v),
        )
        return self.versions.info(state, number, with_bundle=with_bundle)

    resolve = get

    def list_models(self) -> list[ModelSummary]:
        self.states.require_root()
        out = []
        for name in self.states.names():
            state = self.states.load(name)
            active = state.active()
            out.append(
                ModelSummary(
                    name=name,
                    versions=len(state.versions),
                    latest=format_version(max(active)) if active else None,
                    aliases={a: format_version(v) for a, v in state.all_aliases().items()},
                    stages={s: vname(state.latest.get(s)) for s in self.stages},
                    description=state.description,
                )
            )
        return out

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        state = self.states.load(_name(name))
        if stage is not None:
            lifecycle.require_stage(stage, self.stages)
        return [
            self.versions.info(state, v, with_bundle=False)
            for v in state.versions
            if stage is None or state.in_stage(v, stage, self.stages[0])
        ]

    def model_state(self, name: str) -> ModelState:
        """The current state of a model (a copy; changing it changes nothing)."""
        return self.states.load(_name(name))

    def audit(self, name: str | None = None, limit: int | None = None) -> AuditLog:
        self.states.require_root()
        if name is not None:
            _name(name)
        if limit is not None and limit < 0:
            raise BadInput("--limit must be zero or more")
        read = self.states.audit_entries()
        entries = [e for e in read.entries if name is None or e.get("model") == name]
        if limit is not None:
            entries = entries[-limit:] if limit else []
        return AuditLog(entries=entries, damaged_lines=read.damaged_lines)

    # ------------------------------------------------------------------ lifecycle
    def _change(self, name: str, action: str, rule: Rule) -> ChangeResult:
        """Commit ``rule``, audit it and update ``dist/`` (under the lock), then announce it."""
        self.states.load(_name(name))  # fail fast (exit 3) before taking a lock
        entry: dict[str, Any] = {}

        def then(state: ModelState, decided: Decision) -> None:
            number, changes = decided
            touched = changes.pop("_stages", None) or list(changes.get("latest") or {})
            entry.update(self.states.audit(self.actor, action, name, number, changes))
            if not changes.get("noop"):
                self.served.sync(state, touched)

        _state, (number, changes) = self.states.change(name, rule, then=then)
        if not changes.get("noop"):
            self._announce(entry)
        return ChangeResult(
            action=action,
            name=name,
            version=vname(number),
            changed=changes,
            noop=bool(changes.get("noop")),
        )

    def promote(
        self,
        name: str,
        *,
        version: str | int | None = None,
        to: str | None = None,
        force: bool = False,
        reason: str | None = None,
        set_latest: bool = True,
    ) -> ChangeResult:
        """Promote ``version`` (default ``@candidate``) into stage ``to`` (default: last)."""
        rule = self.rules.promote(version, to, force=force, reason=reason, set_latest=set_latest)
        result = self._change(name, "promote", rule)
        if result.noop:
            stage = result.changed.get("stage")
            where = "the champion" if stage == self.stages[-1] else f"LATEST of {stage!r}"
            result.message = f"{name}:{result.version} is already {where} (nothing changed)"
        return result

    def rollback(self, name: str, *, to: str | int | None = None) -> ChangeResult:
        result = self._change(name, "rollback", self.rules.rollback(to))
        if result.noop:
            result.message = f"{name}:{result.version} is already the champion (nothing changed)"
        return result

    def archive(self, name: str, version: str | int, *, reason: str | None = None) -> ChangeResult:
        result = self._change(name, "archive", self.rules.archive(version, reason))
        if result.noop:
            result.message = f"{name}:{result.version} is already archived (nothing changed)"
        return result

    def set_alias(self, name: str, alias: str, version: str | int) -> ChangeResult:
        return self._change(name, "alias-set", self.rules.set_alias(validate_alias(alias), version))

    def remove_alias(self, name: str, alias: str) -> ChangeResult:
        return self._change(name, "alias-rm", self.rules.remove_alias(validate_alias(alias)))

    def tag(
        self,
        name: str,
        version: str | int,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> ChangeResult:
        """Change a version's current tags; the publish-time tags in the manifest stay."""
        wanted = {validate_key(k, "tag"): str(v) for k, v in (set_tags or {}).items()}
        dropped = [validate_key(k, "tag") for k in (remove or [])]
        if not wanted and not dropped:
            raise BadInput("nothing to change", hint="give KEY=VALUE pairs and/or --rm KEY")
        return self._change(name, "tag", self.rules.tag(version, wanted, dropped))


_conforms: type[Registry] = ModelRegistry  # mypy fails here when the contract drifts
