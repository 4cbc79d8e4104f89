"""Signed-in browsers: server-side sessions that never hold a token's secret.

A session is created when a token is accepted on the sign-in form. The
browser keeps only a random session id (an HttpOnly, SameSite=Strict cookie);
the server keeps, in memory, the token's name, scopes and the sha256 of its
secret (to notice a revoke or a re-issued token), the session's CSRF token
and a one-shot notice for the next page. Sessions end on sign-out, after
``IDLE_S`` without a request, after ``MAX_AGE_S`` in all, or when the server
stops. Ids are looked up by their hash, so the table holds no usable cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

IDLE_S = 2 * 3600
MAX_AGE_S = 12 * 3600
MAX_SESSIONS = 10_000


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Session:
    token_name: str
    scopes: tuple[str, ...]
    token_sha256: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    notice: str | None = None

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf, str(given))

    def take_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        return notice


class SessionBook:
    """The live sessions of one server process."""

    def __init__(self) -> None:
        self._by_key: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token_name: str, scopes: tuple[str, ...], token_sha256: str) -> str:
        """A new session; returns the id to put in the cookie."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._expire(time.monotonic())
            if len(self._by_key) >= MAX_SESSIONS:  # the oldest go first
                for key in sorted(self._by_key, key=lambda k: self._by_key[k].seen)[:100]:
                    del self._by_key[key]
            self._by_key[_key(session_id)] = Session(token_name, scopes, token_sha256)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_key.get(_key(session_id))
            if session is None:
                return None
            if now - session.seen > IDLE_S or now - session.created > MAX_AGE_S:
                del self._by_key[_key(session_id)]
                return None
            session.seen = now
            return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._by_key.pop(_key(session_id), None)

    def _expire(self, now: float) -> None:
        for key, s in list(self._by_key.items()):
            if now - s.seen > IDLE_S or now - s.created > MAX_AGE_S:
                del self._by_key[key]
