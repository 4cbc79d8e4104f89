"""``registry.yaml``: where it is found, how it is read and validated.

Lookup (see docs/configuration.md): ``--config``, ``$REGCTL_CONFIG``, ``<cwd>/registry.yaml``,
then ``<root>/registry.yaml``. Root: ``--root``, ``$REGCTL_ROOT``, ``root:``
in the config (relative to the config file's folder), else ``./registry``.
Every error names the file and, where the YAML parser knows it, the line.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from registry_cli.core.gates import StageGate, parse_condition
from registry_cli.core.names import ALIAS_RE, validate_key
from registry_cli.errors import ConfigError
from registry_cli.settings import SECTIONS, Loaded
from registry_cli.settings.retention import RetentionRule, parse_retention
from registry_cli.storage import layout
from registry_cli.storage.store import Missing, Store

if TYPE_CHECKING:
    from registry_cli.core.webhooks import Webhook
    from registry_cli.settings.oci_mirrors import Mirror

DEFAULT_STAGES = ("dev", "release")
COMPRESSION_NAMES = {"stored": 0, "none": 0, "fast": 1, "default": 6, "best": 9}
TOP_KEYS = {
    "format_version",
    "root",
    "stages",
    "gates",
    "best",
    "bundle",
    "publish",
    "ftp",
    "serve",
    "mlflow",
    "pull",
    "webhooks",
    "server",
    "remote",
    "s3",
    "fleet",
    "events",
    "oci_mirrors",
    "retention",
}


@dataclass
class Config:
    path: Path | None = None
    root: Path | str | None = None  # a str only for an s3://BUCKET/PREFIX root
    stages: tuple[str, ...] = DEFAULT_STAGES
    gates: dict[str, StageGate] = field(default_factory=dict)
    best_metric: str | None = None
    best_mode: str = "max"
    bundle_level: int = 0
    publish_fsync: bool = False
    sections: dict[str, Loaded] = field(default_factory=dict)
    webhooks: tuple[Webhook, ...] = ()
    oci_mirrors: tuple[Mirror, ...] = ()  # docs/oci.md#mirrors
    retention: tuple[RetentionRule, ...] = ()  # prune without flags (settings/retention.py)

    def section(self, name: str) -> Loaded:
        """The checked ``ftp:``/``serve:``/``mlflow:``/``pull:`` values (empty if absent)."""
        return self.sections.get(name) or Loaded(name, {}, {})


class _Located:
    """Finds the line of a key path in a composed YAML node tree."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def line(self, *path: str) -> int | None:
        node = self.node
        line = None
        for key in path:
            if node is None or not hasattr(node, "value") or not isinstance(node.value, list):
                break
            found = None
            for item in node.value:
                if isinstance(item, tuple) and getattr(item[0], "value", None) == key:
                    found = item
                    break
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        return line


def _fail(path: Path, loc: _Located, message: str, *keys: str) -> ConfigError:
    line = loc.line(*keys) if keys else None
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(f"{where}: {message}", hint="see registry.yaml.example for every key")


def parse_compression(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int) and 0 <= value <= 9:
        return value
    if isinstance(value, str) and value.lower() in COMPRESSION_NAMES:
        return COMPRESSION_NAMES[value.lower()]
    raise ValueError(value)


_PLAIN_LINE = re.compile(r" *(#.*)?|format_version: +1( +#.*)?")


def plain_config(text: str) -> dict[str, Any] | None:
    """What YAML reads from a registry.yaml made only of comments, blank lines and
    ``format_version: 1`` (what ``regctl init`` writes), read without the YAML parser;
    None for any other document (printable ASCII only, one ``format_version`` at most)."""
    if not text.isascii() or not text.replace("\n", "").isprintable():
        return None
    lines = text.split("\n")
    if not all(_PLAIN_LINE.fullmatch(line) for line in lines):
        return None
    versions = sum(line.startswith("format_version") for line in lines)
    return {"format_version": 1} if versions == 1 else {} if versions == 0 else None


def load_config_file(path: Path) -> Config:
    """Read and validate one registry.yaml."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    data: Any = plain_config(text)
    node = None
    if data is None:
        data, node = _parse_yaml(path, text)
    loc = _Located(node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(path, loc, "the top level must be a mapping")
    cfg = Config(path=path)
    for key in data:
        if key not in TOP_KEYS:
            raise _fail(path, loc, f"unknown key {key!r}", str(key))
    fv = data.get("format_version", 1)
    if fv != 1:
        raise _fail(
            path, loc, f"unsupported format_version {fv!r} (this regctl reads 1)", "format_version"
        )
    if data.get("root") is not None:
        if not isinstance(data["root"], str):
            raise _fail(path, loc, "root must be a path string", "root")
        if is_object_store(data["root"]):
            cfg.root = data["root"]
        else:
            root = Path(os.path.expanduser(data["root"]))
            cfg.root = root if root.is_absolute() else path.parent / root
    if "stages" in data:
        stages = data["stages"]
        if (
            not isinstance(stages, list)
            or not stages
            or not all(isinstance(s, str) and ALIAS_RE.match(s) for s in stages)
            or len(set(stages)) != len(stages)
        ):
            raise _fail(path, loc, "stages must be a non-empty list of distinct names", "stages")
        cfg.stages = tuple(stages)
    gates = data.get("gates") or {}
    if not isinstance(gates, dict):
        raise _fail(path, loc, "gates must map a stage to its conditions", "gates")
    for stage, spec in gates.items():
        if stage not in cfg.stages:
            raise _fail(path, loc, f"gate for unknown stage {stage!r}", "gates", str(stage))
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"metrics", "tags", "signed_by"}:
            raise _fail(
                path, loc, "a gate has only 'metrics', 'tags' and 'signed_by'", "gates", stage
            )
        conds = []
        for metric, expr in (spec.get("metrics") or {}).items():
            try:
                conds.append(parse_condition(str(metric), str(expr)))
            except ValueError:
                raise _fail(
                    path,
                    loc,
                    f"gate {metric}: {expr!r} is not OP NUMBER (OP one of >= > <= < == !=)",
                    "gates",
                    stage,
                    "metrics",
                    str(metric),
                ) from None
        tags = spec.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _fail(path, loc, "gate tags must be a list of tag names", "gates", stage, "tags")
        signed_by = spec.get("signed_by") or []
        if isinstance(signed_by, str):
            signed_by = [signed_by]
        if not isinstance(signed_by, list) or not all(isinstance(k, str) for k in signed_by):
            raise _fail(
                path, loc, "gate signed_by must list public key files", "gates", stage, "signed_by"
            )
        base = path.parent if path is not None else Path.cwd()
        keys = tuple(str(base / os.path.expanduser(k)) for k in signed_by)
        cfg.gates[stage] = StageGate(tuple(conds), tuple(tags), keys)
    best = data.get("best") or {}
    if not isinstance(best, dict) or set(best) - {"metric", "mode"}:
        raise _fail(path, loc, "best has only 'metric' and 'mode'", "best")
    if best.get("metric") is not None:
        try:
            cfg.best_metric = validate_key(str(best["metric"]), "metric")
        except Exception:
            raise _fail(path, loc, f"invalid best.metric {best['metric']!r}", "best") from None
    if best.get("mode", "max") not in ("max", "min"):
        raise _fail(path, loc, "best.mode must be max or min", "best", "mode")
    cfg.best_mode = best.get("mode", "max")
    bundle = data.get("bundle") or {}
    if not isinstance(bundle, dict) or set(bundle) - {"compression"}:
        raise _fail(path, loc, "bundle has only 'compression'", "bundle")
    if "compression" in bundle:
        try:
            cfg.bundle_level = parse_compression(bundle["compression"])
        except ValueError:
            raise _fail(
                path,
                loc,
                "bundle.compression must be stored, fast, default, best or a gzip level 0-9",
                "bundle",
                "compression",
            ) from None
    publish = data.get("publish") or {}
    if not isinstance(publish, dict) or set(publish) - {"fsync"}:
        raise _fail(path, loc, "publish has only 'fsync'", "publish")
    if not isinstance(publish.get("fsync", False), bool):
        raise _fail(path, loc, "publish.fsync must be true or false", "publish", "fsync")
    cfg.publish_fsync = publish.get("fsync", False)
    try:
        cfg.retention = parse_retention(data.get("retention"))
    except ValueError as exc:
        raise _fail(path, loc, str(exc), "retention") from None
    if isinstance(data.get("remote"), str):  # the shorthand remote: URL
        data["remote"] = {"url": data["remote"]}
    for name, spec in SECTIONS.items():
        cfg.sections[name] = spec.load(data.get(name), path, functools.partial(loc.line, name))
    if "webhooks" in data:
        from registry_cli.core.webhooks import WebhookConfigError, parse_webhooks

        try:
            cfg.webhooks = parse_webhooks(data.get("webhooks"))
        except WebhookConfigError as exc:
            line = exc.line_in(loc.node)
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(
                f"{where}: {exc}", hint="see registry.yaml.example for every key"
            ) from None
    if data.get("oci_mirrors") is not None:
        from registry_cli.settings.oci_mirrors import MirrorConfigError, parse_mirrors

        try:
            cfg.oci_mirrors = parse_mirrors(data["oci_mirrors"], path.parent)
        except MirrorConfigError as exc:
            raise _fail(path, loc, str(exc), "oci_mirrors") from None
    return cfg


def _parse_yaml(path: Path, text: str) -> tuple[Any, Any]:
    """The document and its node tree (for the lines of errors)."""
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader), yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def find_config_path(explicit: str | os.PathLike[str] | None, root: Path | None) -> Path | None:
    """The config file to read, or None. An explicit path must exist."""
    chosen = explicit or os.environ.get("REGCTL_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    cwd_cfg = Path.cwd() / "registry.yaml"
    if cwd_cfg.is_file():
        return cwd_cfg
    if root is not None and (root / "registry.yaml").is_file():
        return root / "registry.yaml"
    return None


def is_object_store(root: object) -> TypeGuard[str]:
    """An ``s3://BUCKET/PREFIX`` root (docs/object-storage.md): a URL string, never a Path."""
    return isinstance(root, str) and root.startswith("s3://")


def root_location(root: str | os.PathLike[str]) -> Path | str:
    """A root as the registry keeps it: an s3:// URL as is, a folder as an absolute Path."""
    if isinstance(root, str) and is_object_store(root):
        return root
    return Path(root).absolute()


def resolve_root_and_config(
    root: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
) -> tuple[Path | str, Config]:
    """Apply the lookup order of docs/configuration.md; return ``(root, config)``. An object-store
    root is an ``s3://`` URL string (its ``registry.yaml`` is read through the store)."""
    explicit_root = root or os.environ.get("REGCTL_ROOT")
    if is_object_store(explicit_root):
        path = find_config_path(config, None)
        return explicit_root, load_config_file(path) if path else Config()
    root_path = Path(explicit_root) if explicit_root else None
    path = find_config_path(config, root_path)
    cfg = load_config_file(path) if path else Config()
    if root_path is None:
        if is_object_store(cfg.root):
            return cfg.root, cfg
        root_path = Path(cfg.root or "registry")
        if path is None and (root_path / "registry.yaml").is_file():
            cfg = load_config_file(root_path / "registry.yaml")
    return root_path.absolute(), cfg


def level0_folder_root(
    root: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None
) -> Path | None:
    """The root :func:`resolve_root_and_config` finds when it is a folder whose bundles
    are level 0 and whose config names no registry server; else None."""
    found, cfg = resolve_root_and_config(root, config)
    if is_object_store(found) or cfg.bundle_level != 0 or cfg.section("remote").get("url"):
        return None
    return Path(found)


def config_in_store(store: Store) -> Config | None:
    """``registry.yaml`` kept in an object-store root, read through the store (a local
    copy in the cache is what error messages name); None when there is none."""
    try:
        data = store.read(layout.CONFIG)
    except Missing:
        return None
    local = store.local_path(layout.CONFIG)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    try:
        return load_config_file(local)
    except ConfigError as exc:  # name the object, not the local copy
        exc.message = exc.message.replace(str(local), f"{store.location}/{layout.CONFIG}")
        raise


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
