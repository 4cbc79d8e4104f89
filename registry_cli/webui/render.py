"""Turning page data into responses: Jinja2 templates (autoescaped), the package's own
assets, and the security headers every UI response carries.

Every asset (CSS, JS, SVG) ships in ``registry_cli/webui/static`` and is served
by regctl at ``/static/NAME?v=HASH``; nothing is fetched from elsewhere, which
the Content-Security-Policy enforces in the browser as well.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from registry_cli.core.provenance import card_html
from registry_cli.version import __version__
from registry_cli.webui import views

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    data: bytes
    digest: str
    media_type: str


def _load_assets() -> dict[str, Asset]:
    folder = importlib.resources.files("registry_cli.webui") / "static"
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            data = entry.read_bytes()
            out[entry.name] = Asset(
                data, hashlib.sha256(data).hexdigest()[:16], MEDIA_TYPES[suffix]
            )
    return out


class Renderer:
    """The template environment and assets of one UI."""

    def __init__(self) -> None:
        self.assets = _load_assets()
        self.env = Environment(
            loader=PackageLoader("registry_cli.webui", "templates"),
            autoescape=True,  # every value is user input until proven otherwise
            auto_reload=False,  # templates ship in the package: never re-read
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            asset=self.asset_url,
            regctl_version=__version__,
            details_text=views.details_text,
            csrf_field=csrf_field,
            card_html=card_html,  # the model card, Markdown without raw HTML
        )

    def asset_url(self, name: str) -> str:
        return f"/static/{name}?v={self.assets[name].digest}"

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers=page_headers())

    def asset(self, request: Request, name: str) -> Response:
        found = self.assets.get(name)
        if found is None:
            return secure(Response("no such asset\n", status_code=404, media_type="text/plain"))
        etag = f'"{found.digest}"'
        cache = (
            "public, max-age=31536000, immutable"
            if request.query_params.get("v") == found.digest
            else "no-cache"
        )
        headers = {"ETag": etag, "Cache-Control": cache, **SECURITY_HEADERS}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(found.data, media_type=found.media_type, headers=headers)


@pass_context
def csrf_field(context: Context, form: str = "session") -> Markup:
    """The hidden CSRF input of a form: the session's, or the sign-in form's own."""
    viewer = context.get("viewer")
    if form == "sign-in":
        token = context.get("signin_csrf") or ""
    else:
        token = viewer.csrf if viewer is not None else ""
    return Markup('<input type="hidden" name="csrf" value="%s">') % escape(token)


def page_headers() -> dict[str, str]:
    return {**SECURITY_HEADERS, "Cache-Control": "no-store"}


def secure(response: Response) -> Response:
    response.headers.update(page_headers())
    return response


def redirect(location: str) -> Response:
    """303 See Other: after a POST the browser GETs ``location``."""
    return secure(RedirectResponse(location, status_code=303))
