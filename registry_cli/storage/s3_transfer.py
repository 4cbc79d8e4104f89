"""Bulk transfers of an S3 store (any :class:`Bucket`, in practice
:class:`~registry_cli.storage.s3_store.S3Store`, which calls this module): a staged version
folder going up, a version coming down into the local cache.

Up (:func:`upload_folder`): every file at once on a thread pool; a file above
:data:`PART` as a multipart upload whose parts go up in parallel, completed
with ``If-None-Match: *``; smaller ones as one ``PutObject`` with
``If-None-Match: *``. A version is never written over an existing object; an
upload that fails is aborted (``gc`` aborts those of a killed writer).

Down (:func:`download_version`): ``manifest.json``, then each payload file,
hashed as it arrives and checked against the manifest (exit 5 on a mismatch),
into a hidden ``*.incomplete-*`` folder renamed into place when complete and
marked verified; a verified copy is reused, never downloaded again.

Leftovers (:func:`leftovers`): what killed writers left for ``gc``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage import s3_client as sc
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.hashing import CHUNK, Progress
from registry_cli.storage.layout import check_key_parts
from registry_cli.storage.pump import crc32
from registry_cli.storage.store import AlreadyExists, Missing

T = TypeVar("T")

PART = 16 << 20  # multipart part size; files above it go up in parts
# Each part carries a CRC32 the store checks, and the object's checksum is composed from
# them (what boto3's upload_file asks for too); without one a store may compute a checksum
# over the whole object at completion (moto does: a second pass over every byte).
CHECKSUM = "CRC32"
THREADS = 8
VERIFIED = ".regctl-verified"
REMOTE_SCRATCH_TTL_S = 24 * 3600  # another host's scratch marker counts as alive this long
PROBE_TTL_S = 600  # a probe object younger than this may belong to a running probe


class Bucket(Protocol):
    """What a transfer needs of its store: the bucket, its client and keyed requests.

    Declared here so that this module depends on no store class; ``S3Store`` has it all.
    """

    bucket: str
    location: str

    @property
    def client(self) -> Any: ...

    def k(self, key: str) -> str: ...

    def call(self, what: str, key: str, fn: Callable[[], T]) -> T: ...

    def read(self, key: str) -> bytes: ...

    def open(self, key: str) -> BinaryIO: ...

    def pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]: ...

    def payload_key(self, vkey: str, path: str, sha256: str) -> str: ...


# -- up ------------------------------------------------------------------------
def staged_files(staging: Path) -> list[Path]:
    """The regular files below ``staging``, what :func:`upload_folder` uploads."""
    return sorted(p for p in staging.rglob("*") if p.is_file() and not p.is_symlink())


def upload_folder(store: Bucket, staging: Path, key: str) -> None:
    """Upload every regular file below ``staging`` to ``key/<relative path>``."""
    files = staged_files(staging)
    small = [p for p in files if p.stat().st_size <= PART]
    large = [p for p in files if p.stat().st_size > PART]

    def dest(p: Path) -> str:
        return f"{key}/{p.relative_to(staging).as_posix()}"

    # small files and the parts of large ones share one pool; large files run side by side
    with ThreadPoolExecutor(THREADS) as pool, ThreadPoolExecutor(max(1, len(large))) as big:
        futures = [pool.submit(_put_new, store, p, dest(p)) for p in small]
        futures += [big.submit(_put_multipart, store, p, dest(p), pool) for p in large]
        for fut in futures:
            fut.result()


class Stopped(Exception):
    """An upload given up because its publish was interrupted (``stop`` was set)."""


def put_blobs(
    store: Bucket,
    blobs: dict[str, Path],
    stop: threading.Event | None = None,
    announce: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Upload each ``sha -> local file`` whose blob object is missing (HEAD first);
    the sha256 of those uploaded by this call. ``announce`` hears of the missing ones
    before the first upload. Once ``stop`` is set no upload or part starts; a multipart
    upload under way is aborted."""

    def missing(sha: str) -> bool:
        key = layout.blob_key(sha)
        try:
            store.call(
                "read", key, lambda: store.client.head_object(Bucket=store.bucket, Key=store.k(key))
            )
        except Exception as exc:
            if sc.is_missing(exc):
                return True
            raise
        return False

    with ThreadPoolExecutor(THREADS) as pool, ThreadPoolExecutor(THREADS) as big:
        todo = [sha for sha, gone in zip(blobs, pool.map(missing, blobs), strict=True) if gone]
        if todo and announce is not None:
            announce(todo)
        futures = []
        for sha in todo:
            path, key = blobs[sha], layout.blob_key(sha)
            if path.stat().st_size > PART:
                futures.append(big.submit(_put_multipart, store, path, key, pool, stop))
            else:
                futures.append(pool.submit(_put_new, store, path, key, stop))
        uploaded = []
        for sha, fut in zip(todo, futures, strict=True):
            try:
                fut.result()
                uploaded.append(sha)
            except AlreadyExists:
                pass  # another publisher of the same bytes was first
    return uploaded


def _put_new(store: Bucket, path: Path, key: str, stop: threading.Event | None = None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped(key)
    data = path.read_bytes()
    try:
        store.call(
            "upload",
            key,
            lambda: store.client.put_object(
                Bucket=store.bucket, Key=store.k(key), Body=data, IfNoneMatch="*"
            ),
        )
    except Exception as exc:
        if sc.is_precondition_failed(exc):
            raise AlreadyExists(key) from None
        raise


def _put_multipart(
    store: Bucket,
    path: Path,
    key: str,
    pool: ThreadPoolExecutor,
    stop: threading.Event | None = None,
) -> None:
    full = store.k(key)
    client = store.client
    upload = store.call(
        "upload",
        key,
        lambda: client.create_multipart_upload(
            Bucket=store.bucket, Key=full, ChecksumAlgorithm=CHECKSUM
        ),
    )["UploadId"]
    size = path.stat().st_size

    def part(number: int) -> dict[str, Any]:
        if stop is not None and stop.is_set():
            raise Stopped(key)
        with open(path, "rb") as fh:
            fh.seek((number - 1) * PART)
            data = fh.read(PART)
        # our CRC32 in the header: botocore computes none, and signs no sha256 of the body
        # (s3_client.unsigned_parts); the store checks the body against it
        done = store.call(
            "upload",
            key,
            lambda: client.upload_part(
                Bucket=store.bucket, Key=full, UploadId=upload, PartNumber=number, Body=data,
                ChecksumAlgorithm=CHECKSUM, ChecksumCRC32=crc32_header(data),
            ),
        )  # fmt: skip
        got = {"PartNumber": number, "ETag": done["ETag"]}
        if done.get("ChecksumCRC32"):  # a store without per-part checksums sends none
            got["ChecksumCRC32"] = done["ChecksumCRC32"]
        return got

    try:
        parts = list(pool.map(part, range(1, (size + PART - 1) // PART + 1)))
        store.call(
            "upload",
            key,
            lambda: client.complete_multipart_upload(
                Bucket=store.bucket, Key=full, UploadId=upload,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            ),
        )  # fmt: skip
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=store.bucket, Key=full, UploadId=upload)
        if isinstance(exc, Exception) and sc.is_precondition_failed(exc):
            raise AlreadyExists(key) from None
        raise


def crc32_header(data: bytes) -> str:
    """The value of ``x-amz-checksum-crc32``: the big-endian CRC-32, base64."""
    return base64.b64encode(crc32(memoryview(data), 0).to_bytes(4, "big")).decode()


def copy_object(store: Bucket, src: str, dst: str) -> None:
    """A server-side copy (the served tree of objects published before blobs)."""
    source = {"Bucket": store.bucket, "Key": store.k(src)}
    try:
        store.call(
            "copy",
            src,
            lambda: store.client.copy_object(
                Bucket=store.bucket, Key=store.k(dst), CopySource=source
            ),
        )
    except Exception as exc:
        if sc.is_missing(exc):
            raise Missing(src) from None
        if sc.status_of(exc)[1] not in ("InvalidRequest", "EntityTooLarge"):
            raise
        store.call(  # above 5 GiB: the managed, multipart copy
            "copy", src, lambda: store.client.copy(source, store.bucket, store.k(dst))
        )


def kind_of(store: Bucket, key: str) -> str | None:
    """``Store.kind``: one LIST with ``Delimiter=/`` tells a file (the key itself) from a
    folder (the common prefix ``key/``); HEAD + LIST only when that page was too full."""
    if not key:
        return "dir"
    full = store.k(key)
    client = store.client
    got = store.call(
        "list",
        key,
        lambda: client.list_objects_v2(
            Bucket=store.bucket, Prefix=full, Delimiter="/", MaxKeys=100
        ),
    )
    if any(obj["Key"] == full for obj in got.get("Contents", [])):
        return "file"
    if any(cp["Prefix"] == full + "/" for cp in got.get("CommonPrefixes", [])):
        return "dir"
    if not got.get("IsTruncated"):
        return None
    try:
        store.call("read", key, lambda: client.head_object(Bucket=store.bucket, Key=full))
        return "file"
    except Exception as exc:
        if not sc.is_missing(exc):
            raise
    below = store.call(
        "list",
        key,
        lambda: client.list_objects_v2(Bucket=store.bucket, Prefix=full + "/", MaxKeys=1),
    )
    return "dir" if below.get("KeyCount", 0) or below.get("Contents") else None


# -- down ----------------------------------------------------------------------
def download_version(
    store: Bucket, vkey: str, target: Path, progress: Progress | None = None
) -> Path:
    """``manifest.json`` and the payload of the version ``vkey`` into ``target``."""
    if (target / VERIFIED).is_file():
        return target
    manifest = store.read(f"{vkey}/manifest.json")
    files = json.loads(manifest).get("files") or []
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.incomplete-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        (tmp / "manifest.json").write_bytes(manifest)

        def one(f: dict[str, Any]) -> None:
            rel = str(f["path"])
            check_key_parts(rel)
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            body = store.open(store.payload_key(vkey, rel, str(f.get("sha256"))))
            digest, size = hashlib.sha256(), 0
            with open(dest, "wb") as out, contextlib.closing(body):
                for chunk in body.iter_chunks(CHUNK):  # type: ignore[attr-defined]
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if size != f.get("size") or digest.hexdigest() != f.get("sha256"):
                raise IntegrityError(
                    f"{store.location}/{vkey}/{rel}: sha256 {digest.hexdigest()} != "
                    f"recorded {f.get('sha256')}",
                    hint="check the registry with: regctl verify",
                )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, files))
        (tmp / VERIFIED).write_text(hashlib.sha256(manifest).hexdigest() + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / VERIFIED).is_file():  # another process finished first
                raise
    finally:
        remove_tree(tmp)
    return target


# -- leftovers -----------------------------------------------------------------
def leftovers(
    store: Bucket, scratch: str, uploads_key: str
) -> tuple[list[tuple[str, bool]], dict[str, str]]:
    """``(key, alive)`` of scratch markers, probe objects and multipart uploads under
    ``models/``; and upload id → object key for the uploads (``gc`` aborts by id)."""
    out: list[tuple[str, bool]] = []
    live_targets: list[str] = []
    now = time.time()
    for name, modified in _objects(store, scratch):
        try:
            doc = json.loads(store.read(f"{scratch}/{name}"))
        except (Missing, ValueError):
            doc = {}
        if doc.get("host") == socket.gethostname():
            alive = pid_alive(int(doc.get("pid") or 0))
        else:
            alive = now - modified < REMOTE_SCRATCH_TTL_S
        if alive and doc.get("target"):
            live_targets.append(store.k(str(doc["target"])) + "/")
        out.append((f"{scratch}/{name}", alive))
    probes = sc.PROBE_PREFIX.rstrip("/")
    for name, modified in _objects(store, probes):
        out.append((f"{probes}/{name}", now - modified < PROBE_TTL_S))
    uploads: dict[str, str] = {}
    publishing = any(alive for _key, alive in out)  # a live writer may be uploading blobs
    for top in ("models", layout.BLOBS):
        listing = store.call(
            "list",
            uploads_key,
            lambda top=top: store.client.list_multipart_uploads(  # type: ignore[misc]
                Bucket=store.bucket, Prefix=store.k(top) + "/"
            ),
        )
        for up in listing.get("Uploads", []):
            uploads[up["UploadId"]] = up["Key"]
            if top == "models":
                alive = any(up["Key"].startswith(t) for t in live_targets)
            else:
                alive = publishing
            out.append((f"{uploads_key}/{up['UploadId']}", alive))
    return out, uploads


def _objects(store: Bucket, folder: str) -> list[tuple[str, float]]:
    base = store.k(folder) + "/"
    found = []
    for page in store.pages(base, None):
        for obj in page.get("Contents", []):
            found.append((obj["Key"][len(base) :], obj["LastModified"].timestamp()))
    return found


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
