"""The REST API (docs/server.md): reads and lifecycle changes, each one core call.

A model name may contain ``/``, so ``/-/`` separates it from what follows;
a name never has a ``-`` segment, which keeps that split unambiguous, and the
``modelname`` path convertor checks the name as the CLI does. Replies are the
CLI's ``--json`` documents. Every change is made by a registry whose actor is the
token's name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from registry_cli.core.registry import ModelRegistry
from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.metrics import outbox_depth
from registry_cli.urlpaths import MODELNAME  # noqa: F401 (registers {name:modelname})
from registry_cli.version import __version__

MODEL = "/api/v1/models/{name:modelname}/-"
router = APIRouter()


def _registry(request: Request, who: Principal) -> ModelRegistry:
    ctx: ServerContext = request.app.state.ctx
    return ctx.registry(who.name)


# ----------------------------------------------------------------- bodies
class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromoteBody(Body):
    version: str | int | None = Field(None, description="vN or @alias (default: @candidate)")
    to: str | None = Field(None, description="target stage (default: the last)")
    force: bool = False
    reason: str | None = None
    no_latest: bool = False


class RollbackBody(Body):
    to: str | int | None = Field(None, description="released version to make champion")


class ArchiveBody(Body):
    reason: str | None = None


class AliasBody(Body):
    version: str | int


class TagsBody(Body):
    set: dict[str, str | int | float | bool] = Field(default_factory=dict)
    rm: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------- reads
@router.get("/api/v1/health", tags=["read"])
def health(request: Request) -> Any:
    """Liveness, the store and the outbox; open to everyone (a token sent is ignored).

    ``status`` is ``ok``, or ``degraded`` when the store does not answer (the reply is
    then 503, so a load balancer takes this replica out)."""
    ctx: ServerContext = request.app.state.ctx
    store = ctx.base.store
    reachable, error = True, None
    try:
        store.kind("registry.yaml")  # one cheap look-up: a HEAD on S3, a stat on a folder
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        reachable, error = False, type(exc).__name__
    outbox = outbox_depth(store) if reachable else {"pending": None, "dead": None}
    doc = {
        "status": "ok" if reachable else "degraded",
        "version": __version__,
        "stages": list(ctx.config.stages),
        "store": {
            "kind": "s3" if str(ctx.root).startswith("s3://") else "folder",
            "reachable": reachable,
            **({"error": error} if error else {}),
        },
        "outbox": {"depth": outbox["pending"], "dead": outbox["dead"]},
    }
    return doc if reachable else JSONResponse(doc, status_code=503)


@router.get("/api/v1/models", tags=["read"])
def list_models(request: Request, who: Principal = Depends(require("read"))) -> list[Any]:
    """Every model (``regctl list --json``, with each model's ``description`` too, so a
    remote ``list_models`` returns what a local one does)."""
    return [
        {**m.to_json(), "description": m.description} for m in _registry(request, who).list_models()
    ]


@router.get(MODEL + "/versions", tags=["read"])
def list_versions(
    request: Request,
    name: str,
    stage: str | None = None,
    full: bool = Query(False, description="each version's whole show document (no bundle)"),
    who: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """A model's versions (``regctl versions --json``; with ``full``, what
    ``RemoteRegistry.list_versions`` returns: the documents of ``show --json``)."""
    items = _registry(request, who).list_versions(name, stage=stage)
    return {
        "name": name,
        "versions": [v.to_json() if full else v.to_summary_json() for v in items],
    }


@router.get(MODEL + "/versions/{version}", tags=["read"], response_model=dict[str, Any])
async def show_version(
    request: Request, name: str, version: str, who: Principal = Depends(require("read"))
) -> Response:
    """One version, ``v3`` or ``3`` (``regctl show --json``)."""
    ctx: ServerContext = request.app.state.ctx
    body = await ctx.reads.version_json(_registry(request, who), f"{name}:{version}")
    return Response(body, media_type="application/json")


@router.get("/api/v1/resolve", tags=["read"], response_model=dict[str, Any])
async def resolve(
    request: Request,
    ref: str = Query(..., description="NAME, NAME:vN, NAME:latest, NAME:best or NAME@alias"),
    stage: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    bundle: bool = Query(True, description="false skips the bundle's facts (faster)"),
    who: Principal = Depends(require("read")),
) -> Response:
    """Any reference (``regctl resolve --json``)."""
    ctx: ServerContext = request.app.state.ctx
    body = await ctx.reads.version_json(
        _registry(request, who), ref, stage=stage, metric=metric, mode=mode, with_bundle=bundle
    )
    return Response(body, media_type="application/json")


@router.get("/api/v1/audit", tags=["read"])
def audit(
    request: Request,
    response: Response,
    model: str | None = None,
    limit: int | None = Query(None, ge=0),
    who: Principal = Depends(require("read")),
) -> list[Any]:
    """The audit log, newest last (``regctl audit --json``)."""
    log = _registry(request, who).audit(model, limit)
    if log.damaged_lines:
        response.headers["X-Regctl-Damaged-Lines"] = ",".join(map(str, log.damaged_lines))
    return log.entries


# ----------------------------------------------------------------- changes
@router.post(MODEL + "/promote", tags=["lifecycle"])
def promote(
    request: Request,
    name: str,
    body: PromoteBody | None = None,
    who: Principal = Depends(require("promote")),
) -> JSONResponse:
    b = body or PromoteBody.model_validate({})
    result = _registry(request, who).promote(
        name,
        version=b.version,
        to=b.to,
        force=b.force,
        reason=b.reason,
        set_latest=not b.no_latest,
    )
    return JSONResponse(result.to_json())


@router.post(MODEL + "/rollback", tags=["lifecycle"])
def rollback(
    request: Request,
    name: str,
    body: RollbackBody | None = None,
    who: Principal = Depends(require("promote")),
) -> JSONResponse:
    b = body or RollbackBody.model_validate({})
    return JSONResponse(_registry(request, who).rollback(name, to=b.to).to_json())


@router.post(MODEL + "/versions/{version}/archive", tags=["lifecycle"])
def archive(
    request: Request,
    name: str,
    version: str,
    body: ArchiveBody | None = None,
    who: Principal = Depends(require("promote")),
) -> JSONResponse:
    b = body or ArchiveBody.model_validate({})
    return JSONResponse(_registry(request, who).archive(name, version, reason=b.reason).to_json())


@router.put(MODEL + "/aliases/{alias}", tags=["lifecycle"])
def set_alias(
    request: Request,
    name: str,
    alias: str,
    body: AliasBody,
    who: Principal = Depends(require("promote")),
) -> JSONResponse:
    return JSONResponse(_registry(request, who).set_alias(name, alias, body.version).to_json())


@router.delete(MODEL + "/aliases/{alias}", tags=["lifecycle"])
def remove_alias(
    request: Request, name: str, alias: str, who: Principal = Depends(require("promote"))
) -> JSONResponse:
    return JSONResponse(_registry(request, who).remove_alias(name, alias).to_json())


@router.post(MODEL + "/versions/{version}/tags", tags=["lifecycle"])
def tag(
    request: Request,
    name: str,
    version: str,
    body: TagsBody,
    who: Principal = Depends(require("publish")),
) -> JSONResponse:
    wanted = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.set.items()}
    return JSONResponse(_registry(request, who).tag(name, version, wanted, body.rm).to_json())
