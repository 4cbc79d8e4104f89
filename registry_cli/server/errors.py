"""The error documents of the API: ``{"error": {"code", "message", "hint"}}`` (see docs/server.md).

Every refusal the core raises maps to one status and code, the same way the CLI
maps it to an exit code; the table is ``registry_cli/error_codes.py``, which the
remote client reads to map them back.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry_cli.error_codes import CODES, ApiError, status_of
from registry_cli.errors import GateFailed, RegctlError
from registry_cli.storage import faults

log = logging.getLogger("uvicorn.error")


def error_response(
    status: int,
    message: str,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "error": {"code": CODES.get(status, "internal"), "message": message, "hint": hint}
    }
    return JSONResponse(body, status_code=status, headers=headers)


def regctl_response(exc: RegctlError) -> JSONResponse:
    response = error_response(status_of(exc), exc.message, exc.hint)
    if isinstance(exc, GateFailed):  # each failed condition, for the client's GateFailed
        body = {"error": {"code": "refused", "message": exc.message, "hint": exc.hint,
                          "failures": list(exc.failures)}}  # fmt: skip
        response = JSONResponse(body, status_code=response.status_code)
    return response


def install(app: FastAPI) -> None:
    """Every failure becomes an error document; never FastAPI's 422 nor a traceback."""

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.hint, exc.headers)

    @app.exception_handler(RegctlError)
    async def _regctl(_request: Request, exc: RegctlError) -> JSONResponse:
        return regctl_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "request"
            reasons.append(f"{where}: {err.get('msg')}")
        return error_response(400, "; ".join(reasons) or "malformed request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(OSError)
    async def _os(request: Request, exc: OSError) -> JSONResponse:
        fault = faults.translate(exc, f"{request.method} {request.url.path}")
        if fault is not None:
            log.error("machine fault: %s", fault.message)
            return regctl_response(fault)
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"unexpected {type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"unexpected {type(exc).__name__}", "see the server's log")
