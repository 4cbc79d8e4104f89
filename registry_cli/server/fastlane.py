"""The hottest read answered before FastAPI's routing: ``GET
/api/v1/models/NAME/-/versions/N`` when its answer is already in the read cache.

A version read is what clients (``pull``, ``resolve``, deploy scripts) repeat most,
and once the read cache (``server/readcache.py``) holds its JSON, FastAPI's route
matching and dependency solving cost more than the answer. This ASGI middleware
answers such a request itself, with the same bytes and headers as the route, and
only when nothing could differ from the route's answer:

- a GET with no query string and no ``root_path``, on a folder root (where the
  cache's check of the model's state is one ``stat``);
- the caller is allowed to read exactly as ``require("read")`` decides: a live
  token with a scope that allows ``read``, or no ``Authorization`` at all on a
  server with ``--anonymous-read``. Anything else (no token, a wrong, revoked or
  expired one, a token without the scope) goes to the route, which answers 401
  after its delay, or 403;
- the cache holds the answer for this exact reference under the state's current
  tag: it was made by the route's own code for a name and version it accepted.

Everything else, a miss included, goes on to the app unchanged. The request is
still counted, timed and logged by the middleware outside this one, under the
route's template.
"""

from __future__ import annotations

import re
from typing import Any

from registry_cli.core.tokens import allows
from registry_cli.server.context import ServerContext
from registry_cli.storage.fs_store import FsStore

PATH_RE = re.compile(r"^/api/v1/models/(.+)/-/versions/([^/]+)$")
TEMPLATE = "/api/v1/models/{name:modelname}/-/versions/{version}"


class _Route:
    """What the metrics middleware reads from ``scope["route"]``: the template."""

    path = TEMPLATE


ROUTE = _Route()


class FastLane:
    def __init__(self, app: Any, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    def _allowed(self, scope: dict[str, Any]) -> bool:
        header = None
        for key, value in scope.get("headers") or ():
            if key == b"authorization":
                if header is not None:
                    return False  # two of them: the route decides
                header = value.decode("latin-1")
        if header is None:
            return self.ctx.anonymous_read
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            return False
        token = self.ctx.tokens.authenticate(secret.strip())
        return token is not None and allows(token.scopes, "read")

    def _cached(self, scope: dict[str, Any]) -> bytes | None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return None
        if scope.get("query_string") or scope.get("root_path"):
            return None
        found = PATH_RE.match(scope.get("path", ""))
        if found is None or not isinstance(self.ctx.base.store, FsStore):
            return None
        if not self._allowed(scope):
            return None
        name, version = found.groups()
        return self.ctx.reads.cached_json(self.ctx.base, f"{name}:{version}")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = self._cached(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
