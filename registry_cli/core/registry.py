"""``ModelRegistry``: the product. The CLI and the servers are thin layers over it.

Write protocol (crash-safe, concurrent):

1. validate every input, before anything touches disk;
2. copy and hash the payload into ``.regctl/tmp/publish-*`` (no lock held, so
   concurrent publishers copy in parallel; a flock on the staging folder tells
   ``gc`` it is alive);
3. under the model lock, reserve the next version number (``next_version`` in
   ``model.yaml`` only grows, so a number is never reused, even after a crash);
4. write manifest, version.yaml and bundle in the staging folder;
5. under the model lock, rename the staging folder to ``vN`` (never onto an
   existing folder) and replace ``model.yaml``: that replace is the commit
   point. A ``vN`` folder that ``model.yaml`` does not list is a leftover and
   invisible to readers; ``gc`` removes it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import getpass
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core.config import Config, resolve_root_and_config
from registry_cli.core import events, lifecycle
from registry_cli.core.documents import (
    ManifestFormatError,
    build_manifest,
    manifest_bytes,
    read_manifest,
    version_yaml,
)
from registry_cli.core.names import (
    format_version,
    parse_version,
    validate_alias,
    validate_key,
    validate_model_name,
)
from registry_cli.core.refs import Ref, parse_ref
from registry_cli.core.state import ModelState, StateFormatError, dump_state_text, load_state_text
from registry_cli.core.types import (
    AuditLog,
    ChangeResult,
    GcReport,
    ModelSummary,
    VerifyReport,
    VersionInfo,
)
from registry_cli.errors import BadInput, IntegrityError, NotFound, RegctlError, RuleViolation
from registry_cli.storage import audit as audit_log
from registry_cli.storage import locks
from registry_cli.storage.atomic import (
    atomic_write_text,
    fsync_dir,
    make_read_only,
    remove_tree,
)
from registry_cli.storage.layout import Layout

if TYPE_CHECKING:
    from registry_cli.core.served.tree import DistReport, DistTree
    from registry_cli.storage.hashing import Progress

PublishProgress = Callable[[str, int], "Progress | None"]
"""Called with a phase name ("copy", "bundle") and the byte total; returns a
per-chunk callback or None."""


def _vname(version: int | None) -> str | None:
    return format_version(version) if version else None


def utc_now() -> str:
    return (
        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def default_actor() -> str:
    env = os.environ.get("REGCTL_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


class ModelRegistry:
    """A registry rooted at a folder. Every public method maps to a CLI command."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        config: Config | str | os.PathLike[str] | None = None,
        actor: str | None = None,
    ) -> None:
        if isinstance(config, Config):
            self.config = config
            self.root = Path(root or config.root or "registry").absolute()
        else:
            self.root, self.config = resolve_root_and_config(root, config)
        self.layout = Layout(self.root)
        self.actor = actor or default_actor()

    # ------------------------------------------------------------------ basics
    @property
    def stages(self) -> tuple[str, ...]:
        return self.config.stages

    def init(self) -> Path:
        """Create the root (idempotent) with a commented registry.yaml."""
        self._ensure_root()
        cfg = self.root / "registry.yaml"
        if not cfg.exists():
            atomic_write_text(cfg, INIT_CONFIG)
        return self.root

    def _ensure_root(self) -> None:
        for d in (self.layout.models, self.layout.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def _require_root(self) -> None:
        if not self.layout.models.is_dir():
            raise NotFound(
                f"no registry at {self.root}",
                hint="create one with: regctl init, or point --root / REGCTL_ROOT at it",
            )

    # ------------------------------------------------------------------ state
    def _load_state(self, name: str) -> ModelState:
        path = self.layout.model_state(name)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            self._require_root()
            raise NotFound(
                f"no model named {name!r} in {self.root}",
                hint="list the models with: regctl list",
            ) from None
        try:
            state = ModelState.from_doc(load_state_text(text))
        except (ValueError, StateFormatError) as exc:
            raise IntegrityError(f"{path}: unreadable model state: {exc}") from None
        if state.name != name:
            raise IntegrityError(f"{path}: records name {state.name!r}, expected {name!r}")
        return state

    def _save_state(self, state: ModelState) -> None:
        atomic_write_text(self.layout.model_state(state.name), dump_state_text(state.to_doc()))

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        with locks.hold(self.layout.model_lock(name), what=f"model {name!r}"):
            yield

    def _create_model(self, name: str) -> None:
        """Create ``models/<name>/model.yaml`` unless it exists, refusing prefix clashes."""
        if self.layout.model_state(name).exists():
            return
        self._ensure_root()
        with locks.hold(self.layout.registry_lock, what="the registry"):
            if self.layout.model_state(name).exists():
                return
            parts = name.split("/")
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if self.layout.model_state(prefix).exists():
                    raise RuleViolation(
                        f"model name {name!r} conflicts with existing model {prefix!r}",
                        hint="a model's name cannot be a whole-segment prefix of another's; "
                        "use e.g. '__' for variants",
                    )
            model_dir = self.layout.model_dir(name)
            if model_dir.is_dir():
                for _dirpath, _dirs, files in os.walk(model_dir):
                    if "model.yaml" in files:
                        raise RuleViolation(
                            f"model name {name!r} conflicts with an existing model below it",
                            hint="a model's name cannot be a whole-segment prefix of another's",
                        )
            model_dir.mkdir(parents=True, exist_ok=True)
            self._save_state(ModelState(name=name))

    def _audit(
        self, action: str, name: str | None, version: int | None, details: dict[str, Any]
    ) -> None:
        entry = {
            "time": utc_now(),
            "actor": self.actor,
            "action": action,
            "model": name,
            "version": format_version(version) if version else None,
            "details": details,
        }
        audit_log.append(self.layout.audit, entry)
        events.committed(self.config, entry)

    # ------------------------------------------------------------------ publish
    def publish(
        self,
        name: str,
        paths: list[str | os.PathLike[str]] | None = None,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        stage: str | None = None,
        set_latest: bool = True,
        set_alias: bool = True,
        derived_from: str | None = None,
        source: dict[str, Any] | None = None,
        extra_files: list[tuple[str | os.PathLike[str], str]] | None = None,
        move_extra_files: bool = False,
        standard_artifacts: dict[str, str] | None = None,
        signature: dict[str, Any] | None = None,
        progress: PublishProgress | None = None,
    ) -> VersionInfo:
        """Copy files/folders into the next version of ``name`` and return it.

        ``extra_files`` are ``(file, path inside payload/)`` pairs produced by
        converters; with ``move_extra_files`` they are renamed into the payload
        instead of copied (the caller gives them up; they must be on the registry's
        filesystem, e.g. in a scratch folder). ``source`` overrides the recorded
        origin (e.g. MLflow).
        """
        from registry_cli.storage.bundle import write_payload_and_bundle
        from registry_cli.storage.payload import FileRecord, plan_payload

        validate_model_name(name)
        sources = [Path(p) for p in (paths or [])]
        extras = [(Path(p), rel) for p, rel in (extra_files or [])]
        if stage is not None:
            idx = lifecycle.require_stage(stage, self.stages)
            if idx != 0:
                raise RuleViolation(
                    f"a new version enters {self.stages[0]!r} first, not {stage!r}",
                    hint=f"publish, then: regctl promote {name} --to {stage}",
                )
        metrics = {validate_key(k, "metric"): float(v) for k, v in (metrics or {}).items()}
        params = {validate_key(k, "param"): str(v) for k, v in (params or {}).items()}
        tags = {validate_key(k, "tag"): str(v) for k, v in (tags or {}).items()}
        planned = plan_payload(sources, extras, move_extra=move_extra_files)
        for sa in (standard_artifacts or {}).values():
            if sa.removeprefix("payload/") not in {p.relpath for p in planned}:
                raise BadInput(f"standard artifact {sa} is not in the payload")
        derived = None
        if derived_from:
            parent = self.get(derived_from)
            derived = f"{parent.name}:{parent.vname}"
        if source is None:
            source = {
                "type": "local",
                "paths": [str(p.absolute()) for p in sources],
            }

        self._create_model(name)
        with self.scratch("publish") as staging:
            vdir = staging / "version"
            vdir.mkdir()
            total = sum(p.size for p in planned)
            with self._locked(name):
                state = self._load_state(name)
                number = state.next_version
                while self.layout.version_dir(name, number).exists():
                    number += 1  # a folder the state never recorded: skip past it
                state.next_version = number + 1
                self._save_state(state)
            facts: dict[str, Any] = {}

            def make_manifest(records: list[FileRecord]) -> bytes:
                facts.update(
                    build_manifest(
                        name=name,
                        version=number,
                        created_at=utc_now(),
                        created_by=self.actor,
                        source=source,
                        files=[f.to_doc() for f in records],
                        metrics=metrics,
                        params=params,
                        tags=tags,
                        description=description,
                        derived_from=derived,
                        standard_artifacts=dict(standard_artifacts or {}),
                        signature=signature,
                    )
                )
                return manifest_bytes(facts)

            files, (bsize, bsha) = write_payload_and_bundle(
                planned,
                vdir,
                make_manifest,
                level=self.config.bundle_level,
                mtime=int(time.time()),
                fsync=self.config.publish_fsync,
                progress=progress("publish", total) if progress else None,
            )
            manifest = facts
            bundle = {
                "path": "bundle.tar.gz",
                "size": bsize,
                "sha256": bsha,
                "compression": f"gzip-{self.config.bundle_level}",
            }
            (vdir / "version.yaml").write_text(version_yaml(manifest, bundle))
            make_read_only(vdir / "payload")
            for fname in ("manifest.json", "version.yaml", "bundle.tar.gz"):
                os.chmod(vdir / fname, 0o444)
            for f in (vdir / "version.yaml", vdir / "manifest.json"):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            fsync_dir(vdir)

            with self._locked(name):
                state = self._load_state(name)
                target = self.layout.version_dir(name, number)
                if os.path.lexists(target):
                    raise RegctlError(f"{target} appeared while publishing; not overwriting")
                os.rename(vdir, target)
                fsync_dir(target.parent)
                changes = lifecycle.add_published(
                    state,
                    number,
                    self.stages[0],
                    set_latest=set_latest,
                    set_alias=set_alias,
                )
                self._save_state(state)
                changes["files"] = len(files)
                changes["size"] = total
                changes["source"] = source.get("type")
                self._audit("publish", name, number, changes)
                self._after_change(state, [self.stages[0]])
        return self._version_info(state, number, with_bundle=True)

    @contextlib.contextmanager
    def scratch(self, kind: str) -> Iterator[Path]:
        """A private folder under ``.regctl/tmp`` (same filesystem as the versions, so
        its contents can be renamed into place), removed afterwards. It holds a lock
        while in use, so ``regctl gc`` never removes a live one and always removes
        the folder of a process that was killed."""
        self._ensure_root()
        folder = self.layout.tmp / f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        try:
            with locks.hold(folder / ".alive", what="a scratch folder", timeout=0):
                yield folder
        finally:
            remove_tree(folder)

    # ------------------------------------------------------------------ reading
    def _read_facts(self, name: str, version: int) -> dict[str, Any]:
        path = self.layout.version_dir(name, version) / "manifest.json"
        try:
            return read_manifest(path)
        except FileNotFoundError:
            raise IntegrityError(f"{path} is missing") from None
        except ManifestFormatError as exc:
            raise IntegrityError(str(exc)) from None

    def _read_bundle_facts(self, name: str, version: int) -> dict[str, Any]:
        import yaml

        vdir = self.layout.version_dir(name, version)
        path = vdir / "version.yaml"
        try:
            doc = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, yaml.YAMLError) as exc:
            raise IntegrityError(f"{path}: unreadable: {exc}") from None
        if (
            not isinstance(doc, dict)
            or doc.get("kind") != "regctl/version"
            or doc.get("format_version") != 1
        ):
            raise IntegrityError(f"{path}: not a regctl version document (format_version 1)")
        bundle = dict(doc.get("bundle") or {})
        bundle["path"] = str(vdir / "bundle.tar.gz")
        return bundle

    def _version_info(
        self,
        state: ModelState,
        version: int,
        *,
        with_bundle: bool = True,
        facts: dict[str, Any] | None = None,
    ) -> VersionInfo:
        facts = facts or self._read_facts(state.name, version)
        vdir = self.layout.version_dir(state.name, version)
        return VersionInfo(
            name=state.name,
            version=version,
            status=state.status_of(version),
            stages=state.stages_of(version, self.stages),
            aliases=state.aliases_of(version),
            tags=dict(state.tags.get(version, facts.get("tags") or {})),
            metrics=dict(facts.get("metrics") or {}),
            params=dict(facts.get("params") or {}),
            description=facts.get("description"),
            created_at=facts["created_at"],
            created_by=facts.get("created_by", ""),
            source=facts.get("source") or {},
            files=facts["files"],
            derived_from=facts.get("derived_from"),
            path=vdir,
            preferred_weight=facts["preferred_weight"],
            bundle=self._read_bundle_facts(state.name, version) if with_bundle else {},
            standard_artifacts=facts.get("standard_artifacts") or {},
            signature=facts.get("signature"),
            manifest=facts,
        )

    def _resolve_number(
        self,
        state: ModelState,
        ref: Ref,
        *,
        stage: str | None,
        metric: str | None,
        mode: str | None,
    ) -> int:
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
        if ref.selector == "latest":
            if stage is not None:
                lifecycle.require_stage(stage, self.stages)
                found = state.latest.get(stage)
                if found is None:
                    raise NotFound(f"{state.name} has no LATEST in stage {stage!r}")
                return found
            active = state.active()
            if not active:
                raise NotFound(f"{state.name} has no active version")
            return max(active)
        # best
        metric = metric or self.config.best_metric
        mode = mode or self.config.best_mode
        if not metric:
            raise BadInput("'best' needs a metric", hint="pass --metric M (or set best.metric)")
        if mode not in ("max", "min"):
            raise BadInput(f"--mode must be max or min, not {mode!r}")
        candidates = state.active()
        if stage is not None:
            lifecycle.require_stage(stage, self.stages)
            candidates = [v for v in candidates if state.in_stage(v, stage, self.stages[0])]
        scored = []
        for v in candidates:
            value = (self._read_facts(state.name, v).get("metrics") or {}).get(metric)
            if value is not None:
                scored.append((float(value), v))
        if not scored:
            raise NotFound(f"no active version of {state.name} has metric {metric!r}")
        best = max(scored) if mode == "max" else min(scored, key=lambda t: (t[0], -t[1]))
        return best[1]

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

        ``with_bundle=False`` skips reading version.yaml (the bundle's facts) for
        callers that only need the version and its manifest.
        """
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        state = self._load_state(parsed.name)
        number = self._resolve_number(state, parsed, stage=stage, metric=metric, mode=mode)
        return self._version_info(state, number, with_bundle=with_bundle)

    resolve = get

    def list_models(self) -> list[ModelSummary]:
        self._require_root()
        out = []
        for name in self._model_names():
            state = self._load_state(name)
            active = state.active()
            out.append(
                ModelSummary(
                    name=name,
                    versions=len(state.versions),
                    latest=format_version(max(active)) if active else None,
                    aliases={a: format_version(v) for a, v in state.all_aliases().items()},
                    stages={s: _vname(state.latest.get(s)) for s in self.stages},
                    description=state.description,
                )
            )
        return out

    def _model_names(self) -> list[str]:
        names: list[str] = []
        base = self.layout.models

        def walk(directory: Path, prefix: str) -> None:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except FileNotFoundError:
                return
            if any(e.name == "model.yaml" for e in entries):
                names.append(prefix)
                return
            for e in entries:
                if e.is_dir(follow_symlinks=False) and not e.name.startswith("."):
                    walk(Path(e.path), f"{prefix}/{e.name}" if prefix else e.name)

        walk(base, "")
        return [n for n in names if n]

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]:
        validate_model_name(name)
        state = self._load_state(name)
        if stage is not None:
            lifecycle.require_stage(stage, self.stages)
        out = []
        for v in state.versions:
            if stage is None or state.in_stage(v, stage, self.stages[0]):
                out.append(self._version_info(state, v, with_bundle=False))
        return out

    def model_state(self, name: str) -> ModelState:
        """The current state of a model (a copy; changing it changes nothing)."""
        validate_model_name(name)
        return self._load_state(name)

    def audit(self, name: str | None = None, limit: int | None = None) -> AuditLog:
        self._require_root()
        if name is not None:
            validate_model_name(name)
        if limit is not None and limit < 0:
            raise BadInput("--limit must be zero or more")
        read = audit_log.read(self.layout.audit)
        entries = [e for e in read.entries if name is None or e.get("model") == name]
        if limit is not None:
            entries = entries[-limit:] if limit else []
        return AuditLog(entries=entries, damaged_lines=read.damaged_lines)

    # ------------------------------------------------------------------ lifecycle
    def _change(
        self,
        name: str,
        action: str,
        apply: Callable[[ModelState], dict[str, Any]],
        version: Callable[[ModelState, dict[str, Any]], int | None],
        touched_stages: Callable[[dict[str, Any]], list[str]] | None = None,
    ) -> ChangeResult:
        validate_model_name(name)
        self._load_state(name)  # fail fast (exit 3) before taking a lock
        with self._locked(name):
            state = self._load_state(name)
            changes = apply(state)
            number = version(state, changes)
            noop = bool(changes.get("noop"))
            if not noop:
                self._save_state(state)
            self._audit(action, name, number, changes)
            if not noop:
                stages = (
                    touched_stages(changes)
                    if touched_stages
                    else list((changes.get("latest") or {}).keys())
                )
                self._after_change(state, stages)
        return ChangeResult(
            action=action,
            name=name,
            version=format_version(number) if number else None,
            changed=changes,
            noop=noop,
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
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            number = self._version_arg(state, version) if version is not None else None
            target = to or self.stages[-1]
            if number is None:
                number = state.aliases.get("candidate")
            facts: dict[str, Any] = {}
            if number is not None and number in state.versions:
                m = self._read_facts(name, number)
                facts = {
                    "metrics": m.get("metrics") or {},
                    "tags": state.tags.get(number, m.get("tags") or {}),
                }
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
            chosen["v"] = number  # type: ignore[assignment]
            return changes

        result = self._change(
            name, "promote", apply, lambda s, c: chosen.get("v"), lambda c: [c["stage"]]
        )
        if result.noop:
            where = (
                "the champion"
                if result.changed.get("stage") == self.stages[-1]
                else f"LATEST of {result.changed.get('stage')!r}"
            )
            result.message = f"{name}:{result.version} is already {where} (nothing changed)"
        return result

    def _version_arg(self, state: ModelState, ref: str | int) -> int:
        """A version given as ``vN``/``N`` or as a reference to this model (``@alias``)."""
        if isinstance(ref, int):
            return parse_version(ref)
        text = str(ref)
        if text.startswith("@"):
            return self._resolve_number(
                state,
                Ref(state.name, alias=validate_alias(text[1:])),
                stage=None,
                metric=None,
                mode=None,
            )
        if ":" in text or "@" in text:
            parsed = parse_ref(text)
            if parsed.name != state.name:
                raise BadInput(f"{text!r} is not a version of {state.name}")
            return self._resolve_number(state, parsed, stage=None, metric=None, mode=None)
        if text in ("latest", "best"):
            return self._resolve_number(
                state, Ref(state.name, selector=text), stage=None, metric=None, mode=None
            )
        return parse_version(text)

    def rollback(self, name: str, *, to: str | int | None = None) -> ChangeResult:
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            number = self._version_arg(state, to) if to is not None else None
            changes = lifecycle.rollback(state, self.stages, to=number)
            chosen["v"] = state.aliases.get("champion") or number  # type: ignore[assignment]
            return changes

        result = self._change(
            name, "rollback", apply, lambda s, c: chosen.get("v"), lambda c: [self.stages[-1]]
        )
        if result.noop:
            result.message = f"{name}:{result.version} is already the champion (nothing changed)"
        return result

    def archive(self, name: str, version: str | int, *, reason: str | None = None) -> ChangeResult:
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            number = self._version_arg(state, version)
            chosen["v"] = number
            changes = lifecycle.archive(state, self.stages, number)
            if reason:
                changes["reason"] = reason
            return changes

        result = self._change(
            name,
            "archive",
            apply,
            lambda s, c: chosen.get("v"),
            lambda c: self._stages_of_version(name, chosen["v"]),
        )
        if result.noop:
            result.message = f"{name}:{result.version} is already archived (nothing changed)"
        return result

    def _stages_of_version(self, name: str, version: int) -> list[str]:
        return self._load_state(name).stages_of(version, self.stages)

    def set_alias(self, name: str, alias: str, version: str | int) -> ChangeResult:
        validate_alias(alias)
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            chosen["v"] = self._version_arg(state, version)
            return lifecycle.set_alias(state, alias, chosen["v"])

        return self._change(name, "alias-set", apply, lambda s, c: chosen.get("v"), lambda c: [])

    def remove_alias(self, name: str, alias: str) -> ChangeResult:
        validate_alias(alias)
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            chosen["v"] = state.aliases.get(alias)  # type: ignore[assignment]
            return lifecycle.remove_alias(state, alias)

        return self._change(name, "alias-rm", apply, lambda s, c: chosen.get("v"), lambda c: [])

    def tag(
        self,
        name: str,
        version: str | int,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> ChangeResult:
        """Change a version's current tags; the publish-time tags in the manifest stay."""
        set_tags = {validate_key(k, "tag"): str(v) for k, v in (set_tags or {}).items()}
        remove = [validate_key(k, "tag") for k in (remove or [])]
        if not set_tags and not remove:
            raise BadInput("nothing to change", hint="give KEY=VALUE pairs and/or --rm KEY")
        chosen: dict[str, int] = {}

        def apply(state: ModelState) -> dict[str, Any]:
            number = self._version_arg(state, version)
            lifecycle.require_version(state, number)
            chosen["v"] = number
            current = dict(state.tags.get(number, self._read_facts(name, number).get("tags") or {}))
            before = dict(current)
            for key in remove:
                if key not in current:
                    raise NotFound(f"{name}:v{number} has no tag {key!r}")
                current.pop(key)
            current.update(set_tags)
            if current == before:
                return {"noop": True}
            state.tags[number] = current
            return {"tags": {"set": set_tags, "removed": remove}}

        return self._change(name, "tag", apply, lambda s, c: chosen.get("v"), lambda c: [])

    # ------------------------------------------------------------------ hooks
    def _after_change(self, state: ModelState, stages: list[str]) -> None:
        """Called under the model lock after each committed change (dist/ sync)."""
        self._dist().sync(state, stages)

    def _dist(self) -> DistTree:
        from registry_cli.core.served.tree import DistTree

        return DistTree(self.layout, self.stages)

    def rebuild_dist(self) -> DistReport:
        """Regenerate ``dist/`` from ``models/`` (each model under its lock)."""
        from registry_cli.core.served.tree import DistReport

        self._require_root()
        report = DistReport()
        dist = self._dist()
        for model in self._model_names():
            with self._locked(model):
                dist.rebuild_model(self._load_state(model), report)
        with locks.hold(self.layout.registry_lock, what="the registry"):
            dist.remove_orphans(self._model_names(), report)
        return report

    # ------------------------------------------------------------------ verify / gc
    def verify(self, name: str | None = None, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every payload file and bundle; check state and dist/ against the folders."""
        from registry_cli.core import upkeep

        return upkeep.verify(self, name, progress)

    def gc(self) -> GcReport:
        """Remove what interrupted writers left; bring dist/ back in step."""
        from registry_cli.core import upkeep

        return upkeep.gc(self)


INIT_CONFIG = """\
# regctl registry configuration. Every key is optional; see registry.yaml.example
# in the regctl repository for the full list with explanations.
format_version: 1

# stages: [dev, release]
# gates:
#   release:
#     metrics: {accuracy: ">= 0.9"}
#     tags: [dataset]
# best: {metric: accuracy, mode: max}
# bundle: {compression: stored}
"""
