"""``regctl push REF oci://HOST[:PORT]/REPO`` (see docs/oci.md#push).

The version's artifact comes from :mod:`registry_cli.oci.mapping` (the same bytes
``export --oci-layout`` and serve-registry's ``/v2/`` give). Every blob is asked for
first (``HEAD``); only the missing ones are uploaded, streamed from the store
(monolithic up to 64 MiB, chunked above). Then the manifest is put under ``vN`` and
each extra tag, and the signatures (if any) as their own artifact, tagged
``sha256-<hex>.sig``. A second push of the same version sends no blob bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.oci import catalog, mapping
from registry_cli.oci.auth import Credentials
from registry_cli.oci.client import Body, RegistryClient, file_chunks
from registry_cli.oci.reference import OciRef, check_tag

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry


@dataclass
class PushResult:
    repository: str
    digest: str
    tags: list[str]
    pushed_bytes: int = 0
    skipped_bytes: int = 0
    uploaded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tags": self.tags,
            "pushed_bytes": self.pushed_bytes,
            "skipped_bytes": self.skipped_bytes,
        }


@dataclass(frozen=True)
class Target:
    """Where to push and how to talk to it."""

    ref: OciRef
    plain_http: bool = False
    ca_cert: Path | None = None
    credentials: Credentials | None = None

    def client(self) -> RegistryClient:
        return RegistryClient(
            self.ref,
            plain_http=self.plain_http,
            ca_cert=self.ca_cert,
            credentials=self.credentials,
            actions="pull,push",
        )


def _store_body(reg: ModelRegistry, key: str) -> Callable[[int, int], Body]:
    """Parts of a stored file, streamed (a local path where the store has one)."""
    from registry_cli.storage.fs_store import FsStore

    if isinstance(reg.store, FsStore):
        path = reg.store.local_path(key)
        return lambda start, length: file_chunks(path, start, length)

    def part(start: int, length: int) -> Callable[[], Iterator[bytes]]:
        def body() -> Iterator[bytes]:
            with reg.store.open(key) as stream:
                skip = start
                while skip:
                    skip -= len(stream.read(min(skip, 1 << 20)) or b"x" * skip)
                left = length
                while left:
                    block = stream.read(min(left, 1 << 20))
                    if not block:
                        return
                    left -= len(block)
                    yield block

        return body

    return part


def _bytes_body(data: bytes) -> Callable[[int, int], Body]:
    return lambda start, length: data[start : start + length]


def push_version(
    reg: ModelRegistry,
    ref: str,
    target: Target,
    tags: list[str] | tuple[str, ...] = (),
    *,
    notify: Callable[[str], None] | None = None,
) -> PushResult:
    """Push the version ``ref`` names to ``target.ref`` (a repository, no tag)."""
    info = reg.get(ref, with_bundle=False)
    state = reg.model_state(info.name)
    item = catalog.entry(reg, state, info.version)
    artifact = item.artifact
    wanted = list(dict.fromkeys([artifact.version, *(check_tag(t) for t in tags)]))
    result = PushResult(target.ref.display, artifact.digest, wanted)
    client = target.client()
    try:
        seen: set[str] = set()
        blobs: list[tuple[str, int, Callable[[int, int], Body]]] = [
            (artifact.config_digest, len(artifact.config), _bytes_body(artifact.config))
        ]
        for layer in artifact.layers:
            key = catalog.blob_key(reg, info.name, info.version, layer)
            blobs.append((layer.digest, layer.size, _store_body(reg, key)))
        sigs = catalog.signatures(reg, info.name, info.version)
        sig = mapping.signature_artifact(artifact, sigs) if sigs else None
        if sig is not None:
            blobs.append(
                (mapping.digest_of(mapping.EMPTY_BLOB), 2, _bytes_body(mapping.EMPTY_BLOB))
            )
            blobs += [(mapping.digest_of(d), len(d), _bytes_body(d)) for _s, d in sig.blobs]
        for digest, size, body in blobs:
            if digest in seen:
                continue
            seen.add(digest)
            if client.blob_exists(digest):
                result.skipped_bytes += size
                continue
            if notify:
                notify(f"uploading {digest[:19]} ({size} bytes)")
            before = client.sent_bytes
            client.upload_blob(digest, size, body)
            result.pushed_bytes += client.sent_bytes - before
            result.uploaded.append(digest)
        for tag in wanted:
            client.put_manifest(tag, artifact.manifest)
        if sig is not None:
            client.put_manifest(mapping.signature_tag(artifact.digest), sig.manifest)
    finally:
        client.close()
    return result
