"""The web UI (docs/webui.md), served by ``regctl serve-registry`` at ``/``.

HTML rendered on the server from Jinja2 templates shipped in this package,
every asset served by regctl itself, readable without JavaScript. The UI
makes the same core calls as the API (:class:`ModelRegistry`), through
:func:`create_router`, which takes what it needs from the server that mounts
it (:class:`UiDeps`); the UI knows nothing of the server package:
:mod:`registry_cli.httpapp` builds those from a server context.
"""

from __future__ import annotations

from fastapi import APIRouter

from registry_cli.urlpaths import MODELNAME  # noqa: F401 (registers {name:modelname})
from registry_cli.webui.access import Access, Identity, UiDeps, Viewer
from registry_cli.webui.actions import add_actions
from registry_cli.webui.failures import Failures
from registry_cli.webui.fleet_views import add_fleet
from registry_cli.webui.pages import add_pages
from registry_cli.webui.render import Renderer

__all__ = ["UiDeps", "Identity", "Viewer", "create_router"]


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
