"""Signed-in browsers: server-side sessions that never hold a token's secret.

A session is created when a token is accepted on the sign-in form. The
browser keeps only a random session id (an HttpOnly, SameSite=Strict cookie);
the server keeps the token's name, scopes and the sha256 of its secret (to
notice a revoke or a re-issued token) and a one-shot notice for the next page.
The session's CSRF token is derived from its id (an HMAC), so it is never stored.
Sessions end on sign-out, after ``IDLE_S`` without a request, or after
``MAX_AGE_S`` in all. Ids are looked up by their hash, so no table or file holds
a usable cookie.

With a store (what ``serve-registry`` gives), every session is also a document of
the root, ``.regctl/sessions/<sha256 of the id>.json``, so replicas of the server
on one root share them (see docs/operations.md, "Replicas"): a sign-in through one
is honoured by all, and a sign-out on one ends the session on every other within
``cache_s`` seconds, each replica re-reading a session it has not read for that
long. Without a store (tests), sessions live in this process only and end with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from registry_cli.storage.fs_store import FsStore
from registry_cli.storage.store import Missing, Store

IDLE_S = 2 * 3600
MAX_AGE_S = 12 * 3600
MAX_SESSIONS = 10_000  # held in memory by one process (the root holds every one)
FOLDER = ".regctl/sessions"
SEEN_EVERY_S = 300  # how stale a stored session's "seen" may get (one write per 5 min)
FORMAT_VERSION = 1
SWEEP_EVERY_S = 3600  # expired session documents are removed this often, at most


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _csrf(session_id: str) -> str:
    mac = hmac.new(session_id.encode("utf-8", "surrogatepass"), b"regctl-csrf", "sha256")
    return mac.hexdigest()


@dataclass
class Session:
    token_name: str
    scopes: tuple[str, ...]
    token_sha256: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    notice: str | None = None
    # the shared copy, when there is one: wall-clock times and where it is kept
    created_at: float = field(default_factory=time.time)
    seen_at: float = field(default_factory=time.time)
    checked: float = field(default_factory=time.monotonic)  # last read from the root
    book: SessionBook | None = field(default=None, repr=False, compare=False)
    key: str = field(default="", repr=False)

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf, str(given))

    def tell(self, notice: str) -> None:
        """Show ``notice`` on the next page of this session (once)."""
        self.notice = notice
        if self.book is not None:
            self.book.save(self)

    def take_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        if notice is not None and self.book is not None:
            self.book.save(self)
        return notice

    def to_doc(self) -> dict[str, object]:
        return {
            "format_version": FORMAT_VERSION,
            "token_name": self.token_name,
            "scopes": list(self.scopes),
            "token_sha256": self.token_sha256,
            "created_at": self.created_at,
            "seen_at": self.seen_at,
            "notice": self.notice,
        }


class SessionBook:
    """The sessions of one server: in memory, and in ``store`` when one is given."""

    def __init__(self, store: Store | None = None, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._by_key: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    # ---------------------------------------------------------------- the root's copy
    def _doc_key(self, key: str) -> str:
        return f"{FOLDER}/{key}.json"

    def save(self, session: Session) -> None:
        if self.store is None or not session.key:
            return
        if isinstance(self.store, FsStore):
            folder = self.store.local_path(FOLDER)
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        self.store.put(self._doc_key(session.key), json.dumps(session.to_doc()).encode())
        if isinstance(self.store, FsStore):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.store.local_path(self._doc_key(session.key)), 0o600)

    def _fetch(self, key: str, session_id: str) -> Session | None:
        assert self.store is not None
        try:
            doc = json.loads(self.store.read(self._doc_key(key)))
            if doc.get("format_version") != FORMAT_VERSION:
                raise ValueError("format_version")
            session = Session(
                token_name=str(doc["token_name"]),
                scopes=tuple(doc["scopes"]),
                token_sha256=str(doc["token_sha256"]),
                csrf=_csrf(session_id),
                notice=doc.get("notice"),
                created_at=float(doc["created_at"]),
                seen_at=float(doc["seen_at"]),
                book=self,
                key=key,
            )
        except Missing:
            return None
        except (ValueError, KeyError, TypeError):
            self._forget(key)  # a damaged session document: that session is over
            return None
        return session

    def _forget(self, key: str) -> None:
        self._by_key.pop(key, None)
        if self.store is not None:
            self.store.delete(self._doc_key(key))

    @staticmethod
    def _expired(session: Session, mono: float, wall: float) -> bool:
        if mono - session.seen > IDLE_S or mono - session.created > MAX_AGE_S:
            return True
        return wall - session.seen_at > IDLE_S or wall - session.created_at > MAX_AGE_S

    # ---------------------------------------------------------------- the interface
    def open(self, token_name: str, scopes: tuple[str, ...], token_sha256: str) -> str:
        """A new session; returns the id to put in the cookie."""
        session_id = secrets.token_urlsafe(32)
        key = _key(session_id)
        session = Session(token_name, scopes, token_sha256, csrf=_csrf(session_id), key=key)
        if self.store is not None:
            session.book = self
            self.save(session)
        with self._lock:
            self._expire(time.monotonic())
            if len(self._by_key) >= MAX_SESSIONS:  # the oldest go first (from memory only)
                for old in sorted(self._by_key, key=lambda k: self._by_key[k].seen)[:100]:
                    del self._by_key[old]
            self._by_key[key] = session
        self._sweep()
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        key = _key(session_id)
        mono, wall = time.monotonic(), time.time()
        with self._lock:
            session = self._by_key.get(key)
        if self.store is not None and (session is None or mono - session.checked > self.cache_s):
            fresh = self._fetch(key, session_id)  # another replica may have changed it
            if fresh is not None and session is not None:
                fresh.seen, fresh.created = session.seen, session.created
            session = fresh
            with self._lock:
                if session is None:
                    self._by_key.pop(key, None)
                else:
                    self._by_key[key] = session
        if session is None:
            return None
        if self._expired(session, mono, wall):
            with self._lock:
                self._forget(key)
            return None
        session.seen = mono
        if self.store is not None and wall - session.seen_at > SEEN_EVERY_S:
            session.seen_at = wall
            self.save(session)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._forget(_key(session_id))

    def _expire(self, now: float) -> None:
        for key, s in list(self._by_key.items()):
            if now - s.seen > IDLE_S or now - s.created > MAX_AGE_S:
                del self._by_key[key]

    def _sweep(self) -> None:
        """Remove the root's expired session documents (at most once an hour)."""
        now = time.monotonic()
        if self.store is None or now - self._swept < SWEEP_EVERY_S:
            return
        self._swept = now
        wall = time.time()
        for name in self.store.children(FOLDER)[:1000]:
            key = name.removesuffix(".json")
            try:
                doc = json.loads(self.store.read(self._doc_key(key)))
                old = wall - float(doc["seen_at"]) > IDLE_S
                old = old or wall - float(doc["created_at"]) > MAX_AGE_S
            except Missing:
                continue
            except (ValueError, KeyError, TypeError):
                old = True
            if old:
                self.store.delete(self._doc_key(key))
