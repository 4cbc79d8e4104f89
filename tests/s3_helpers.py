"""A real S3 API on loopback for the tests (moto's standalone server), and ``S3Root``:
an ``s3://`` root that tests can poke at like a folder.

The server runs in this process (``ThreadedMotoServer``), once per session. moto
checks a precondition and then writes, without holding a lock around both, so
two conditional PUTs of one key can both succeed — real S3 serialises them.
:func:`serialize_conditional_writes` wraps moto's PutObject/CompleteMultipartUpload
handling in one lock inside the server, as S3 does; the assertions of the
concurrency tests stay as strict as on a folder.
"""

from __future__ import annotations

import fnmatch
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

BUCKET_PREFIX = "regctl-test-"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SERIALIZED = threading.Lock()
_PATCHED = False


def serialize_conditional_writes() -> None:
    """Make moto's check-then-write of conditional writes atomic, as S3's is."""
    global _PATCHED
    if _PATCHED:
        return
    from moto.s3.responses import S3Response

    # PutObject and the POSTs (CompleteMultipartUpload): the writes that carry preconditions
    for name in ("put_object", "_key_response_post"):
        original = getattr(S3Response, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _SERIALIZED:
                return __original(self, *args, **kwargs)

        setattr(S3Response, name, locked)
    _PATCHED = True


class MotoServer:
    """moto's S3 on 127.0.0.1 and a free port; stopped by :meth:`stop`."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        serialize_conditional_writes()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self) -> str:
        name = f"{BUCKET_PREFIX}{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return {
            "REGCTL_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        self._server.stop()


class S3Root(str):
    """``s3://BUCKET/KEY`` (a str, so the CLI and ``ModelRegistry`` take it as a root)
    with the few ``pathlib`` reads and writes the tests use on a folder root."""

    client: Any
    bucket: str
    key: str

    def __new__(cls, client: Any, bucket: str, key: str) -> S3Root:
        self = super().__new__(cls, f"s3://{bucket}/{key}".rstrip("/"))
        self.client, self.bucket, self.key = client, bucket, key.strip("/")
        return self

    def __truediv__(self, part: object) -> S3Root:  # type: ignore[override]
        return S3Root(self.client, self.bucket, f"{self.key}/{str(part).strip('/')}")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Root:
        return S3Root(self.client, self.bucket, self.key.rsplit("/", 1)[0])

    def _below(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key + "/"):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def read_bytes(self) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(str(self)) from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def is_file(self) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception:
            return False
        return True

    def is_dir(self) -> bool:
        return next(self._below(), None) is not None

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Folders are implicit in object storage."""

    def unlink(self) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def iterdir(self) -> Iterator[S3Root]:
        names = sorted({k[len(self.key) + 1 :].split("/", 1)[0] for k in self._below()})
        for n in names:
            yield self / n

    def glob(self, pattern: str) -> Iterator[S3Root]:
        for child in self.iterdir():
            if fnmatch.fnmatch(child.name, pattern):
                yield child

    def keys(self) -> list[str]:
        """Every object below, relative to this key."""
        return sorted(k[len(self.key) + 1 :] for k in self._below())


class ForgetfulProxy:
    """A test double of a store that ignores conditional writes: forwards every request
    to moto with ``If-None-Match`` and ``If-Match`` dropped (some S3 clones do that)."""

    DROPPED = {"if-none-match", "if-match"}

    def __init__(self, upstream_port: int) -> None:
        import http.client
        import http.server

        dropped = self.DROPPED

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
