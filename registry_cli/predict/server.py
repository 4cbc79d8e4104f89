"""``regctl serve``: the HTTP inference server (see docs/predictions.md) on FastAPI + uvicorn.

- ``GET /health``: ``status``, ``model_loaded``, ``model_alias``, ``model_version``.
- ``POST /reload`` ``{"alias": ...}``: loads the new model *fully*, then swaps
  one reference. A request reads that reference once, so requests in flight
  finish on the model they started with and none fails during a reload.
- ``POST /predict`` ``{"X", "callback_url", "metadata"}``: 400 with the reason
  on a bad shape or a missing ``X`` (not FastAPI's 422), 503 while no model is
  loaded, 413 for bodies over ``max_body_bytes``. The callback is POSTed with
  a timeout; its failure only sets ``posted_to_callback: false``.

At start a background thread retries loading ``NAME@alias`` every
``load_interval_s`` for up to ``load_timeout_s`` while ``/health`` reports
``model_loaded: false``; afterwards ``/reload`` can still load.

With ``follow`` (see docs/events.md) another thread polls the alias every
``poll_interval_s`` and swaps in the version it moved to (``predict/slot.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from registry_cli.errors import BadInput, NotFound, RegctlError, RuleViolation
from registry_cli.predict.settings import ServeSettings
from registry_cli.predict.slot import Loader, ModelSlot, Resolver
from registry_cli.serving import bind
from registry_cli.storage import faults

log = logging.getLogger("uvicorn.error")


# ----------------------------------------------------------------- schemas
class PredictRequest(BaseModel):
    X: list[Any] = Field(
        ..., description="One example ([T, F] for a sequence model) or a batch ([N, T, F])."
    )
    callback_url: str | None = Field(None, description="http(s) URL POSTed with the result.")
    metadata: dict[str, Any] | None = Field(None, description="Passed through to the callback.")


class PredictResponse(BaseModel):
    prediction: Any
    posted_to_callback: bool
    model: str
    model_alias: str | None
    model_version: str


class ReloadRequest(BaseModel):
    alias: str | None = Field(None, description="Alias to load (default: the current one).")


class ReloadResponse(BaseModel):
    status: str
    model: str
    model_alias: str | None
    model_version: str
    previous_version: str | None


class HealthResponse(BaseModel):
    status: str
    model: str
    model_loaded: bool
    model_alias: str | None
    model_version: str | None
    loading: bool
    last_error: str | None


# ----------------------------------------------------------------- body limit
class BodyLimit:
    """Pure ASGI middleware: 413 for bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers") or []:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._reject(send)
                    return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body over {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------- callback
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected callback counts as not delivered


_opener = urllib.request.build_opener(_NoRedirect)


def check_callback_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"callback_url must be an http(s) URL, got {url!r}")


def post_callback(url: str, payload: dict[str, Any], timeout_s: float) -> bool:
    """POST ``payload`` as JSON; True on a 2xx reply. Never raises."""
    data = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with _opener.open(request, timeout=timeout_s) as reply:
            return 200 <= reply.status < 300
    except Exception as exc:  # unreachable, timeout, 4xx/5xx, redirect: all "not posted"
        log.warning("callback to %s failed: %s", url, exc)
        return False


# ----------------------------------------------------------------- the app
def _status_for(exc: RegctlError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, BadInput):
        return 400
    if isinstance(exc, RuleViolation):
        return 409
    return 500


def create_app(
    settings: ServeSettings,
    load: Loader,
    *,
    retry_at_start: bool = True,
    resolve: Resolver | None = None,
    reporter: Any = None,
    report_interval_s: float = 60.0,
) -> Any:
    """The ASGI app (FastAPI wrapped in the body limit). ``load(alias)`` loads a model;
    with ``settings.follow``, ``resolve(alias)`` is polled for the version to serve."""
    slot = ModelSlot(load, settings.alias)
    stop = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if retry_at_start:
            slot.retrying = True  # before the thread runs, so /health never says "not loading"
            threading.Thread(
                target=slot.retry_until_loaded,
                name="regctl-model-load",
                daemon=True,
                args=(settings.load_timeout_s, settings.load_interval_s, stop),
            ).start()
        if settings.follow and resolve is not None:
            threading.Thread(
                target=slot.follow,
                name="regctl-follow",
                daemon=True,
                args=(resolve, settings.poll_interval_s, stop),
            ).start()
        if reporter is not None:  # serve --report (docs/fleet.md)
            from registry_cli.predict import fleet_report

            stop_reports = fleet_report.start(slot, reporter, settings.model, report_interval_s)
        yield
        stop.set()
        if reporter is not None:
            stop_reports.set()

    app = FastAPI(
        title=f"regctl serve: {settings.model}",
        description="Predictions from a regctl registry model, loaded by alias.",
        version="1",
        lifespan=lifespan,
    )
    app.state.slot = slot

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            reasons.append(f"{where}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(reasons) or "invalid request"}, status_code=400)

    @app.get("/health", response_model=HealthResponse)
    def health() -> JSONResponse:
        model = slot.current
        return JSONResponse(
            {
                "status": "ok",
                "model": settings.model,
                "model_loaded": model is not None,
                "model_alias": model.alias if model else slot.wanted_alias,
                "model_version": model.version if model else None,
                "loading": slot.retrying and model is None,
                "last_error": slot.last_error,
            }
        )

    @app.post(
        "/reload",
        response_model=ReloadResponse,
        responses={
            404: {"description": "alias or model not found"},
            409: {"description": "nothing runnable in that version"},
        },
    )
    def reload(body: ReloadRequest | None = None) -> JSONResponse:
        alias = body.alias if body and body.alias else None
        previous = slot.current
        try:
            if alias is not None:
                from registry_cli.core.names import validate_alias

                validate_alias(alias)
            model = slot.load(alias)
        except RegctlError as exc:
            raise HTTPException(_status_for(exc), f"reload failed: {exc}") from None
        except Exception as exc:
            fault = faults.translate(exc, f"reload @{alias or settings.alias}")
            if fault is not None:  # full disk, read-only cache, no descriptors: keep serving
                log.error("reload failed: %s", fault.message)
                raise HTTPException(faults.http_status(exc) or 503, fault.message) from None
            raise HTTPException(500, f"reload failed: {type(exc).__name__}: {exc}") from None
        log.info("reloaded %s:%s (@%s)", model.name, model.version, model.alias)
        return JSONResponse(
            {
                "status": "reloaded",
                "model": model.name,
                "model_alias": model.alias,
                "model_version": model.version,
                "previous_version": previous.version if previous else None,
            }
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            400: {"description": "bad input (shape, dtype, missing X)"},
            413: {"description": "request body too large"},
            503: {"description": "no model loaded yet"},
        },
    )
    def predict(body: PredictRequest) -> JSONResponse:
        model = slot.current  # read once: a concurrent reload cannot change it under us
        if model is None:
            why = f"last error: {slot.last_error}" if slot.last_error else "still loading"
            raise HTTPException(503, f"no model loaded yet ({why}); wait or POST /reload")
        try:
            if body.callback_url:
                check_callback_url(body.callback_url)
            prediction = model.predict(body.X)
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            log.exception("prediction failed")
            raise HTTPException(500, f"prediction failed: {type(exc).__name__}: {exc}") from None
        posted = False
        if body.callback_url:
            posted = post_callback(
                body.callback_url,
                {
                    "prediction": prediction,
                    "metadata": body.metadata or {},
                    "model": model.name,
                    "model_alias": model.alias,
                    "model_version": model.version,
                },
                settings.callback_timeout_s,
            )
        return JSONResponse(
            {
                "prediction": prediction,
                "posted_to_callback": posted,
                "model": model.name,
                "model_alias": model.alias,
                "model_version": model.version,
            }
        )

    return BodyLimit(app, settings.max_body_bytes)


def run(
    settings: ServeSettings,
    load: Loader,
    resolve: Resolver | None = None,
    reporter: Any = None,
    report_interval_s: float = 60.0,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it gracefully)."""
    import uvicorn

    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        create_app(
            settings,
            load,
            resolve=resolve,
            reporter=reporter,
            report_interval_s=report_interval_s,
        ),
        loop="asyncio",  # the same loop whether or not uvloop is installed
        log_level="info",
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    log.info(
        "serving %s@%s on http://%s:%d (API docs: /docs)%s",
        settings.model,
        settings.alias,
        shown,
        port,
        f"; following the alias every {settings.poll_interval_s:g} s" if settings.follow else "",
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
