"""The shared state of replicas, in-process (see docs/operations.md, "Replicas"): web UI
sessions kept in the root as hashes, and the token book cached for token_cache_s."""

from __future__ import annotations

import json
import time

from registry_cli import ModelRegistry
from registry_cli.core import tokens as tokens_module
from registry_cli.core.tokens import Tokens
from registry_cli.webui import sessions
from registry_cli.webui.sessions import SessionBook


class ObjectStore:
    """A store that is not a folder (as S3 is not): every call goes to ``inner``."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_session_opened_on_one_book_is_honoured_by_another_on_the_same_root(tmp_path):
    reg = ModelRegistry(tmp_path / "registry")
    reg.init()
    a, b = SessionBook(reg.store, cache_s=0), SessionBook(reg.store, cache_s=0)
    sid = a.open("tok", ("promote",), "f" * 64)
    on_b = b.get(sid)
    assert on_b is not None and on_b.token_name == "tok" and on_b.scopes == ("promote",)
    assert on_b.csrf == a.get(sid).csrf and on_b.csrf_ok(a.get(sid).csrf)

    stored = list((tmp_path / "registry" / ".regctl" / "sessions").iterdir())
    assert len(stored) == 1 and sid not in stored[0].name
    text = stored[0].read_text()
    assert sid not in text and on_b.csrf not in text
    assert json.loads(text)["format_version"] == 1
    assert stored[0].stat().st_mode & 0o077 == 0  # owner only

    a.get(sid).tell("promoted v3")
    assert b.get(sid).take_notice() == "promoted v3"
    assert a.get(sid).take_notice() is None  # once, whichever replica shows it

    b.close(sid)
    assert a.get(sid) is None and b.get(sid) is None
    assert b.get("not-a-session") is None


def test_a_cached_session_is_read_again_after_cache_s(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "registry")
    reg.init()
    a, b = SessionBook(reg.store, cache_s=5), SessionBook(reg.store, cache_s=5)
    sid = a.open("tok", ("read",), "f" * 64)
    assert b.get(sid) is not None
    a.close(sid)
    now = time.monotonic()
    monkeypatch.setattr(sessions.time, "monotonic", lambda: now + 1)
    assert b.get(sid) is not None  # still trusted from B's cache
    monkeypatch.setattr(sessions.time, "monotonic", lambda: now + 6)
    assert b.get(sid) is None  # read again: gone


def test_a_stored_session_expires_by_the_wall_clock(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "registry")
    reg.init()
    book = SessionBook(reg.store, cache_s=0)
    sid = book.open("tok", ("read",), "f" * 64)
    later = time.time() + sessions.MAX_AGE_S + 1
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    assert SessionBook(reg.store, cache_s=0).get(sid) is None
    assert not list((tmp_path / "registry" / ".regctl" / "sessions").iterdir())


def test_a_cached_token_book_honours_a_revoke_within_cache_s(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "registry")
    reg.init()
    admin = Tokens(reg.store, reg.states, "admin")
    secret = admin.create("ci", ["read"]).secret
    server = Tokens(ObjectStore(reg.store), reg.states, "server", cache_s=5)
    assert server.authenticate(secret).name == "ci"
    admin.revoke("ci")
    now = time.monotonic()
    monkeypatch.setattr(tokens_module.time, "monotonic", lambda: now + 1)
    assert server.authenticate(secret) is not None  # within token_cache_s: the cache
    monkeypatch.setattr(tokens_module.time, "monotonic", lambda: now + 6)
    assert server.authenticate(secret) is None  # past it: refused

    fresh = admin.create("new", ["read"]).secret  # a new token works without waiting
    monkeypatch.setattr(tokens_module.time, "monotonic", lambda: now + 7.5)
    assert server.authenticate(fresh).name == "new"


def test_on_a_folder_a_revoke_holds_from_the_next_request(tmp_path):
    reg = ModelRegistry(tmp_path / "registry")
    reg.init()
    admin = Tokens(reg.store, reg.states, "admin")
    secret = admin.create("ci", ["read"]).secret
    server = Tokens(reg.store, reg.states, "server", cache_s=60)
    assert server.authenticate(secret) is not None
    admin.revoke("ci")
    assert server.authenticate(secret) is None
