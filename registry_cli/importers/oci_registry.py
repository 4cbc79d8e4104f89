"""``regctl import oci://HOST[:PORT]/REPO``: every ``vN`` tag of a repository that
is a regctl model artifact (see docs/oci.md#import).

Each version keeps its number and facts (the config blob carries its
``manifest.json``); its identity is ``oci:<manifest digest>``, recorded as
``source.uri``, so a rerun imports only what is new. Tags that name a stage of
this root become that stage's LATEST, other tags on a version become aliases
(reserved ones excepted). A tag whose manifest is not a model (a container
image, another artifact) is skipped with a note; a ``vN`` tag that is foreign is
exit 2 before anything is written; every layer is checked against its digest
while it is downloaded, before its version is written (exit 5 for that version).
"""

from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path
from typing import Any

from registry_cli.core.names import RESERVED_ALIASES
from registry_cli.errors import BadInput, IntegrityError, RemoteError
from registry_cli.importers.source import (
    Fetched,
    SourceModel,
    SourceRegistry,
    SourceVersion,
    chain_promotions,
    fetched_as_recorded,
)
from registry_cli.oci import auth, mapping
from registry_cli.oci.client import RegistryClient
from registry_cli.oci.reference import parse_ref
from registry_cli.oci.remote import fetch_artifact, version_tags

BLOCK = 1 << 20


def _download(client: RegistryClient, layer: mapping.Layer, dest: Path) -> None:
    resp = client.open_blob(layer.digest)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(dest, "wb") as out:
            while True:
                block = resp.read(BLOCK)
                if not block:
                    break
                digest.update(block)
                size += len(block)
                out.write(block)
    except (OSError, http.client.HTTPException) as exc:
        client.close()
        raise RemoteError(
            f"{client.description}: transfer of {layer.digest} was cut: {exc}",
            hint="run the same import again",
        ) from None
    if size != layer.size or digest.hexdigest() != layer.sha256:
        raise IntegrityError(
            f"{layer.path} from {client.ref.display}: got sha256 {digest.hexdigest()} "
            f"({size} bytes), the manifest says {layer.digest} ({layer.size} bytes)",
            hint="the registry's copy is damaged or tampered with",
        )


def _fetch(client: RegistryClient, art: mapping.Artifact) -> Any:
    def fetch(scratch: Path) -> Fetched:
        files = []
        for i, layer in enumerate(art.layers):
            dest = scratch / f"layer-{i}"
            _download(client, layer, dest)
            os.chmod(dest, 0o644)
            files.append((dest, layer.title))
        return fetched_as_recorded(art.facts, files, move=True)

    return fetch


def read(
    text: str,
    stages: tuple[str, ...],
    *,
    plain_http: bool = False,
    ca_cert: Path | None = None,
) -> SourceRegistry:
    """Every model version tagged ``vN`` in the repository at ``text`` (checked)."""
    ref = parse_ref(text, reference=False)
    client = RegistryClient(
        ref,
        plain_http=plain_http,
        ca_cert=ca_cert,
        credentials=auth.from_docker_config(ref.registry),
    )
    notes: list[str] = []
    by_digest: dict[str, str] = {}
    models: dict[str, SourceModel] = {}
    for _number, tag in version_tags(client):
        art, digest = fetch_artifact(client, tag)
        if art.version != tag:
            raise BadInput(f"{ref.display}:{tag} holds {art.name}:{art.version}, not {tag}")
        by_digest[digest] = art.version
        model = models.setdefault(art.name, SourceModel(art.name, []))
        model.versions.append(
            SourceVersion(
                label=art.version,
                identity=f"oci:{digest}",
                source=dict(art.facts.get("source") or {}),
                fetch=_fetch(client, art),
                size=sum(layer.size for layer in art.layers),
                created_at=art.facts.get("created_at"),
                created_by=art.facts.get("created_by"),
            )
        )
    if len(models) > 1:
        raise BadInput(f"{ref.display} holds versions of {len(models)} models: {sorted(models)}")
    for model in models.values():
        _lifecycle(client, model, by_digest, stages, notes)
    return SourceRegistry(
        kind="oci-registry",
        display=ref.display,
        models=list(models.values()),
        notes=notes,
        close=client.close,
    )


def _lifecycle(
    client: RegistryClient,
    model: SourceModel,
    by_digest: dict[str, str],
    stages: tuple[str, ...],
    notes: list[str],
) -> None:
    """Stage tags as each stage's LATEST, other tags as aliases (by manifest digest)."""
    labels = {v.label for v in model.versions}
    for tag in client.tags():
        if tag in labels or tag.endswith(".sig"):
            continue
        try:
            _data, _media, digest = client.manifest(tag)
        except (BadInput, IntegrityError) as exc:
            notes.append(f"tag {tag} skipped: {exc}")
            continue
        label = by_digest.get(digest)
        if label is None:
            notes.append(f"tag {tag} is not a version of {model.name}: skipped")
        elif tag in stages[1:]:
            model.promotions.setdefault(tag, []).append(label)
        elif tag == stages[0]:
            model.first_latest, model.keep_first_latest = label, True
        elif tag == "candidate":
            model.candidate, model.explicit_candidate = label, True
        elif tag == "champion":
            last = model.promotions.setdefault(stages[-1], [])
            if label not in last:
                last.append(label)
        elif tag not in RESERVED_ALIASES:
            model.aliases[tag] = label
    for members in model.promotions.values():
        members.sort(key=lambda label: int(label[1:]))
    chain_promotions(model, stages)
