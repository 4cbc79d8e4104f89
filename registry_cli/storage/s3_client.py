"""Talking to an S3-compatible store: URLs, the client, error codes, the first-use probe.

boto3 is imported here and only when an ``s3://`` root is used, so ``regctl
--help`` and every folder command start as fast as before.

The probe (see docs/object-storage.md): before the first conditional write of a process, a
store must show it honours both preconditions — a second create-if-absent of
the same key gets 412 and a replace with a stale ``If-Match`` gets 412.
Otherwise it is refused (exit 6, naming the endpoint) unless the config says
``s3: {unsafe_single_writer: true}``. The result is cached per process and
per (endpoint, bucket), and in a marker object ``.regctl/probed-<hash of the
endpoint>`` so later processes through the same endpoint need one HEAD, not
the four requests of the probe (a different endpoint, e.g. a proxy in front of
the same bucket, is probed on its own).
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from registry_cli.errors import BadInput, RemoteError

T = TypeVar("T")
SCHEME = "s3://"
PROBE_PREFIX = ".regctl/probe/"


def is_s3_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEME)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → ``(bucket, prefix)``; the prefix has no slashes at its ends."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise BadInput(f"not an s3://BUCKET/PREFIX URL: {url!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise BadInput(
            f"{url!r}: put no credentials or port in an s3:// URL",
            hint="credentials come from the AWS chain; the endpoint from $REGCTL_S3_ENDPOINT_URL",
        )
    prefix = parts.path.strip("/")
    for seg in prefix.split("/") if prefix else []:
        if seg in ("", ".", "..") or "\\" in seg:
            raise BadInput(f"{url!r}: unsafe prefix segment {seg!r}")
    return parts.netloc, prefix


@dataclass(frozen=True)
class S3Options:
    """Where the store is and how far it is trusted (``s3:`` in the config)."""

    endpoint_url: str | None = None
    region: str | None = None
    unsafe_single_writer: bool = False

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or "AWS S3"


_CLIENTS: dict[tuple[str | None, str | None, str | None], Any] = {}


def make_client(options: S3Options) -> Any:
    """A client per endpoint, region and access key (boto3 clients are thread-safe and
    slow to build, so one process shares them)."""
    import os

    key = (options.endpoint_url, options.region, os.environ.get("AWS_ACCESS_KEY_ID"))
    with _PROBE_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = _new_client(options)
        return _CLIENTS[key]


def _import_boto3() -> Any:
    """boto3, without loading pyOpenSSL and ``cryptography`` (~40-60 ms).

    botocore imports ``urllib3.contrib.pyopenssl`` only to reach the standard library's
    ``SSLContext`` in case pyOpenSSL was injected into urllib3, and falls back to
    urllib3's own name for it when that import fails; nothing here injects pyOpenSSL, so
    the import is made to fail while botocore loads (and works again afterwards)."""
    import sys

    blocked = "urllib3.contrib.pyopenssl"
    if "botocore.httpsession" in sys.modules or blocked in sys.modules:
        import boto3

        return boto3
    sys.modules[blocked] = None  # type: ignore[assignment]
    try:
        import boto3
        import botocore.httpsession  # noqa: F401  (the module that tries the import)
    finally:
        if sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]
    return boto3


def _new_client(options: S3Options) -> Any:
    boto3 = _import_boto3()
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session()
    client = session.client(
        "s3", endpoint_url=options.endpoint_url, region_name=options.region, config=config
    )
    unsigned_parts(client)
    return client


def unsigned_parts(client: Any) -> None:
    """Send ``UploadPart`` with an unsigned payload (``x-amz-content-sha256:
    UNSIGNED-PAYLOAD``): botocore would otherwise hash every part with sha256 for the
    signature, a second sha256 pass over a blob whose name is its sha256 already. Each
    part carries the CRC32 the uploader computed (``x-amz-checksum-crc32``, a signed
    header the store checks against the body), and readers check every blob's sha256.
    Every other request, the documents included, stays signed in full.

    botocore decides from its client config's ``s3.payload_signing_enabled`` (the
    only switch it honours over plain HTTP too); the config of the one request is
    swapped just before it is signed."""
    base = client.meta.config
    unsigned = base.merge(
        type(base)(s3={**(getattr(base, "s3", None) or {}), "payload_signing_enabled": False})
    )

    def before_sign(request: Any, **_kwargs: Any) -> None:
        request.context["client_config"] = unsigned

    client.meta.events.register("before-sign.s3.UploadPart", before_sign)


# -- error codes -------------------------------------------------------------
def status_of(exc: BaseException) -> tuple[int, str]:
    """``(HTTP status, error code)`` of a botocore ClientError ((0, "") otherwise)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0, ""
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status, code


def is_precondition_failed(exc: BaseException) -> bool:
    status, code = status_of(exc)
    return status == 412 or code == "PreconditionFailed"


def is_missing(exc: BaseException) -> bool:
    status, code = status_of(exc)
    return status == 404 or code in ("NoSuchKey", "404", "NotFound")


def is_retryable_conflict(exc: BaseException) -> bool:
    """409 ``ConditionalRequestConflict``: a concurrent conditional write is in flight."""
    status, code = status_of(exc)
    return code == "ConditionalRequestConflict" or (status == 409 and code != "BucketAlreadyExists")


def with_conflict_retry(call: Callable[[], T], attempts: int = 8) -> T:
    """Run ``call``, retrying on 409 ConditionalRequestConflict (which boto3's own
    retries leave alone) with the back-off of :data:`registry_cli.net.retry.S3_CONFLICT`."""
    from registry_cli.net.retry import S3_CONFLICT  # off the start-up path of folder roots

    return S3_CONFLICT.with_tries(attempts).run(call, retry_if=is_retryable_conflict)


def remote_error(exc: BaseException, options: S3Options, where: str) -> RemoteError:
    """A failure talking to the store, as one line naming the endpoint (exit 6)."""
    status, code = status_of(exc)
    if code == "NoSuchBucket":
        return RemoteError(
            f"{where}: the bucket does not exist at {options.endpoint}",
            hint="create the bucket first, or check the s3:// URL and the endpoint",
        )
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return RemoteError(
            f"{where}: access refused by {options.endpoint} ({code})",
            hint="check the AWS credentials (environment or profile)",
        )
    if status:
        return RemoteError(f"{where}: {options.endpoint} answered {status} {code}")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return RemoteError(
            f"{where}: no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    return RemoteError(
        f"{where}: cannot reach {options.endpoint}: {exc}",
        hint="check $REGCTL_S3_ENDPOINT_URL (or s3.endpoint_url in registry.yaml)",
    )


# -- the probe ---------------------------------------------------------------
_PROBED: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()


def probe(client: Any, bucket: str, prefix: str, options: S3Options) -> None:
    """Refuse (exit 6) a store that ignores ``If-None-Match: *`` or ``If-Match``."""
    cache_key = (options.endpoint, bucket)
    with _PROBE_LOCK:
        if _PROBED.get(cache_key):
            return
        if not options.unsafe_single_writer and not _passed_before(client, bucket, prefix, options):
            failed = _run_probe(client, bucket, prefix)
            if failed:
                raise RemoteError(
                    f"the object store at {options.endpoint} (bucket {bucket}) ignores "
                    f"conditional writes ({failed}); refusing to write to it",
                    hint="use a store that honours If-None-Match/If-Match, or set "
                    "s3: {unsafe_single_writer: true} if only one writer ever runs",
                )
            client.put_object(
                Bucket=bucket, Key=_marker_key(prefix, options), Body=options.endpoint.encode()
            )
        _PROBED[cache_key] = True


def _marker_key(prefix: str, options: S3Options) -> str:
    """``.regctl/probed-<endpoint hash>``: this endpoint passed the probe on this prefix."""
    digest = hashlib.sha256(options.endpoint.encode()).hexdigest()[:16]
    key = f".regctl/probed-{digest}"
    return f"{prefix}/{key}" if prefix else key


def _passed_before(client: Any, bucket: str, prefix: str, options: S3Options) -> bool:
    """One HEAD instead of four requests for every later process through this endpoint."""
    try:
        client.head_object(Bucket=bucket, Key=_marker_key(prefix, options))
    except Exception as exc:
        if is_missing(exc):
            return False
        raise
    return True


def _run_probe(client: Any, bucket: str, prefix: str) -> str | None:
    """What the store got wrong, or None when it honours both preconditions."""
    key = f"{prefix}/{PROBE_PREFIX}" if prefix else PROBE_PREFIX
    key += f"{uuid.uuid4().hex}"
    try:
        first = client.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
        try:
            client.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
        except Exception as exc:
            if not is_precondition_failed(exc):
                raise
        else:
            return "a second If-None-Match: * create succeeded"
        stale = '"00000000000000000000000000000000"'
        if stale == first.get("ETag"):
            stale = '"11111111111111111111111111111111"'
        try:
            client.put_object(Bucket=bucket, Key=key, Body=b"3", IfMatch=stale)
        except Exception as exc:
            if not is_precondition_failed(exc):
                raise
        else:
            return "a replace with a stale If-Match succeeded"
        return None
    finally:
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except Exception:  # the probe object is gc's to remove if this fails
            pass


def forget_probes() -> None:
    """Tests: make the next write probe again."""
    with _PROBE_LOCK:
        _PROBED.clear()
