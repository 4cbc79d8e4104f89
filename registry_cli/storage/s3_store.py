"""A registry root in S3-compatible object storage: :class:`Store` over boto3
(docs/object-storage.md).

Keys laid out as docs/layout.md describes live under ``s3://BUCKET/PREFIX/``; folders are
implicit. No locks:

* ``create`` is ``PutObject`` with ``If-None-Match: *`` (412 → AlreadyExists),
  ``replace`` is ``PutObject`` with ``If-Match: <ETag>`` (412 → Conflict): the
  commit loop of ``core/models.py`` re-reads and re-applies its rule on a
  conflict. A 409 ``ConditionalRequestConflict`` is retried with back-off.
  Each state object carries a commit number (``x-amz-meta-regctl-seq``).
* The audit log is one object per entry, read back in commit order
  (``s3_audit.py``); an ``audit.jsonl`` object is read first.
* A version is staged locally and uploaded by :meth:`install_folder`
  (``s3_transfer.py``); it is invisible until the state lists it. A marker
  ``.regctl/tmp/<kind>-<host>-<pid>-<id>`` tells ``gc`` whether its writer
  lives; ``gc`` aborts abandoned multipart uploads (:meth:`leftover_scratch`).
* ``dist/`` copies are server-side ``CopyObject``, but for the files a publish just
  installed, which go up again from the staged bytes (never used for reads).
* :meth:`local_path` names the local cache copy of a key (nothing is
  downloaded); :meth:`fetch_version` fills it, every file checked against the
  manifest (predict, serve, ``resolve --path``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Event
from typing import Any, BinaryIO, TypeVar, cast

from registry_cli.errors import RegctlError
from registry_cli.storage import layout, s3_audit, s3_transfer
from registry_cli.storage import s3_client as sc
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.hashing import CHUNK, Progress
from registry_cli.storage.layout import check_key_parts
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store, Tagged

T = TypeVar("T")
SCRATCH = ".regctl/tmp"
UPLOADS = ".regctl/uploads"
SEQ = "regctl-seq"
THREADS = 8


class S3Store(Store):
    def __init__(
        self, url: str, options: sc.S3Options, *, cache_root: Path, client: Any = None
    ) -> None:
        self.bucket, self.prefix = sc.parse_s3_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.options = options
        self.cache_root = cache_root
        self._client = client
        self._client_lock = threading.Lock()
        self._commits: dict[str, int] = {}  # state key -> seq of this process's last commit
        self._markers: dict[Path, str] = {}  # scratch folder -> its marker key
        self._uploads: dict[str, str] = {}  # upload id -> object key (from leftover_scratch)
        self._own_payload: dict[str, bool] = {}  # version key -> payload objects of its own
        self._installed: dict[str, Path] = {}  # key -> its staged file, until the scratch ends

    # -- plumbing -------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = sc.make_client(self.options)
        return self._client

    def k(self, key: str) -> str:
        if key:
            check_key_parts(key)
        if not self.prefix:
            return key
        return f"{self.prefix}/{key}" if key else self.prefix

    def call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run one request; store conditions pass through, the rest become exit 6."""
        try:
            return fn()
        except RegctlError:
            raise
        except Exception as exc:
            if sc.status_of(exc)[0] in (404, 409, 412) and sc.status_of(exc)[1] not in (
                "NoSuchBucket",
            ):
                raise
            raise sc.remote_error(exc, self.options, f"{what} {self.location}/{key}") from None

    def _writable(self) -> None:
        self.call(
            "probe",
            "",
            lambda: sc.probe(self.client, self.bucket, self.prefix, self.options),
        )

    # -- documents ------------------------------------------------------
    def _get(self, key: str) -> dict[str, Any]:
        try:
            return self.call(
                "read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=self.k(key))
            )
        except Exception as exc:
            if sc.is_missing(exc):
                raise Missing(key) from None
            raise

    def read(self, key: str) -> bytes:
        return cast(bytes, self._get(key)["Body"].read())

    def read_tagged(self, key: str) -> Tagged:
        got = self._get(key)
        seq = int((got.get("Metadata") or {}).get(SEQ, "0") or 0)
        return Tagged(got["Body"].read(), f"{seq}:{got['ETag']}")

    def create(self, key: str, data: bytes) -> str:
        self._writable()

        def put() -> Any:
            return self.client.put_object(
                Bucket=self.bucket, Key=self.k(key), Body=data, IfNoneMatch="*",
                Metadata={SEQ: "1"},
            )  # fmt: skip

        try:
            done = self.call("create", key, lambda: sc.with_conflict_retry(put))
        except Exception as exc:
            if sc.is_precondition_failed(exc):
                raise AlreadyExists(key) from None
            raise
        return f"1:{done['ETag']}"

    def replace(self, key: str, data: bytes, *, if_match: str) -> str:
        self._writable()
        seq_text, _, etag = if_match.partition(":")
        seq = int(seq_text) + 1

        def put() -> Any:
            return self.client.put_object(
                Bucket=self.bucket, Key=self.k(key), Body=data, IfMatch=etag,
                Metadata={SEQ: str(seq)},
            )  # fmt: skip

        try:
            done = self.call("replace", key, lambda: sc.with_conflict_retry(put))
        except Exception as exc:
            if sc.is_precondition_failed(exc) or sc.is_missing(exc):
                raise Conflict(key) from None
            raise
        self._commits[key] = seq
        return f"{seq}:{done['ETag']}"

    def put(self, key: str, data: bytes) -> None:
        self.call(
            "write",
            key,
            lambda: self.client.put_object(Bucket=self.bucket, Key=self.k(key), Body=data),
        )

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.call(
                "read", key, lambda: self.client.head_object(Bucket=self.bucket, Key=self.k(key))
            )
        except Exception as exc:
            if sc.is_missing(exc):
                return None
            raise

    def delete(self, key: str) -> bool:
        if self._head(key) is None:
            return False
        self.call(
            "delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=self.k(key))
        )
        return True

    # -- append-only log: one object per entry --------------------------
    @staticmethod
    def _log_prefix(key: str) -> str:
        return key.removesuffix(".jsonl") + "/"

    def append(self, key: str, line: bytes) -> None:
        seq = 0
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            model = json.loads(line).get("model")
            if isinstance(model, str):
                seq = self._commits.pop(f"models/{model}/model.yaml", 0)
        entry = self._log_prefix(key) + s3_audit.entry_name(seq)
        self.call(
            "append",
            entry,
            lambda: self.client.put_object(Bucket=self.bucket, Key=self.k(entry), Body=line),
        )

    def lines(self, key: str) -> Iterator[bytes]:
        with contextlib.suppress(Missing):
            yield from self.read(key).splitlines(keepends=True)
        names = sorted(self._list(self._log_prefix(key)))
        with ThreadPoolExecutor(THREADS) as pool:
            bodies = list(pool.map(lambda n: self.read(self._log_prefix(key) + n), names))
        yield from s3_audit.commit_order(bodies, [s3_audit.seq_of(n) for n in names])

    # -- listing and streaming -----------------------------------------
    def pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self.call("list", prefix, lambda: iter(paginator.paginate(**kwargs)))
        while True:
            page = self.call("list", prefix, lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _list(self, key: str) -> Iterator[str]:
        """Every object below the folder ``key`` (ending in ``/``), relative to it."""
        base = self.k(key.rstrip("/")) + "/" if key.rstrip("/") else self.k("")
        if base and not base.endswith("/"):
            base += "/"
        for page in self.pages(base, None):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(base) :]

    def kind(self, key: str) -> str | None:
        return s3_transfer.kind_of(self, key)

    def children(self, key: str) -> list[str]:
        base = self.k(key) + "/" if key else (self.prefix + "/" if self.prefix else "")
        out: set[str] = set()
        for page in self.pages(base, "/"):
            for cp in page.get("CommonPrefixes", []):
                out.add(cp["Prefix"][len(base) :].rstrip("/"))
            for obj in page.get("Contents", []):
                name = obj["Key"][len(base) :]
                if name:
                    out.add(name)
        return sorted(out)

    def walk_files(self, key: str) -> Iterator[str]:
        yield from self._list(key)

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self._get(key)["Body"])

    def hash(self, key: str, progress: Progress | None = None) -> tuple[int, str]:
        body = self._get(key)["Body"]
        digest, size = hashlib.sha256(), 0
        with contextlib.closing(body):
            for chunk in self.call("read", key, lambda: body.iter_chunks(CHUNK)):
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        return size, digest.hexdigest()

    def local_path(self, key: str) -> Path:
        """Where the local cache keeps ``key`` (see :meth:`fetch_version`); not fetched here."""
        base = self.cache_root / "s3" / self.bucket
        parts = [p for p in f"{self.prefix}/{key}".split("/") if p]
        return base.joinpath(*parts)

    def fetch_version(self, vkey: str, progress: Progress | None = None) -> Path:
        """Download a version's ``manifest.json`` and payload into the cache, each file
        verified against the manifest (exit 5 on a mismatch); a verified copy is reused."""
        return s3_transfer.download_version(self, vkey, self.local_path(vkey), progress)

    # -- versions -------------------------------------------------------
    @contextlib.contextmanager
    def scratch(self, kind: str) -> Iterator[Path]:
        """A local temp folder, announced by a marker object that ``gc`` checks."""
        marker = f"{SCRATCH}/{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder = Path(tempfile.mkdtemp(prefix=f"regctl-{kind}-"))
        self._write_marker(marker, None)
        self._markers[folder] = marker
        try:
            yield folder
        finally:
            self._markers.pop(folder, None)
            for key in [k for k, p in self._installed.items() if folder in p.parents]:
                del self._installed[key]
            remove_tree(folder)
            with contextlib.suppress(RegctlError):
                self.call(
                    "delete",
                    marker,
                    lambda: self.client.delete_object(Bucket=self.bucket, Key=self.k(marker)),
                )

    def _write_marker(self, marker: str, target: str | None) -> None:
        doc = {"host": socket.gethostname(), "pid": os.getpid(), "target": target}
        self.put(marker, json.dumps(doc).encode())

    def install_folder(self, staging: Path, key: str) -> None:
        if self.kind(key) is not None:
            raise AlreadyExists(key)
        self._writable()
        files = {p.relative_to(staging).as_posix(): p for p in s3_transfer.staged_files(staging)}
        small = {rel: p for rel, p in files.items() if p.stat().st_size <= s3_transfer.PART}
        if len(small) < len(files):
            for folder, marker in self._markers.items():  # a multipart upload below key:
                if staging == folder or folder in staging.parents:  # gc spares it while
                    self._write_marker(marker, key)  # the marker names it and we live
        s3_transfer.upload_folder(self, staging, key)
        self._own_payload[key] = any(rel.startswith("payload/") for rel in files)
        # the served tree's copies of these (manifest.json...) go up from the same bytes
        # while the staging folder lives (a PUT instead of a CopyObject); reads never use them
        self._installed.update((f"{key}/{rel}", p) for rel, p in small.items())

    def remove_tree(self, key: str) -> None:
        if key.startswith(UPLOADS + "/"):
            upload = key.rsplit("/", 1)[1]
            target = self._uploads.get(upload)
            if target is not None:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=target, UploadId=upload
                    )
            return
        keys = [self.k(key)] + [f"{self.k(key)}/{rel}" for rel in self._list(key)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.call(
                "delete",
                key,
                lambda b=batch: self.client.delete_objects(  # type: ignore[misc]
                    Bucket=self.bucket, Delete={"Objects": b, "Quiet": True}
                ),
            )

    def leftover_scratch(self) -> list[tuple[str, bool]]:
        """Scratch markers (alive: a live process on this host, or another host's marker
        younger than a day), leftover probe objects and unfinished multipart uploads."""
        found, uploads = s3_transfer.leftovers(self, SCRATCH, UPLOADS)
        self._uploads.update(uploads)
        return found

    # -- the served tree ------------------------------------------------
    def _copy(self, src: str, dst: str) -> None:
        staged = self._installed.get(src)  # just installed by this publish: its bytes are here
        if staged is not None:
            self.put(dst, staged.read_bytes())
        else:
            s3_transfer.copy_object(self, src, dst)

    def copy_files(self, src: str, dst: str, files: list[str]) -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda rel: self._copy(f"{src}/{rel}", f"{dst}/{rel}"), files))

    def copy_file(self, src: str, dst: str) -> None:
        self._copy(src, dst)

    def same_content(self, src: str, dst: str) -> bool:
        s, d = self._head(src), self._head(dst)
        if s is None or d is None or s["ContentLength"] != d["ContentLength"]:
            return False
        if s["ETag"] == d["ETag"]:
            return True
        return self.hash(src)[1] == self.hash(dst)[1]

    # -- blobs ----------------------------------------------------------
    def put_blobs(
        self,
        blobs: list[tuple[Path, str]],
        stop: Event | None = None,
        announce: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """HEAD each blob, upload the missing ones from their local file with
        ``If-None-Match: *`` (a concurrent writer of the same bytes loses harmlessly)."""
        self._writable()
        blob_files = dict((sha, path) for path, sha in blobs)
        return s3_transfer.put_blobs(self, blob_files, stop, announce)

    def payload_key(self, vkey: str, path: str, sha256: str) -> str:
        """A version published with blobs has no payload objects of its own: its files
        are the blobs. Older versions keep theirs (one LIST per version, remembered)."""
        own = self._own_payload.get(vkey)
        if own is None:
            own = self._own_payload[vkey] = self.kind(f"{vkey}/payload") == "dir"
        return f"{vkey}/{path}" if own else layout.blob_key(sha256)

    # -- concurrency ----------------------------------------------------
    def lock(self, key: str, *, what: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()
