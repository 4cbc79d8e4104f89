"""The HTTP app of ``regctl serve-registry``, composed above both of its faces: the
REST API and ``/dist/`` (``server/``) and the web UI (``webui/``), which know nothing
of each other. :func:`create_app` builds it and :func:`serve` runs it.

A new router (another API, another page) is mounted in ONE place:
:func:`routers`, before the web UI, which answers at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response

from registry_cli import webui
from registry_cli.core import outbox
from registry_cli.core.outbox_send import OutboxSender
from registry_cli.core.registry import ModelRegistry
from registry_cli.core.tokens import secret_hash
from registry_cli.oci import mirrors
from registry_cli.server import (
    api,
    errors,
    fastlane,
    files,
    fleet_api,
    ftp_control,
    metrics,
    mlflow_api,
    oci_api,
    uploads,
)
from registry_cli.server.auth import Principal, authenticate
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.server.ftp_children import FtpChildren
from registry_cli.server.logging_json import access_logger
from registry_cli.server.run import serve_app
from registry_cli.version import __version__

DESCRIPTION = (
    "The REST API of a regctl registry (docs/server.md). Every request but /api/v1/health "
    "carries `Authorization: Bearer TOKEN` (regctl token create); a model name may "
    "contain '/', so '/-/' separates it from what follows."
)


def routers(ctx: ServerContext) -> list[APIRouter]:
    """Every router of the server, in the order they are matched: mount new ones here."""
    return [
        api.router,
        uploads.router,
        files.router,
        ftp_control.router,
        fleet_api.router,  # fleet reports, status, rollouts (docs/fleet.md)
        mlflow_api.router,  # MLflow's registry REST API (docs/mlflow.md)
        oci_api.router,  # the OCI distribution API, read side, at /v2/ (docs/oci.md)
        metrics.router,  # GET /metrics for Prometheus (docs/operations.md)
        ui_router(ctx),  # the web UI at / (docs/webui.md): last, it owns the remaining paths
    ]


def create_app(ctx: ServerContext) -> FastAPI:
    if ctx.ftp is None:
        ctx.ftp = FtpChildren(Path(ctx.root))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the outbox's deliveries (webhooks, OCI mirror pushes) are sent in the background
        # (docs/events.md): importing oci.mirrors registers the sender of the pushes
        mirrors.attach(ctx.base)
        sender = OutboxSender(ctx.base.store, outbox.policy(ctx.base.config)).start()
        try:
            yield
        finally:
            if ctx.ftp is not None:
                ctx.ftp.stop_all()  # FTP children stop with the server
            await asyncio.to_thread(sender.stop)

    app = FastAPI(
        title="regctl registry",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.metrics = metrics.Metrics(ctx.base.store)  # one registry per app
    app.add_middleware(fastlane.FastLane, ctx=ctx)  # inside Observe: counted and logged
    app.add_middleware(
        metrics.Observe, metrics=app.state.metrics, log=access_logger(ctx.log_format)
    )
    errors.install(app)
    for router in routers(ctx):
        app.include_router(router)
    fleet_api.add_stepper(app)  # steps running rollouts every fleet.step_interval_s
    return app


def ui_router(ctx: ServerContext) -> APIRouter:
    """The UI of one registry server: its registries, tokens and read policy."""

    async def verify(secret: str) -> webui.Identity | None:
        if not secret:
            secret = "\0"  # checked (and delayed) like any wrong token
        try:
            who = await authenticate(ctx, secret, "read")
        except ApiError:
            return None  # after the same delay as the API's 401
        return webui.Identity(who.name, who.scopes, secret_hash(secret))

    def still_live(identity: webui.Identity) -> tuple[str, ...] | None:
        token = ctx.tokens.find(identity.name, identity.token_sha256)  # cached: token_cache_s
        return None if token is None else token.scopes

    def registry(actor: str) -> ModelRegistry:
        return ctx.registry(actor)

    def version_file(
        request: Request, name: str, version: str, path: str, viewer: webui.Viewer
    ) -> Response:
        who = Principal(viewer.name, viewer.scopes, anonymous=not viewer.signed_in)
        return files.version_file(request, name, version, path, who=who)

    deps = webui.UiDeps(
        registry,
        verify,
        still_live,
        version_file,
        ctx.anonymous_read,
        sessions_store=ctx.base.store,  # replicas on one root share sessions
        sessions_cache_s=ctx.token_cache_s,
    )
    return webui.create_router(deps)


def serve(
    ctx: ServerContext,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve the whole app until SIGTERM or Ctrl-C (see :func:`server.run.serve_app`)."""
    serve_app(ctx, create_app, host, port, tls_cert=tls_cert, tls_key=tls_key)
