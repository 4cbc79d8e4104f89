"""Read a lightweight YAML registry: ``regctl import yaml-registry PATH``.

``PATH/registry.yaml`` holds the metadata and ``PATH/models/<name>/vN/`` the
copied files (the schema, inferred from that system's design notes, is in
docs/import.md). The whole file is checked before anything is written: bad
YAML, a model or version that is not a mapping, a metric that is not a
number, an unknown stage or two Production versions is exit 2 naming the
place. A version whose folder is gone is imported from its ``path`` when that
file is on this machine, else reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry_cli.core.names import VERSION_SEGMENT_RE, validate_model_name
from registry_cli.errors import BadInput
from registry_cli.importers import legacy
from registry_cli.importers.facts import clean_key, iso_time, number, strings_of, tags_of
from registry_cli.importers.source import AuditRecord, SourceModel, SourceRegistry, SourceVersion

TOP_KEYS = ("models", "audit", "format_version")
ARTIFACT_KEYS = ("path", "model_path", "file", "artifact_path", "artifact_url", "url")


def _load(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no registry.yaml in {path.parent}",
            hint="give the folder that holds registry.yaml and models/",
        ) from None
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{path}: not valid YAML{at}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: the top level is not a mapping of models")
    return doc


def _models_of(doc: dict[str, Any], where: str) -> dict[str, Any]:
    if isinstance(doc.get("models"), dict):
        return doc["models"]
    if "models" in doc:
        raise BadInput(f"{where}: 'models' is not a mapping")
    return {k: v for k, v in doc.items() if k not in TOP_KEYS}


def _versions_of(entry: dict[str, Any], where: str) -> dict[str, Any]:
    if "versions" in entry:
        if not isinstance(entry["versions"], dict):
            raise BadInput(f"{where}: 'versions' is not a mapping")
        return entry["versions"]
    return {k: v for k, v in entry.items() if VERSION_SEGMENT_RE.match(str(k))}


def _metrics(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: 'metrics' is not a mapping")
    out = {}
    for key, value in raw.items():
        found = number(value)
        if found is None:
            raise BadInput(f"{where}: metric {key!r} is not a number ({value!r})")
        out[clean_key(key)] = found
    return out


def _version(
    folder: Path, name: str, label: str, raw: Any, where: str, stages: tuple[str, ...]
) -> tuple[SourceVersion, str]:
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: not a mapping")
    try:
        tags = tags_of(raw.get("tags"))
        created_at = iso_time(raw.get("created_at") or raw.get("registered_at"))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{where}: {exc}") from None
    params_raw = raw.get("params") or raw.get("metadata") or {}
    if not isinstance(params_raw, dict):
        raise BadInput(f"{where}: 'params' is not a mapping")
    stage = legacy.stage_of(raw.get("stage"), stages, where)
    vdir = folder / "models" / name / label
    given = next((raw[k] for k in ARTIFACT_KEYS if raw.get(k)), None)
    if vdir.is_dir() and any(vdir.iterdir()):
        fetch, problem, size = legacy.local_fetch(vdir, folder)
    elif given is not None:
        fetch, problem, size = legacy.local_fetch(str(given), folder)
    else:
        fetch, problem, size = None, f"models/{name}/{label}/ is missing or empty", None
    version = SourceVersion(
        label=label,
        identity=f"yaml-registry:{folder}#{name}:{label}",
        source={"type": "yaml-registry", "registry": str(folder), "model": name, "version": label},
        fetch=fetch,
        problem=problem,
        size=size,
        metrics=_metrics(raw.get("metrics"), where),
        params=strings_of(params_raw),
        tags=tags,
        description=str(raw["description"]) if raw.get("description") else None,
        created_at=created_at,
        created_by=str(raw.get("created_by") or raw.get("author") or "") or None,
    )
    return version, stage


def _audit(raw: Any, path: Path, folder: Path) -> dict[str, list[AuditRecord]]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise BadInput(f"{path}: 'audit' is not a list")
    out: dict[str, list[AuditRecord]] = {}
    for i, entry in enumerate(raw, start=1):
        where = f"{path}: audit entry {i}"
        if not isinstance(entry, dict) or not entry.get("model") or not entry.get("action"):
            raise BadInput(f"{where}: needs at least 'model', 'action' and 'time'")
        try:
            time = iso_time(entry.get("time") or entry.get("timestamp"))
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{where}: {exc}") from None
        if time is None:
            raise BadInput(f"{where}: no 'time'")
        details: dict[str, Any] = entry["details"] if isinstance(entry.get("details"), dict) else {}
        version = entry.get("version")
        out.setdefault(str(entry["model"]), []).append(
            AuditRecord(
                identity=f"yaml-registry:{folder}#audit/{i}",
                time=time,
                actor=str(entry.get("actor") or "unknown"),
                action=str(entry["action"]),
                version_label=str(version) if version is not None else None,
                details=dict(details),
            )
        )
    return out


def read(folder: Path, stages: tuple[str, ...]) -> SourceRegistry:
    folder = folder.expanduser().absolute()
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder", hint="give the folder holding registry.yaml")
    path = folder / "registry.yaml"
    doc = _load(path)
    audit = _audit(doc.get("audit"), path, folder)
    models = []
    for raw_name, entry in _models_of(doc, str(path)).items():
        name = str(raw_name)
        where = f"{path}: model {name!r}"
        try:
            validate_model_name(name)
        except BadInput as exc:
            raise BadInput(f"{path}: {exc.message}", hint=exc.hint) from None
        if not isinstance(entry, dict):
            raise BadInput(f"{where} is not a mapping of versions")
        model = SourceModel(name=name, versions=[])
        stage_by_label: dict[str, str] = {}
        for label, raw in _versions_of(entry, where).items():
            label = str(label)
            if not VERSION_SEGMENT_RE.match(label):
                raise BadInput(f"{where}: version key {label!r} is not like v3")
            version, stage = _version(folder, name, label, raw, f"{where} {label}", stages)
            model.versions.append(version)
            stage_by_label[label] = stage
        legacy.settle(model, stage_by_label, [], stages, str(path))
        model.audit = audit.pop(name, [])
        models.append(model)
    notes = [f"audit entries of {m!r} name no model in registry.yaml; skipped" for m in audit]
    return SourceRegistry(
        kind="yaml-registry", display=f"yaml-registry {folder}", models=models, notes=notes
    )
