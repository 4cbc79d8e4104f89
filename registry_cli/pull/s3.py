"""Read a served tree straight from object storage: ``pull --from s3://BUCKET/PREFIX``.

``PREFIX`` is a registry root in the bucket (its ``dist/`` is read) or, when
its last segment is ``dist``, the served tree itself. The endpoint and the
credentials come as for an s3 root (see docs/object-storage.md: ``$REGCTL_S3_ENDPOINT_URL``,
else ``$AWS_ENDPOINT_URL``; the AWS chain). boto3 is imported only here and in
``storage/s3_client.py``, when an ``s3://`` source is used.

A resume asks ``Range: bytes=N-`` with ``If-Match: <ETag>`` of the first
transfer: a 412 means the object changed, and the file starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry_cli.errors import IntegrityError, NotFound, RemoteError
from registry_cli.pull.sources import Source
from registry_cli.pull.transports import Fetched, sink_for
from registry_cli.storage import s3_client as sc
from registry_cli.storage.hashing import Progress
from registry_cli.storage.streams import pump

if TYPE_CHECKING:
    from hashlib import _Hash


class S3Transport:
    """Reads ``dist/`` objects with GetObject; one client shared by forks (thread-safe)."""

    def __init__(self, source: Source, *, timeout: float = 30.0, client: Any = None) -> None:
        from registry_cli.storage.open import s3_options

        self.source = source
        self.description = source.display
        self.options = s3_options()
        self.bucket = source.host
        self.base = source.base.strip("/")
        self.client = client or sc.make_client(self.options)

    def _key(self, relpath: str) -> str:
        base = self.base
        if relpath.startswith("../") and base:  # a blob beside dist/ (pull/remote.py)
            base, relpath = base.rpartition("/")[0], relpath[3:]
        for seg in relpath.split("/"):
            if seg in ("", ".", "..") or "\\" in seg:
                raise IntegrityError(f"{relpath} from {self.description}: unsafe path")
        return f"{base}/{relpath}" if base else relpath

    def _failed(self, relpath: str, exc: Exception) -> Exception:
        if sc.is_missing(exc) and sc.status_of(exc)[1] != "NoSuchBucket":
            return NotFound(f"{relpath} is not in {self.description}")
        return sc.remote_error(exc, self.options, f"reading {relpath} from {self.description}")

    def read_small(self, relpath: str, limit: int) -> bytes:
        try:
            got = self.client.get_object(
                Bucket=self.bucket, Key=self._key(relpath), Range=f"bytes=0-{limit}"
            )
            data = bytes(got["Body"].read())
        except (IntegrityError, NotFound):
            raise
        except Exception as exc:
            raise self._failed(relpath, exc) from None
        if len(data) > limit:
            raise IntegrityError(f"{relpath} is larger than {limit} bytes; refusing it")
        return data

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
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(relpath)}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
            if validator:
                kwargs["IfMatch"] = validator
        try:
            got = self.client.get_object(**kwargs)
        except Exception as exc:
            if offset and (sc.is_precondition_failed(exc) or sc.status_of(exc)[0] == 416):
                return self.download(relpath, fd, progress, limit=limit)  # changed: start over
            failed = self._failed(relpath, exc)
            if isinstance(failed, NotFound):  # maybe a bundle assembled from the blobs
                assembled = self._assembled(relpath)
                if assembled is not None:
                    return self._download_assembled(assembled, fd, progress, offset, prefix, limit)
            raise failed from None
        body = got["Body"]
        declared = int(got.get("ContentLength") or 0)

        def recv_into(view: memoryview) -> int:
            data = body.read(len(view))
            view[: len(data)] = data
            return len(data)

        if on_validator is not None:
            on_validator(got.get("ETag"))
        try:
            size, digest = pump(
                recv_into,
                fd,
                progress,
                sink=sink_for(fd, offset, prefix if offset else None),
                limit=limit,
            )
        except Exception as exc:  # a full disk is told as such by the CLI (its cause)
            raise RemoteError(
                f"{self.description}: transfer of {relpath} was cut: {exc}",
                hint="run the same pull again: it resumes where it stopped",
            ) from None
        finally:
            body.close()
        if (limit is None or size <= limit) and size - offset < declared:
            raise RemoteError(
                f"{self.description}: transfer of {relpath} was cut after "
                f"{size - offset} of {declared} bytes",
                hint="run the same pull again: it resumes where it stopped",
            )
        return Fetched(size, digest, got.get("ETag"), offset)

    def _assembled(self, relpath: str) -> Any:
        """The bundle of a version whose bundle is not stored, read from the registry
        root above this ``dist/`` (its version.yaml, manifest.json and blobs)."""
        from registry_cli.core.served.bundle_files import parse_served_bundle, version_stream
        from registry_cli.storage.cache_root import store_cache_root
        from registry_cli.storage.s3_store import S3Store

        found = parse_served_bundle(relpath)
        if found is None or not (self.base == "dist" or self.base.endswith("/dist")):
            return None
        root = self.base[: -len("dist")].rstrip("/")
        store = S3Store(
            f"s3://{self.bucket}/{root}",
            self.options,
            cache_root=store_cache_root(),
            client=self.client,
        )
        try:
            return version_stream(store, *found)
        except IntegrityError:
            return None

    def _download_assembled(
        self,
        assembled: Any,
        fd: int,
        progress: Progress | None,
        offset: int,
        prefix: _Hash | None,
        limit: int | None,
    ) -> Fetched:
        with assembled.open() as fh:
            fh.seek(offset)
            size, digest = pump(
                fh.readinto, fd, progress, sink=sink_for(fd, offset, prefix), limit=limit
            )
        return Fetched(size, digest, None, offset)

    def fork(self) -> S3Transport:
        return S3Transport(self.source, client=self.client)

    def close(self) -> None:
        pass
