"""The FTP control plane (see docs/server.md): an admin token starts, lists and stops
``regctl serve-ftp`` children serving this root's ``dist/`` (see ``ftp_children.py``;
the password goes by environment, and no reply repeats it). The children stop with
the registry server.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from registry_cli.server.auth import Principal, require
from registry_cli.server.context import ServerContext
from registry_cli.server.ftp_children import FtpChildren, FtpServerBody

router = APIRouter()


def _children(request: Request) -> FtpChildren:
    ctx: ServerContext = request.app.state.ctx
    assert ctx.ftp is not None
    return ctx.ftp


@router.post("/api/v1/ftp-servers", status_code=201, tags=["ftp"])
async def start_ftp(
    request: Request, body: FtpServerBody, who: Principal = Depends(require("admin"))
) -> JSONResponse:
    """Start ``regctl serve-ftp`` on this root's ``dist/`` (the password goes by environment)."""
    doc = await anyio.to_thread.run_sync(_children(request).start, body)
    return JSONResponse(doc, status_code=201)


@router.get("/api/v1/ftp-servers", tags=["ftp"])
def list_ftp(request: Request, who: Principal = Depends(require("admin"))) -> list[Any]:
    return _children(request).list()


@router.delete("/api/v1/ftp-servers/{ident}", tags=["ftp"])
def stop_ftp(request: Request, ident: str, who: Principal = Depends(require("admin"))) -> Any:
    return _children(request).stop(ident)
