"""The HTTP side of the MLflow routes: arguments, tokens, MLflow's error documents.

MLflow's client sends a GET's arguments as query parameters (a list as repeated
keys) and every other method's as a JSON body. Every failure of a route, the
token check included, is answered as MLflow answers it
(``{"error_code", "message"}``), never with regctl's own error document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from registry_cli.core.registry import ModelRegistry
from registry_cli.errors import BadInput, RegctlError
from registry_cli.server.auth import authenticate, bearer
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.server.mlflow_docs import HTTP_CODES, error_doc, error_of

log = logging.getLogger("uvicorn.error")
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
BODY_LIMIT = 1 << 20


class MlflowError(Exception):
    """A refusal with an MLflow error code of its own (``RESOURCE_ALREADY_EXISTS``...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, MlflowError):
        return JSONResponse(error_doc(exc.code, exc.message), status_code=exc.status)
    if isinstance(exc, ApiError):
        code = HTTP_CODES.get(exc.status, "INTERNAL_ERROR")
        doc = error_doc(code, exc.message, exc.hint)
        return JSONResponse(doc, status_code=exc.status, headers=exc.headers)
    if isinstance(exc, RegctlError):
        status, doc = error_of(exc)
        return JSONResponse(doc, status_code=status)
    if isinstance(exc, HTTPException):
        code = HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR")
        return JSONResponse(error_doc(code, str(exc.detail)), status_code=exc.status_code)
    log.error("unexpected error in an MLflow route", exc_info=exc)
    return JSONResponse(
        error_doc("INTERNAL_ERROR", f"unexpected {type(exc).__name__}", "see the server's log"),
        status_code=500,
    )


class MlflowRoute(APIRoute):
    """A route whose every failure is an MLflow error document."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return error_response(exc)

        return guarded


@dataclass
class Args:
    """A request's arguments, whichever way they came."""

    values: dict[str, Any]

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.values.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            if required:
                raise BadInput(f"missing value for required parameter {key!r}")
            return None
        if not isinstance(value, str):
            raise BadInput(f"parameter {key!r} must be a string")
        return value

    def required(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def many(self, key: str) -> list[str]:
        value = self.values.get(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) for i in items):
            raise BadInput(f"parameter {key!r} must be a list of strings")
        return list(items)

    def number(self, key: str, default: int, most: int) -> int:
        value = self.values.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            return default
        try:
            found = int(value)
        except (TypeError, ValueError):
            raise BadInput(f"parameter {key!r} must be a whole number, not {value!r}") from None
        if not 1 <= found <= most:
            raise BadInput(f"parameter {key!r} must be between 1 and {most}, not {found}")
        return found

    def flag(self, key: str) -> bool:
        value = self.values.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        return value is True or (isinstance(value, str) and value.lower() == "true")

    def version(self) -> int:
        raw = self.values.get("version")
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)  # hand-written clients send numbers; MLflow's sends strings
            self.values["version"] = raw
        text = self.required("version")
        if not text.isdigit() or int(text) < 1:
            raise BadInput(f"invalid model version {text!r}: a positive whole number")
        return int(text)


async def read_args(request: Request) -> Args:
    values: dict[str, Any] = {}
    for key in request.query_params:
        found = request.query_params.getlist(key)
        values[key] = found if len(found) > 1 else found[0]
    if request.method != "GET":
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > BODY_LIMIT:
                raise BadInput("the request body is over 1 MiB")
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise BadInput("the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise BadInput("the request body must be a JSON object")
            values.update(body)
    return Args(values)


@dataclass
class Call:
    """What a route's work gets: the registry acting as the token, and the arguments."""

    ctx: ServerContext
    reg: ModelRegistry
    args: Args
    base_url: str

    @property
    def stages(self) -> tuple[str, ...]:
        return self.reg.stages


Work = Callable[[Call], dict[str, Any]]


def endpoint(scope: str, work: Work) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint: check the token for ``scope``, read the arguments, run ``work`` in a
    worker thread (it reads and writes the root), answer its document."""

    async def run(request: Request) -> Response:
        ctx: ServerContext = request.app.state.ctx
        who = await authenticate(ctx, bearer(request), scope)
        args = await read_args(request)
        call = Call(ctx, ctx.registry(who.name), args, str(request.base_url).rstrip("/"))
        doc = await anyio.to_thread.run_sync(work, call)
        return JSONResponse(doc)

    return run
