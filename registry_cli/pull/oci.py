"""``pull --from oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``: an OCI registry as a pull
source (see docs/oci.md#pull).

The registry is read as if it were a served tree, so the puller's per-file path
(resumable with ``Range``, verified, installed atomically, cached) is the same
as for every other source: ``<stage>/<name>/LATEST.json`` is the artifact of the
URL's tag or digest (without one, the tag named like the stage: a mirror's
``release``), ``index.json`` lists every ``vN`` tag, ``versions/vN/manifest.json``
is the version's ``manifest.json`` carried in its config blob, and each payload
file is its layer's blob. The manifest, config and layers are checked against
each other (:func:`registry_cli.oci.remote.fetch_artifact`) and each file against
its sha256 as it arrives. Credentials: the Docker config's ``auths``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry_cli.core.served.documents import IndexEntry, index_bytes, latest_bytes
from registry_cli.errors import BadInput, IntegrityError, NotFound, RemoteError
from registry_cli.oci import auth, mapping
from registry_cli.oci.client import RegistryClient
from registry_cli.oci.reference import OciRef, parse_ref
from registry_cli.oci.remote import fetch_artifact, version_tags
from registry_cli.pull.sources import Source, parse_source
from registry_cli.pull.transports import Fetched, sink_for, why
from registry_cli.storage.hashing import Progress
from registry_cli.storage.streams import pump

if TYPE_CHECKING:
    from hashlib import _Hash
    from pathlib import Path

_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_FILE_RE = re.compile(r"(?:.+/)?versions/v([0-9]+)/(.+)\Z")


def parse_oci_source(raw: str) -> Source:
    """An ``oci://`` source (parsed where every ``--from`` is)."""
    return parse_source(raw)


def source_ref(source: Source) -> OciRef:
    host = f"[{source.host}]" if ":" in source.host else source.host
    port = f":{source.port}" if source.port else ""
    return parse_ref(f"oci://{host}{port}/{source.base}")


def transport_for(source: Source, *, ca_cert: Path | None, timeout: float) -> Any:
    """The transport of an ``s3://`` or ``oci://`` source (the puller's hook)."""
    if source.kind == "s3":
        from registry_cli.pull.s3 import S3Transport

        return S3Transport(source, timeout=timeout)
    return OciTransport(source, ca_cert=ca_cert, timeout=timeout)


class OciTransport:
    """A registry repository read as a served tree (see the module docstring)."""

    def __init__(
        self,
        source: Source,
        *,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
        _seen: dict[int, tuple[mapping.Artifact, str]] | None = None,
    ) -> None:
        self.source = source
        self.ca_cert = ca_cert
        self.timeout = timeout
        self.ref = source_ref(source)
        self.client = RegistryClient(
            OciRef(self.ref.host, self.ref.port, self.ref.repo),
            plain_http=not source.tls,
            ca_cert=ca_cert,
            credentials=auth.from_docker_config(self.ref.registry),
            timeout=timeout,
        )
        self.description = self.ref.display
        self._seen: dict[int, tuple[mapping.Artifact, str]] = {} if _seen is None else _seen

    # ------------------------------------------------------------ documents
    def _artifact(self, reference: str, name: str) -> tuple[mapping.Artifact, str]:
        art, digest = fetch_artifact(self.client, reference)
        if art.name != name:
            raise BadInput(
                f"{self.description} ({reference}) holds {art.name}, not {name}",
                hint=f"pull it as: regctl pull {art.name} --from {self.ref.display}",
            )
        self._seen[int(art.version[1:])] = (art, digest)
        return art, digest

    @staticmethod
    def manifest_bytes(art: mapping.Artifact) -> bytes:
        return (json.dumps(art.facts, indent=2, ensure_ascii=False) + "\n").encode()

    def _entry(self, art: mapping.Artifact, digest: str) -> IndexEntry:
        return IndexEntry(
            version=int(art.version[1:]),
            status="active",
            sha256=digest.split(":", 1)[1],
            size=sum(layer.size for layer in art.layers),
            published_at=str(art.facts.get("created_at") or ""),
            manifest_sha256=hashlib.sha256(self.manifest_bytes(art)).hexdigest(),
        )

    def read_small(self, relpath: str, limit: int) -> bytes:
        stage, _, rest = relpath.partition("/")
        if rest.endswith("/LATEST.json"):
            name = rest[: -len("/LATEST.json")]
            reference = self.ref.digest or self.ref.tag or stage
            art, digest = self._artifact(reference, name)
            return latest_bytes(name, stage, self._entry(art, digest))
        if rest.endswith("/index.json"):
            name = rest[: -len("/index.json")]
            if self.ref.digest or self.ref.tag:
                found = [self._artifact(self.ref.digest or str(self.ref.tag), name)]
            else:
                found = [self._artifact(tag, name) for _n, tag in version_tags(self.client)]
            entries = [self._entry(a, d) for a, d in found]
            return index_bytes(name, stage, None, entries)
        match = _FILE_RE.match(relpath)
        if match and match.group(2) == "manifest.json" and int(match.group(1)) in self._seen:
            return self.manifest_bytes(self._seen[int(match.group(1))][0])
        raise NotFound(f"{relpath} is not on {self.description}")

    # ------------------------------------------------------------ payload
    def download(
        self,
        relpath: str,
        fd: int,
        progress: Progress | None = None,
        *,
        offset: int = 0,
        prefix: _Hash | None = None,
        validator: str | None = None,
        limit: int | None = None,
        on_validator: Callable[[str | None], None] | None = None,
    ) -> Fetched:
        match = _FILE_RE.match(relpath)
        seen = self._seen.get(int(match.group(1))) if match else None
        layer = None
        if match and seen is not None:
            layer = next((x for x in seen[0].layers if x.path == match.group(2)), None)
        if layer is None:
            raise NotFound(f"{relpath} is not on {self.description}")
        if validator and validator != layer.digest:
            offset = 0  # a partial file of other bytes: start over
        resp = self.client.open_blob(layer.digest, offset)
        start = 0
        if resp.status == 206:
            found = _CONTENT_RANGE_RE.match(resp.getheader("Content-Range") or "")
            if not offset or not found or int(found.group(1)) != offset:
                self.client.close()
                raise IntegrityError(
                    f"{relpath} from {self.description}: a 206 reply with the wrong range"
                )
            start = offset
        if on_validator is not None:
            on_validator(layer.digest)  # a blob never changes: its digest validates it
        declared = resp.getheader("Content-Length")
        try:
            size, digest = pump(
                resp.readinto,  # type: ignore[arg-type]
                fd,
                progress,
                sink=sink_for(fd, start, prefix if start else None),
                limit=limit,
            )
        except (OSError, http.client.HTTPException) as exc:
            self.client.close()
            raise RemoteError(
                f"{self.description}: transfer of {layer.digest} was cut: {why(exc)}",
                hint="run the same pull again: it resumes where it stopped",
            ) from None
        if limit is not None and size > limit:
            self.client.close()
        elif declared is not None and size - start < int(declared):
            self.client.close()
            raise RemoteError(
                f"{self.description}: transfer of {layer.digest} was cut after "
                f"{size - start} of {declared} bytes",
                hint="run the same pull again: it resumes where it stopped",
            )
        return Fetched(size, digest, layer.digest, start)

    def fork(self) -> OciTransport:
        other = OciTransport(
            self.source, ca_cert=self.ca_cert, timeout=self.timeout, _seen=self._seen
        )
        other.client.authorization = self.client.authorization
        return other

    def close(self) -> None:
        self.client.close()
