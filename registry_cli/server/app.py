"""The app factory: one FastAPI app from routers (API, uploads, files, FTP control).

A later router (the web UI of SPEC §11) plugs in with ``app.include_router``
and checks tokens with :func:`registry_cli.server.auth.authenticate`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from registry_cli import webui
from registry_cli.server import api, errors, files, ftp_control, mlflow_api, uploads
from registry_cli.server.context import ServerContext
from registry_cli.version import __version__

DESCRIPTION = (
    "The REST API of a regctl registry (SPEC §9). Every request but /api/v1/health "
    "carries `Authorization: Bearer TOKEN` (regctl token create); a model name may "
    "contain '/', so '/-/' separates it from what follows."
)


def create_app(ctx: ServerContext) -> FastAPI:
    if ctx.ftp is None:
        ctx.ftp = ftp_control.FtpChildren(Path(ctx.root))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if ctx.ftp is not None:
                ctx.ftp.stop_all()  # FTP children stop with the server

    app = FastAPI(
        title="regctl registry",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(api.router)
    app.include_router(uploads.router)
    app.include_router(files.router)
    app.include_router(ftp_control.router)
    app.include_router(mlflow_api.router)  # MLflow's registry API (docs/mlflow.md)
    app.include_router(webui.router_for(ctx))  # the web UI at / (SPEC §11)
    return app
