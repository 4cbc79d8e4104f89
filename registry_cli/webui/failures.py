"""One error path for every UI route, and the cross-site check of every form post.

Views raise; they never catch. :class:`Failures` turns what they raise into a
page, chosen by the request (as datasette's ``handle_exception`` does):

* :class:`SignInFirst` -> 303 to sign-in, back here afterwards;
* :class:`Refused` (no session, CSRF, scope) -> 403 "Refused, nothing was changed";
* a core error -> the error page with the CLI's message and hint, and the status
  the API answers (409 a refused rule, 404 not found, 400 bad input, 507 a
  machine fault); a failed form post re-shows its form with the problem when the
  route registered one (:attr:`Failures.form_pages`);
* anything else -> 500 "unexpected NAME", logged with its traceback (never shown).

Cross-site requests are refused before any view runs, for every method that may
change something (see :func:`cross_site`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from registry_cli.error_codes import ApiError, status_of
from registry_cli.errors import RegctlError
from registry_cli.storage import faults
from registry_cli.webui import access
from registry_cli.webui.access import Access, Viewer
from registry_cli.webui.render import Renderer, redirect

log = logging.getLogger("uvicorn.error")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInFirst(Exception):
    """The page needs a reader and nobody is signed in."""


class Refused(Exception):
    """A form post that may not change anything (403)."""

    def __init__(self, why: str, viewer: Viewer | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.viewer = viewer


@dataclass(frozen=True)
class Problem:
    """What the error page shows: a status, the message and the hint."""

    status: int
    message: str
    hint: str | None = None


def cross_site(request: Request) -> str | None:
    """Why a request that may change something did not come from this site, or None.

    ``Sec-Fetch-Site`` (set by the browser, never by a page) must be
    ``same-origin``; ``Origin``, when sent, must be this server's own
    scheme://host[:port]. A request with neither header is not from a modern
    browser (every current browser sends ``Origin`` on a POST): it passes here
    and still needs the form's CSRF token and, for actions, a session cookie,
    which is SameSite=Strict and so never sent from another site.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return f"the form was not posted from a page of this site (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        if origin.rstrip("/").lower() != own.lower():
            return f"the form was posted from {origin!r}, not from this site"
    return None


def problem_of(request: Request, exc: Exception) -> Problem:
    """The status, message and hint for what a view raised (as the API would say it)."""
    if isinstance(exc, RegctlError):
        return Problem(status_of(exc), exc.message, exc.hint)
    if isinstance(exc, ApiError):
        return Problem(exc.status, exc.message, exc.hint)
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return Problem(exc.status_code, detail)
    if isinstance(exc, RequestValidationError):
        return Problem(400, "malformed request", "check the address and the form's fields")
    where = f"{request.method} {request.url.path}"
    if isinstance(exc, OSError):
        fault = faults.translate(exc, where)
        if fault is not None:
            log.error("machine fault: %s", fault.message)
            return Problem(status_of(fault), fault.message, fault.hint)
    log.error("unexpected error on %s", where, exc_info=exc)
    return Problem(500, f"unexpected {type(exc).__name__}", "see the server's log")


FormPage = Callable[[Request, Viewer, RegctlError], Response]


class Failures:
    """The error handler of one UI; :meth:`route_class` puts it around every route."""

    def __init__(self, gate: Access, ui: Renderer) -> None:
        self.gate = gate
        self.ui = ui
        self.form_pages: dict[str, FormPage] = {}  # route name -> form shown again

    def route_class(self) -> type[APIRoute]:
        failures = self

        class UiRoute(APIRoute):
            def get_route_handler(self) -> Callable:
                inner = super().get_route_handler()
                name = self.name

                async def handler(request: Request) -> Response:
                    try:
                        if request.method not in SAFE_METHODS:
                            why = cross_site(request)
                            if why is not None:
                                raise Refused(why)
                        return await inner(request)
                    except Exception as exc:  # noqa: BLE001 (the one place that renders them)
                        return await run_in_threadpool(failures.render, request, name, exc)

                return handler

        return UiRoute

    def render(self, request: Request, route: str, exc: Exception) -> Response:
        if isinstance(exc, SignInFirst):
            return redirect(access.sign_in_url(request))
        viewer = self._viewer(request)
        if isinstance(exc, Refused):
            return self.refused(exc.why, exc.viewer or viewer)
        form_page = self.form_pages.get(route)
        if isinstance(exc, RegctlError) and form_page is not None and viewer is not None:
            try:
                return form_page(request, viewer, exc)
            except Exception as again:  # noqa: BLE001 (the form cannot be shown: say why)
                exc = again
        problem = problem_of(request, exc)
        return self.ui.page(
            "error.html",
            problem.status,
            viewer=viewer,
            notice=None,
            path="",
            anonymous_read=self.gate.deps.anonymous_read,
            error=problem,
            posted=request.method not in SAFE_METHODS,
        )

    def refused(self, why: str, viewer: Viewer | None = None) -> Response:
        return self.ui.page(
            "refused.html", 403, viewer=viewer, notice=None, path="", why=why, anonymous_read=False
        )

    def _viewer(self, request: Request) -> Viewer | None:
        try:
            return self.gate.viewer(request)
        except Exception:  # noqa: BLE001 (the page still renders, without the header's name)
            log.error("could not tell who is looking", exc_info=True)
            return None
