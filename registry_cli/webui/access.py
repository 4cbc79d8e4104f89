"""Who is looking: sign-in with a token, the session cookie, CSRF checks, sign-out.

* The token is typed into a POST form and checked by the server's own token
  verification (a failure answers after the same delay as the API's 401);
  it never appears in a URL, a cookie or the session table.
* The session cookie is HttpOnly, SameSite=Strict, ``Secure`` under TLS, and
  carries only a random id (see :mod:`registry_cli.webui.sessions`).
* Every POST is first checked for where it came from (``Sec-Fetch-Site`` and
  ``Origin``, in :func:`registry_cli.webui.failures.cross_site`, for every
  route), and every POST form also carries a CSRF token: the session's, or
  before sign-in a random value also set in a short-lived cookie (double submit).
* Each request re-checks that the session's token still exists with the
  same secret and has not expired, so a revoke ends the session at once.
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response

from registry_cli.core.registry import ModelRegistry
from registry_cli.core.tokens import allows
from registry_cli.storage.store import Store
from registry_cli.webui.sessions import Session, SessionBook

SESSION_COOKIE = "regctl_session"
SIGNIN_COOKIE = "regctl_signin"
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Identity:
    """A token that was accepted: its name and scopes, and the sha256 of its secret."""

    name: str
    scopes: tuple[str, ...]
    token_sha256: str


@dataclass
class UiDeps:
    """What the UI needs from the server that mounts it."""

    registry: Callable[[str], ModelRegistry]  # actor (a token's name) -> registry
    verify: Callable[[str], Awaitable[Identity | None]]  # None after the failure delay
    still_live: Callable[[Identity], tuple[str, ...] | None]  # current scopes, or None
    # (request, name, version, payload path, viewer) -> the file, as the API sends it
    version_file: Callable[[Request, str, str, str, Viewer], Response]
    anonymous_read: bool = False
    sessions_store: Store | None = None  # where sessions are shared (None: this process)
    sessions_cache_s: float = 5.0  # a session unread for longer is read again


@dataclass
class Viewer:
    """The person behind a request: signed in, or an anonymous reader."""

    name: str
    scopes: tuple[str, ...]
    session: Session | None = None

    @property
    def signed_in(self) -> bool:
        return self.session is not None

    def may(self, scope: str) -> bool:
        return self.signed_in and allows(self.scopes, scope)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


class Access:
    def __init__(self, deps: UiDeps) -> None:
        self.deps = deps
        self.sessions = SessionBook(deps.sessions_store, deps.sessions_cache_s)

    def session_of(self, request: Request) -> Session | None:
        """The request's live session (a revoked or expired token ends it)."""
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(session_id)
        if session is None:
            return None
        identity = Identity(session.token_name, session.scopes, session.token_sha256)
        scopes = self.deps.still_live(identity)
        if scopes is None:
            self.sessions.close(session_id)
            return None
        session.scopes = scopes
        return session

    def viewer(self, request: Request) -> Viewer | None:
        """Who may read: a signed-in token, else anonymous when allowed, else None."""
        session = self.session_of(request)
        if session is not None:
            return Viewer(session.token_name, session.scopes, session)
        if self.deps.anonymous_read:
            return Viewer("anonymous", ("read",))
        return None

    async def sign_in(self, request: Request, secret: str) -> tuple[Identity | None, str]:
        """Check ``secret``; on success open a session and return its id."""
        identity = await self.deps.verify(secret.strip())
        if identity is None:
            return None, ""
        self.sessions.close(request.cookies.get(SESSION_COOKIE))  # never reuse an old id
        return identity, self.sessions.open(identity.name, identity.scopes, identity.token_sha256)

    def sign_out(self, request: Request) -> None:
        self.sessions.close(request.cookies.get(SESSION_COOKIE))


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def new_signin_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


async def form_of(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the UI posts)."""
    body = await request.body()
    form: dict[str, str] = {}
    if len(body) <= MAX_FORM_BYTES:
        try:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            form = {}
    request.state.form = form  # for the error page, which shows a refused form again
    return form


def parsed_form(request: Request) -> dict[str, str]:
    """The form :func:`form_of` read from this request (empty if none was read)."""
    return getattr(request.state, "form", {})


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (``/...``, not ``//host``), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 for c in target):
        return default
    return target


def sign_in_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/sign-in?" + urllib.parse.urlencode({"next": here})
