"""The fleet routes of serve-registry: reports, status, rollouts (docs/fleet.md).

| route | scope |
|---|---|
| ``POST /api/v1/fleet/reports`` (one report or a list) | ``report`` |
| ``GET /api/v1/fleet/status[?name=&ring=&stale=]`` | ``read`` |
| ``GET /api/v1/models/{name}/-/rollout`` | ``read`` |
| ``POST /api/v1/models/{name}/-/rollout`` ``{version, rings, ...}`` | ``promote`` |
| ``POST /api/v1/models/{name}/-/rollout/{step,pause,resume,abort}`` | ``promote`` |

:func:`install` adds the routes and a background task that runs ``rollout step``
for every running rollout every ``fleet.step_interval_s`` seconds (default 60;
``$REGCTL_FLEET_STEP_INTERVAL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from registry_cli.core.fleet import Fleet
from registry_cli.core.fleet_reports import MAX_BATCH, MAX_DETAIL_BYTES, parse_duration
from registry_cli.core.rollout import Rollouts
from registry_cli.server import api  # noqa: F401  (registers the modelname convertor)
from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.settings import SECTIONS

log = logging.getLogger("uvicorn.error")
MAX_BODY = MAX_BATCH * (MAX_DETAIL_BYTES + 1024)
MODEL = "/api/v1/models/{name:modelname}/-"
router = APIRouter(tags=["fleet"])


def _fleet(request: Request) -> Fleet:
    ctx: ServerContext = request.app.state.ctx
    found = getattr(request.app.state, "fleet", None)
    if found is None:
        found = request.app.state.fleet = Fleet(ctx.base)
    return found


def _rollouts(request: Request, who: Principal) -> Rollouts:
    ctx: ServerContext = request.app.state.ctx
    return Rollouts(ctx.registry(who.name))


@router.post("/api/v1/fleet/reports")
async def post_reports(
    request: Request, who: Principal = Depends(require("report"))
) -> JSONResponse:
    """Store one report or a list (an outbox); all valid, or 400 and nothing stored."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"a report request is at most {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"a report request is at most {MAX_BODY} bytes")
    try:
        raw = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not JSON", hint="POST a report object or a list") from None
    fleet = _fleet(request)
    done = await run_in_threadpool(fleet.ingest, raw)
    return JSONResponse(done)


@router.get("/api/v1/fleet/status")
def fleet_status(
    request: Request,
    name: str | None = None,
    ring: str | None = None,
    stale: str = Query("1h", description="e.g. 30m, 1h, 2d"),
    who: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """``regctl fleet status --json``."""
    return _fleet(request).status(name, ring=ring, stale_s=parse_duration(stale, "stale"))


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | int
    rings: list[str] = Field(..., min_length=1)
    min_healthy: float = 0.95
    soak: str | float = "30m"
    min_devices: int = 1


@router.get(MODEL + "/rollout")
def rollout_status(
    request: Request, name: str, who: Principal = Depends(require("read"))
) -> dict[str, Any]:
    return _rollouts(request, who).status(name)


@router.post(MODEL + "/rollout")
def rollout_start(
    request: Request, name: str, body: StartBody, who: Principal = Depends(require("promote"))
) -> dict[str, Any]:
    return _rollouts(request, who).start(
        name,
        str(body.version),
        body.rings,
        min_healthy=body.min_healthy,
        soak_s=parse_duration(body.soak, "soak"),
        min_devices=body.min_devices,
    )


@router.post(MODEL + "/rollout/{action}")
def rollout_action(
    request: Request, name: str, action: str, who: Principal = Depends(require("promote"))
) -> dict[str, Any]:
    rollouts = _rollouts(request, who)
    do = {
        "step": rollouts.step,
        "pause": rollouts.pause,
        "resume": rollouts.resume,
        "abort": rollouts.abort,
    }.get(action)
    if do is None:
        raise ApiError(404, f"no rollout action {action!r}", hint="step, pause, resume, abort")
    return do(name)


async def _stepper(ctx: ServerContext, interval: float) -> None:
    rollouts = Rollouts(ctx.registry("regctl-server"))
    while True:
        await asyncio.sleep(interval)
        try:
            for done in await run_in_threadpool(rollouts.step_all):
                if not done.get("noop"):
                    log.info("rollout %s: %s", done["name"], done["message"])
        except Exception as exc:  # a refused promotion, a damaged document: try next time
            log.warning("rollout step failed: %s: %s", type(exc).__name__, exc)


def add_stepper(app: FastAPI) -> None:
    """Run the rollout stepper for as long as the app runs (its lifespan)."""
    ctx: ServerContext = app.state.ctx
    interval = SECTIONS["fleet"].resolve(config=ctx.config.section("fleet"))["step_interval_s"]
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        task = asyncio.create_task(_stepper(ctx, float(interval)))
        try:
            async with inner(app_) as state:
                yield state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    app.router.lifespan_context = lifespan
