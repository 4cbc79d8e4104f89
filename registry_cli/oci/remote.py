"""Reading a model artifact from a registry, checked (see docs/oci.md#pull):
the manifest (a foreign media type is exit 2), its config blob against its digest,
and the layers against the facts the config carries (exit 5 on a mismatch)."""

from __future__ import annotations

import re

from registry_cli.oci import mapping
from registry_cli.oci.client import RegistryClient

CONFIG_LIMIT = 16 << 20
VERSION_TAG_RE = re.compile(r"v([1-9][0-9]*)\Z")


def fetch_artifact(client: RegistryClient, reference: str) -> tuple[mapping.Artifact, str]:
    """``(artifact, manifest digest)`` of ``reference`` (a tag or ``sha256:...``)."""
    data, _media, digest = client.manifest(reference)
    where = f"{client.ref.with_repo(client.ref.repo).display}:{reference}"
    doc = mapping.parse_manifest(data, where)
    config = client.blob(doc["config"]["digest"], CONFIG_LIMIT)
    return mapping.facts_of(data, config, where), digest


def version_tags(client: RegistryClient) -> list[tuple[int, str]]:
    """``(number, tag)`` of every ``vN`` tag, oldest first."""
    out = []
    for tag in client.tags():
        found = VERSION_TAG_RE.match(tag)
        if found:
            out.append((int(found.group(1)), tag))
    return sorted(out)
