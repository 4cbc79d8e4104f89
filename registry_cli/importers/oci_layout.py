"""``regctl import oci-layout:DIR``: versions from an OCI image layout that
``regctl export --oci-layout`` wrote (see docs/oci.md#air-gaps).

Each version keeps its number and its facts exactly (the config blob carries its
``manifest.json`` whole, so the imported version yields the same manifest digest);
its stages, LATEST pointers, aliases and status come from the annotations of its
index entries, its signatures from the artifact tagged ``sha256-<hex>.sig``. Every
digest is checked before anything of a version is written: a version with one bad
byte is reported (exit 5) and the others are imported. A version is already here
when a local version of the model yields the same manifest digest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry_cli.core.names import RESERVED_ALIASES
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.importers.source import (
    Fetched,
    SourceModel,
    SourceRegistry,
    SourceVersion,
    chain_promotions,
    fetched_as_recorded,
)
from registry_cli.oci import layout, mapping

_BUILT_IN = {
    "format_version", "kind", "name", "version", "created_at", "created_by", "source",
    "files", "metrics", "params", "tags", "description", "derived_from",
    "standard_artifacts", "preferred_weight", "signature",
}  # fmt: skip


def _identity(digest: str) -> str:
    return f"oci:{digest}"


def identify(info: Any) -> str | None:
    """The identity of a local version: the digest of its OCI manifest."""
    if not info.manifest:
        return None
    return _identity(mapping.artifact_of(info.manifest).digest)


def _fetch(folder: Path, item: layout.LayoutVersion) -> Any:
    def fetch(_scratch: Path) -> Fetched:
        layout.verify_payload(folder, item)  # every digest first: nothing written before
        assert item.artifact is not None
        facts = item.artifact.facts
        extra = {k: v for k, v in facts.items() if k not in _BUILT_IN}
        if facts.get("derived_from"):
            extra["derived_from"] = facts["derived_from"]  # as recorded, parent here or not
        files = [
            (layout.blob_path(folder, layer.digest), layer.title) for layer in item.artifact.layers
        ]
        return fetched_as_recorded(facts, files, move=False, extra=extra)

    return fetch


def _broken(why: str) -> Any:
    def fetch(_scratch: Path) -> Fetched:
        raise IntegrityError(why, hint="the layout was changed after export; export it again")

    return fetch


def _model(
    folder: Path, name: str, items: list[layout.LayoutVersion], stages: tuple[str, ...]
) -> SourceModel:
    model = SourceModel(name, [])
    for item in sorted(items, key=lambda i: _number(i.version)):
        facts = item.artifact.facts if item.artifact else {}
        size = sum(layer.size for layer in item.artifact.layers) if item.artifact else None
        model.versions.append(
            SourceVersion(
                label=item.version,
                identity=_identity(item.digest),
                source=dict(facts.get("source") or {}),
                fetch=_broken(item.problem) if item.problem else _fetch(folder, item),
                size=size,
                created_at=facts.get("created_at"),
                created_by=facts.get("created_by"),
                archived=item.annotations.get(mapping.STATUS) == "archived",
            )
        )
    for stage in stages[1:]:
        members = [i for i in items if stage in i.listed(mapping.STAGES)]
        members.sort(key=lambda i: (stage in i.listed(mapping.LATEST_OF), _number(i.version)))
        if members:
            model.promotions[stage] = [i.version for i in members]
    chain_promotions(model, stages)
    first = [i.version for i in items if stages[0] in i.listed(mapping.LATEST_OF)]
    if first:
        model.first_latest, model.keep_first_latest = first[0], True
    model.explicit_candidate = True
    for item in items:
        for alias in item.listed(mapping.ALIASES):
            if alias == "candidate":
                model.candidate = item.version
            elif alias not in RESERVED_ALIASES:
                model.aliases[alias] = item.version
    return model


def _number(label: str) -> int:
    return int(label[1:]) if label[1:].isdigit() else 0


def read(text: str, stages: tuple[str, ...]) -> SourceRegistry:
    """Every model version of the layout at ``text`` (its manifests and configs checked)."""
    if not text:
        raise BadInput("oci-layout: needs the folder of the layout (oci-layout:DIR)")
    folder = Path(text).expanduser()
    items = layout.read(folder)
    by_model: dict[str, list[layout.LayoutVersion]] = {}
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    models = [_model(folder, name, by_model[name], stages) for name in sorted(by_model)]
    found = SourceRegistry(
        kind="oci-layout",
        display=f"oci-layout:{folder}",
        models=models,
        identify=identify,
        keep_source=True,
    )
    found.finish = lambda reg, plan: _attach_signatures(reg, plan, folder, items)
    return found


def _attach_signatures(
    reg: Any, plan: Any, folder: Path, items: list[layout.LayoutVersion]
) -> None:
    """Attach each signature a version carries in the layout and lacks here (checked
    against its digest again as it is read; audited as ``sign``)."""
    from registry_cli.core import signatures

    by_key = {(i.model, i.version): i for i in items}
    for mplan in plan.models:
        for label, number in sorted(mplan.numbers.items()):
            item = by_key.get((mplan.model.name, label))
            if item is None or not item.signatures or item.problem:
                continue
            have = set(signatures.signature_names(reg.store, mplan.model.name, number))
            missing = [s for s in item.signatures if s[0] not in have]
            if not missing:
                continue
            info = reg.get(f"{mplan.model.name}:v{number}", with_bundle=False)
            for signer, digest, size in missing:
                path = layout.blob_path(folder, digest)
                data = path.read_bytes()
                if len(data) != size or mapping.digest_of(data) != digest:
                    raise IntegrityError(f"{info.name}:{info.vname}: signature {signer} changed")
                signatures.attach(reg, info, signer, data)
