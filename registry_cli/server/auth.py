"""Who is asking, and may they (see docs/server.md).

:func:`authenticate` is the one check every route (and the web UI) uses: it
takes the bearer token of a request and the scope the action needs and
returns the :class:`Principal`, or raises a 401 (missing, unknown, expired or
revoked token; answered after a short delay, with ``WWW-Authenticate``) or a
403 (a live token without the scope). Reads (``read``) need no token when the
server runs with ``--anonymous-read``; a token that is sent must be valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from registry_cli.core.tokens import allows
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError

ANONYMOUS = "anonymous"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="regctl"'}


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: tuple[str, ...]
    anonymous: bool = False

    def may(self, scope: str) -> bool:
        return allows(self.scopes, scope)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return ""  # something was sent, and it is not a token: refused like a wrong one
    return value.strip()


async def authenticate(ctx: ServerContext, secret: str | None, needed: str) -> Principal:
    """The principal for ``secret`` if it may do ``needed``; else ApiError 401/403."""
    if secret is None and needed == "read" and ctx.anonymous_read:
        return Principal(ANONYMOUS, ("read",), anonymous=True)
    token = ctx.tokens.authenticate(secret) if secret else None
    if token is None:
        await asyncio.sleep(ctx.auth_delay_s)
        why = "no token given" if secret is None else "unknown, expired or revoked token"
        raise ApiError(
            401,
            f"authentication required: {why}",
            hint="send Authorization: Bearer TOKEN (regctl token create on the server)",
            headers=CHALLENGE,
        )
    principal = Principal(token.name, token.scopes)
    if not principal.may(needed):
        raise ApiError(
            403,
            f"token {token.name!r} (scopes: {', '.join(token.scopes)}) may not {needed}",
            hint=f"use a token with the {needed!r} or 'admin' scope",
        )
    return principal


def require(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's principal, allowed to do ``needed``."""

    async def dependency(request: Request) -> Principal:
        ctx: ServerContext = request.app.state.ctx
        return await authenticate(ctx, bearer(request), needed)

    return dependency
