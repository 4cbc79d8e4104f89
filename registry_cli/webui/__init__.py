"""The web UI (docs/webui.md), served by ``regctl serve-registry`` at ``/``.

HTML rendered on the server from Jinja2 templates shipped in this package,
every asset served by regctl itself, readable without JavaScript. The UI
makes the same core calls as the API (:class:`ModelRegistry`), through
:func:`create_router`, which takes what it needs from the server that mounts
it (:class:`UiDeps`); :func:`router_for` builds those from a server context.
"""

from __future__ import annotations

from fastapi import APIRouter

from registry_cli.core.registry import ModelRegistry
from registry_cli.core.tokens import secret_hash
from registry_cli.server import api as _api  # noqa: F401 (registers the modelname convertor)
from registry_cli.server.auth import authenticate
from registry_cli.server.context import ServerContext
from registry_cli.server.errors import ApiError
from registry_cli.webui.access import Access, Identity, UiDeps
from registry_cli.webui.actions import add_actions
from registry_cli.webui.failures import Failures
from registry_cli.webui.fleet_views import add_fleet
from registry_cli.webui.pages import add_pages
from registry_cli.webui.render import Renderer

__all__ = ["UiDeps", "Identity", "create_router", "router_for"]


def create_router(deps: UiDeps) -> APIRouter:
    """Every page, action and asset of the UI."""
    gate = Access(deps)
    ui = Renderer()
    failures = Failures(gate, ui)
    router = APIRouter(include_in_schema=False, route_class=failures.route_class())
    add_pages(router, gate, ui)
    add_actions(router, gate, ui, failures)
    add_fleet(router, gate, ui, failures)  # the fleet page of a model (docs/fleet.md)
    return router


def router_for(ctx: ServerContext) -> APIRouter:
    """The UI of one registry server: its registries, tokens and read policy."""

    async def verify(secret: str) -> Identity | None:
        if not secret:
            secret = "\0"  # checked (and delayed) like any wrong token
        try:
            who = await authenticate(ctx, secret, "read")
        except ApiError:
            return None  # after the same delay as the API's 401
        return Identity(who.name, who.scopes, secret_hash(secret))

    def still_live(identity: Identity) -> tuple[str, ...] | None:
        for token in ctx.tokens.list_tokens():
            if token.name == identity.name and token.sha256 == identity.token_sha256:
                return None if token.expired() else token.scopes
        return None

    def registry(actor: str) -> ModelRegistry:
        return ctx.registry(actor)

    return create_router(UiDeps(registry, verify, still_live, ctx.anonymous_read))
