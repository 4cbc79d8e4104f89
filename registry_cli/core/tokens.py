"""API tokens of a registry server (see docs/server.md): create, list, revoke, authenticate.

Storage: one document ``.regctl/tokens/tokens.json`` through the :class:`Store`,
holding for each token its name, scopes, creation facts, expiry and the
sha256 of its secret (never the secret). Changes are conditional writes
(``create`` for the first token, ``replace(if_match=...)`` after), retried on
a conflict, so two ``regctl token`` commands never lose one another's change.
On a folder root the ``.regctl/tokens`` folder and the file are owner-only.

A secret is ``rgt_`` + 43 url-safe characters (256 random bits).
:meth:`Tokens.authenticate` hashes what it is given and compares it with
every stored hash in constant time. With ``cache_s`` 0 (the CLI) it reads the file
each time. A server passes ``server.token_cache_s`` (see docs/operations.md,
"Replicas"): on a folder root the file is still checked on every request (a
``stat``: a revoke holds from the next request on); on an object store the book is
read again once it is ``cache_s`` old, so a revoke made anywhere holds within
``cache_s`` on every replica. A secret the cached book does not know makes it read
the book again (at most once a second), so a new token works at once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry_cli.core.models import ModelStates, utc_now
from registry_cli.core.names import SEGMENT_RE
from registry_cli.errors import BadInput, IntegrityError, NotFound, RuleViolation
from registry_cli.storage.fs_store import FsStore
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store

FOLDER = ".regctl/tokens"
KEY = f"{FOLDER}/tokens.json"
LOCK = f"{FOLDER}/.lock"
FORMAT_VERSION = 1
SCOPES = ("read", "publish", "promote", "admin", "report")
PREFIX = "rgt_"
MISS_RELOAD_S = 1.0  # an unknown secret re-reads a cached book at most this often

# What each scope allows besides itself (see docs/server.md).
_IMPLIES: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "publish": frozenset({"read", "publish"}),
    "promote": frozenset({"read", "promote"}),
    "admin": frozenset(SCOPES),
    "report": frozenset({"read", "report"}),  # devices: read, and post fleet reports
}


def allows(scopes: tuple[str, ...] | list[str], needed: str) -> bool:
    """True when a token with ``scopes`` may do what needs ``needed``."""
    return any(needed in _IMPLIES.get(s, frozenset()) for s in scopes)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Token:
    """A stored token, without its secret."""

    name: str
    scopes: tuple[str, ...]
    created_at: str
    created_by: str
    expires_at: str | None
    sha256: str = ""

    def expired(self, now: _dt.datetime | None = None) -> bool:
        if not self.expires_at:
            return False
        when = _dt.datetime.fromisoformat(self.expires_at.replace("Z", "+00:00"))
        return (now or _dt.datetime.now(_dt.timezone.utc)) >= when

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
        }

    def to_doc(self) -> dict[str, Any]:
        return {**self.to_json(), "sha256": self.sha256}


@dataclass(frozen=True)
class NewToken:
    """A token just created: the only time its secret exists outside the caller."""

    token: Token
    secret: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.token.name,
            "token": self.secret,
            "scopes": list(self.token.scopes),
            "expires_at": self.token.expires_at,
        }


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not scopes:
        raise BadInput("a token needs at least one scope", hint=f"--scope {' | '.join(SCOPES)}")
    out: list[str] = []
    for scope in scopes:
        if scope not in SCOPES:
            raise BadInput(f"unknown scope {scope!r}", hint=f"scopes: {', '.join(SCOPES)}")
        if scope not in out:
            out.append(scope)
    return tuple(out)


def validate_token_name(name: str) -> str:
    if not isinstance(name, str) or not SEGMENT_RE.match(name):
        raise BadInput(
            f"invalid token name {name!r}",
            hint="one name segment: 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return name


class Tokens:
    """The token book of one root. ``actor`` is who creates/revokes (for the audit)."""

    def __init__(
        self, store: Store, states: ModelStates, actor: str, *, cache_s: float = 0.0
    ) -> None:
        self.store = store
        self.states = states
        self.actor = actor
        self.cache_s = cache_s
        self._cached: list[Token] | None = None
        self._cached_at = 0.0
        self._cached_stamp: tuple[int, ...] | None = None
        self._cache_lock = threading.Lock()
        self._file: str | None = None  # the token file's path on a folder root, found once

    # ---------------------------------------------------------------- reading
    def _load(self) -> tuple[list[Token], str | None]:
        try:
            tagged = self.store.read_tagged(KEY)
        except Missing:
            return [], None
        where = f"{self.store.location}/{KEY}"
        try:
            doc = json.loads(tagged.data)
            if doc.get("format_version") != FORMAT_VERSION:
                raise ValueError("format_version")
            tokens = [
                Token(
                    name=t["name"],
                    scopes=tuple(t["scopes"]),
                    created_at=t["created_at"],
                    created_by=t["created_by"],
                    expires_at=t.get("expires_at"),
                    sha256=t["sha256"],
                )
                for t in doc["tokens"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise IntegrityError(
                f"{where} is damaged", hint="recreate the tokens (regctl token create)"
            ) from None
        return tokens, tagged.tag

    def _stamp(self) -> tuple[int, ...] | None:
        """What changes when the token file is replaced (folder roots only: a stat)."""
        if not isinstance(self.store, FsStore):
            return None
        if self._file is None:  # resolved (and checked inside the root) once, not per request
            self._file = str(self.store.local_path(KEY))
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            return (0,)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _book(self, *, fresher_than: float | None = None) -> list[Token]:
        """The tokens, from the cache while it may be trusted (see the module's doc)."""
        if self.cache_s <= 0:
            return self._load()[0]
        now = time.monotonic()
        stamp = self._stamp()
        age_limit = self.cache_s if fresher_than is None else min(self.cache_s, fresher_than)
        with self._cache_lock:
            if self._cached is not None:
                if stamp is not None and stamp == self._cached_stamp:
                    return self._cached
                if stamp is None and now - self._cached_at < age_limit:
                    return self._cached
        tokens = self._load()[0]
        with self._cache_lock:
            self._cached, self._cached_at, self._cached_stamp = tokens, now, stamp
        return tokens

    def find(self, name: str, sha256: str) -> Token | None:
        """The live token named ``name`` whose secret hashes to ``sha256``, or None."""
        for token in self._book():
            if token.name == name and hmac.compare_digest(token.sha256, sha256):
                return None if token.expired() else token
        return None

    def list_tokens(self) -> list[Token]:
        return sorted(self._load()[0], key=lambda t: t.name)

    def any(self) -> bool:
        """True when at least one token exists (expired ones count: they were set up)."""
        return bool(self._load()[0])

    def authenticate(self, secret: str | None) -> Token | None:
        """The live token whose secret this is, or None (unknown, revoked or expired)."""
        if not secret or len(secret) > 512:
            return None
        presented = secret_hash(secret)
        found = self._match(presented, self._book())
        if found is None and self.cache_s > 0:  # perhaps a token created since the last read
            found = self._match(presented, self._book(fresher_than=MISS_RELOAD_S))
        if found is None or found.expired():
            return None
        return found

    @staticmethod
    def _match(presented: str, tokens: list[Token]) -> Token | None:
        found: Token | None = None
        for token in tokens:  # every hash is compared: the time does not tell which
            if hmac.compare_digest(presented, token.sha256):
                found = token
        return found

    # ---------------------------------------------------------------- changing
    def _commit(self, change: Callable[[list[Token]], list[Token]]) -> None:
        self._prepare_folder()
        for _attempt in range(50):
            # the lock makes conflicts rare where it works; the conditional write is
            # what keeps a change from being lost where it does not
            with self.store.lock(LOCK, what="the token file"):
                tokens, tag = self._load()
                doc = {
                    "format_version": FORMAT_VERSION,
                    "tokens": [t.to_doc() for t in change(tokens)],
                }
                data = json.dumps(doc, indent=2).encode()
                try:
                    if tag is None:
                        self.store.create(KEY, data)
                    else:
                        self.store.replace(KEY, data, if_match=tag)
                except (AlreadyExists, Conflict):
                    continue  # another writer got there first: apply the change to theirs
            self._owner_only(KEY)
            return
        raise RuleViolation("the token file keeps changing under us", hint="retry")

    def _prepare_folder(self) -> None:
        if isinstance(self.store, FsStore):
            folder = self.store.local_path(FOLDER)
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    def _owner_only(self, key: str) -> None:
        if isinstance(self.store, FsStore):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.store.local_path(key), 0o600)

    def create(
        self, name: str, scopes: list[str] | tuple[str, ...], expires_days: int | None = None
    ) -> NewToken:
        validate_token_name(name)
        wanted = validate_scopes(scopes)
        if expires_days is not None and expires_days < 1:
            raise BadInput(f"--expires-days must be 1 or more, not {expires_days}")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = _dt.datetime.now(_dt.timezone.utc)
        expires = None
        if expires_days is not None:
            expires = (
                (now + _dt.timedelta(days=expires_days))
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z")
            )
        token = Token(
            name=name,
            scopes=wanted,
            created_at=utc_now(),
            created_by=self.actor,
            expires_at=expires,
            sha256=secret_hash(secret),
        )

        def add(tokens: list[Token]) -> list[Token]:
            if any(t.name == name for t in tokens):
                raise RuleViolation(
                    f"a token named {name!r} exists",
                    hint=f"choose another name, or: regctl token revoke {name}",
                )
            return [*tokens, token]

        self._commit(add)
        self.states.audit(
            self.actor,
            "token-create",
            None,
            None,
            {"token": name, "scopes": list(wanted), "expires_at": expires},
        )
        return NewToken(token, secret)

    def revoke(self, name: str) -> Token:
        validate_token_name(name)
        gone: list[Token] = []

        def drop(tokens: list[Token]) -> list[Token]:
            gone[:] = [t for t in tokens if t.name == name]
            if not gone:
                raise NotFound(f"no token named {name!r}", hint="see: regctl token list")
            return [t for t in tokens if t.name != name]

        if not self._load()[0]:
            raise NotFound(f"no token named {name!r}", hint="see: regctl token list")
        self._commit(drop)
        self.states.audit(self.actor, "token-revoke", None, None, {"token": name})
        return gone[0]
