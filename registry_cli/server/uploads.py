"""Publishing over HTTP (see docs/server.md).

``multipart/form-data``: ``file`` parts, each part's filename its path inside
the payload, plus an optional ``metadata`` part (JSON) and an optional
``declare`` part before the files (their paths and sizes). The body is streamed
into a scratch folder of the registry (``reg.scratch("upload")``, on the root's
filesystem), each file hashed as it arrives and, when declared, framed into the
level-0 bundle as well (:mod:`registry_cli.server.upload_receive`). Nothing is
published until the whole body arrived and every declared ``sha256`` matched;
the files are then renamed into the version (``Produced(move=True)``), with the
bundle framed on receipt when it covers them all. A cut connection, a size over
``max_upload_size`` or a refusal removes the scratch folder; a killed server
leaves one that ``regctl gc`` removes.

Or a JSON body ``{"from_mlflow": URI, ...}``: the server imports from MLflow.
``arch`` and ``trust_pickle`` are refused: they run code on the server.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from registry_cli.core import publishing as publishing_rules
from registry_cli.core.publishing import Produced
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.types import VersionInfo
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.server.metadata import (
    METADATA_KEYS,
    METADATA_LIMIT,
    MLFLOW_KEYS,
    conversion,
    mapping,
    parse_metadata,
    publish_from_mlflow_body,
    publish_kwargs,
)
from registry_cli.server.upload_receive import Received, receive_multipart
from registry_cli.urlpaths import MODELNAME  # noqa: F401 (registers {name:modelname})

router = APIRouter()
log = logging.getLogger("uvicorn.error")


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"upload over the server's limit of {limit} bytes",
        hint="ask the registry admin to raise --max-upload-size",
        headers={"Connection": "close"},
    )


# ----------------------------------------------------------------- publishing
def _publish_files(
    reg: ModelRegistry, name: str, received: Received, doc: dict[str, Any], who: str
) -> VersionInfo:
    declared = mapping(doc, "sha256")
    for path, want in declared.items():
        if path not in received.files:
            raise BadInput(f"sha256 given for {path!r}, which was not uploaded")
        got = received.files[path][1]
        if not isinstance(want, str) or want.lower() != got:
            raise IntegrityError(
                f"sha256 mismatch for {path!r}: received {got}, expected {want}",
                hint="the upload was damaged or the file changed while sending; nothing "
                "was published",
            )
    if not received.files:
        raise BadInput("nothing to publish", hint="send one or more 'file' parts")
    kwargs = publish_kwargs(doc)
    convert = conversion(doc)
    tops = sorted({p.split("/", 1)[0] for p in received.files})
    if convert is not None:
        from registry_cli.formats.publish_sources import publish_with_conversion

        return publish_with_conversion(
            reg, name, [received.folder / t for t in tops], options=convert, **kwargs
        )
    if kwargs["signature"] is None:
        from registry_cli.formats.publish_sources import program_signature

        kwargs["signature"] = program_signature([received.folder / t for t in tops])
    paths = doc.get("source_paths")
    source = {
        "type": "local",
        "paths": [str(p) for p in paths] if isinstance(paths, list) else sorted(received.files),
        "uploaded_by": who,
    }
    produced = Produced(
        files=tuple((received.folder / p, p) for p in sorted(received.files)),
        move=True,
        sha256={p: sha for p, (_size, sha) in received.files.items()},  # hashed as received
        bundle=received.bundle,  # framed as received, when it was declared
        source=source,
    )
    return reg.publish(name, [], produced=produced, **kwargs)


@router.post(
    "/api/v1/models/{name:modelname}/-/versions",
    status_code=201,
    tags=["lifecycle"],
    responses={
        400: {"description": "bad input (names, metadata, filenames, arch/trust_pickle)"},
        413: {"description": "over --max-upload-size"},
        422: {"description": "a declared sha256 did not match"},
        502: {"description": "MLflow unreachable"},
    },
)
async def publish(
    request: Request, name: str, who: Principal = Depends(require("publish"))
) -> JSONResponse:
    """Publish the next version: multipart ``file`` parts (+ ``metadata``), or JSON
    ``{"from_mlflow": ...}``. Replies 201 with ``show --json``."""
    ctx: ServerContext = request.app.state.ctx
    reg = ctx.registry(who.name)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > ctx.max_upload_size:
        raise _too_large(ctx.max_upload_size)
    if ctype == "application/json":
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > METADATA_LIMIT:
                raise BadInput("a JSON publish body is over 1 MiB")
        doc = parse_metadata(bytes(raw), METADATA_KEYS | MLFLOW_KEYS)
        info = await anyio.to_thread.run_sync(publish_from_mlflow_body, reg, name, doc)
        return JSONResponse(info.to_json(), status_code=201)
    if ctype != "multipart/form-data":
        raise BadInput(
            f"publish takes multipart/form-data or application/json, not {ctype or 'nothing'}"
        )
    from registry_cli.core.names import validate_model_name

    validate_model_name(name)
    with reg.scratch("upload") as folder:
        files = folder / "files"
        files.mkdir()
        started = time.monotonic()
        try:
            received = await receive_multipart(
                request,
                files,
                ctx.max_upload_size,
                _too_large,
                # a level-0 bundle assembled from a folder root's blobs when read: its
                # hash can be computed on receipt
                frame_bundle=reg.config.bundle_level == 0
                and not publishing_rules.WRITE_LEVEL0_BUNDLES
                and reg.store.blobs_root() is not None,
            )
        except ClientDisconnect:
            raise BadInput("the client went away mid-upload; nothing was published") from None
        doc = parse_metadata(received.metadata, METADATA_KEYS)
        arrived = time.monotonic()
        info = await anyio.to_thread.run_sync(_publish_files, reg, name, received, doc, who.name)
        log.info(
            "publish %s:%s by %s: %d file(s), %d bytes received in %.2f s, published in %.2f s"
            " (bundle %s)",
            name,
            info.vname,
            who.name,
            len(received.files),
            sum(size for size, _sha in received.files.values()),
            arrived - started,
            time.monotonic() - arrived,
            "framed on receipt"
            if received.bundle is not None
            else ("declared, framed again" if received.declared else "framed after receipt"),
        )
    return JSONResponse(info.to_json(), status_code=201)
