"""API tokens (docs/server.md): `regctl token create|list|revoke` and the token book of the core."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from registry_cli.core.tokens import KEY, Tokens, allows, secret_hash


def _book(reg, actor="admin-user") -> Tokens:
    return Tokens(reg.store, reg.states, actor)


def test_create_prints_the_secret_once_and_stores_only_its_hash(cli, root):
    assert cli("init").exit_code == 0
    res = cli("token", "create", "ci", "--scope", "publish", "--scope", "read", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"name", "token", "scopes", "expires_at"}
    assert doc["name"] == "ci" and doc["scopes"] == ["publish", "read"]
    assert doc["expires_at"] is None
    secret = doc["token"]
    stored = (root / KEY).read_text()
    assert secret not in stored
    assert secret_hash(secret) in stored
    # owner-only: the folder and the file
    assert stat.S_IMODE(os.stat(root / KEY).st_mode) == 0o600
    assert stat.S_IMODE(os.stat((root / KEY).parent).st_mode) == 0o700
    # audited, without the secret
    audit = (root / "audit.jsonl").read_text()
    assert secret not in audit
    entry = json.loads(audit.splitlines()[-1])
    assert entry["action"] == "token-create" and entry["details"]["token"] == "ci"


def test_human_create_prints_only_the_secret_on_stdout(cli):
    res = cli("token", "create", "deploy", "--scope", "promote")
    assert res.exit_code == 0
    assert res.stdout.strip().startswith("rgt_") and len(res.stdout.strip().splitlines()) == 1


def test_list_never_shows_a_secret(cli):
    secret = json.loads(cli("token", "create", "a", "--scope", "read", "--json").stdout)["token"]
    cli("token", "create", "b", "--scope", "admin", "--expires-days", "3", "--json")
    res = cli("token", "list", "--json")
    assert res.exit_code == 0
    docs = json.loads(res.stdout)
    assert [d["name"] for d in docs] == ["a", "b"]
    for d in docs:
        assert set(d) == {"name", "scopes", "created_at", "created_by", "expires_at"}
        assert d["created_by"] == "tester"
    assert docs[1]["expires_at"].endswith("Z")
    assert secret not in res.stdout
    human = cli("token", "list")
    assert "a  scopes=read" in human.stdout and secret not in human.stdout


def test_refusals_have_the_spec_exit_codes(cli):
    assert cli("token", "create", "ci", "--scope", "read").exit_code == 0
    dup = cli("token", "create", "ci", "--scope", "read")
    assert dup.exit_code == 4 and "exists" in dup.stderr
    assert cli("token", "revoke", "nobody").exit_code == 3
    bad_scope = cli("token", "create", "x", "--scope", "root")
    assert bad_scope.exit_code == 2 and "unknown scope" in bad_scope.stderr
    assert cli("token", "create", "a/b", "--scope", "read").exit_code == 2
    assert cli("token", "create", "x", "--scope", "read", "--expires-days", "0").exit_code == 2
    assert cli("token", "create", "x").exit_code == 2  # --scope is required


def test_revoke_removes_the_token_and_is_audited(cli, reg, root):
    secret = json.loads(cli("token", "create", "ci", "--scope", "read", "--json").stdout)["token"]
    book = _book(reg)
    assert book.authenticate(secret).name == "ci"
    res = cli("token", "revoke", "ci")
    assert res.exit_code == 0 and "revoked token ci" in res.stdout
    assert book.authenticate(secret) is None
    last = json.loads((root / "audit.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "token-revoke" and last["details"] == {"token": "ci"}


def test_authenticate_refuses_wrong_expired_and_empty_secrets(reg, root):
    book = _book(reg)
    new = book.create("ci", ["publish"], expires_days=1)
    assert book.authenticate(new.secret).scopes == ("publish",)
    assert book.authenticate(new.secret + "x") is None
    assert book.authenticate("") is None and book.authenticate(None) is None
    doc = json.loads((root / KEY).read_text())
    doc["tokens"][0]["expires_at"] = "2000-01-01T00:00:00Z"
    (root / KEY).write_text(json.dumps(doc))
    assert book.authenticate(new.secret) is None


def test_scopes_imply_read_and_admin_implies_all():
    assert allows(("publish",), "read") and allows(("publish",), "publish")
    assert not allows(("publish",), "promote") and not allows(("read",), "publish")
    assert allows(("promote",), "promote") and not allows(("promote",), "publish")
    assert all(allows(("admin",), s) for s in ("read", "publish", "promote", "admin"))
    assert not allows(("publish", "promote"), "admin")


def test_concurrent_creates_lose_no_token(reg):
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            _book(reg).create(f"t{i}", ["read"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(t.name for t in _book(reg).list_tokens()) == sorted(f"t{i}" for i in range(12))


def test_damaged_token_file_is_an_integrity_error(reg, root):
    from registry_cli.errors import IntegrityError

    _book(reg).create("ci", ["read"])
    (root / KEY).write_text("{not json")
    with pytest.raises(IntegrityError):
        _book(reg).list_tokens()
