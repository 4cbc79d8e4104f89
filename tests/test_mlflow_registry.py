"""MLflow's registry API on serve-registry: the pure mappings, and every route in-process
(FastAPI's test client on the real app) with its error cases. The real MLflow client
against a real server is tests/test_mlflow_registry_clients.py."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from registry_cli import ModelRegistry
from registry_cli.core.state import ModelState
from registry_cli.core.tokens import Tokens
from registry_cli.core.versionset import VersionSet
from registry_cli.errors import BadInput, IntegrityError, NotFound, RuleViolation
from registry_cli.server import mlflow_aliases, mlflow_artifacts, mlflow_filters
from registry_cli.server import mlflow_docs as docs
from registry_cli.server.mlflow_register import client_tags, kind_of

API = "/api/2.0/mlflow"
STAGES = ("dev", "release")


# ----------------------------------------------------------------- pure mappings
@pytest.mark.parametrize(
    "status,in_stages,stages,want",
    [
        ("active", ["dev"], STAGES, "Staging"),
        ("active", ["dev", "release"], STAGES, "Production"),
        ("archived", ["dev", "release"], STAGES, "Archived"),
        ("active", ["dev", "staging"], ("dev", "staging", "prod"), "None"),
        ("active", ["dev"], ("dev",), "Staging"),
    ],
)
def test_current_stage(status, in_stages, stages, want):
    assert docs.current_stage(status, in_stages, stages) == want


def test_model_version_document():
    doc = {
        "name": "a/b",
        "version": "v3",
        "status": "active",
        "stages": ["dev"],
        "aliases": ["candidate"],
        "tags": {"k": "v"},
        "description": None,
        "created_at": "2026-01-02T03:04:05Z",
        "created_by": "ci",
        "source": {"type": "mlflow", "uri": "runs:/r1/model", "run_id": "r1"},
    }
    mv = docs.model_version(doc, STAGES)
    assert mv["version"] == "3" and mv["source"] == "runs:/r1/model" and mv["run_id"] == "r1"
    assert mv["creation_timestamp"] == 1767323045000 and mv["status"] == "READY"
    assert mv["tags"] == [{"key": "k", "value": "v"}] and mv["current_stage"] == "Staging"
    doc["source"] = {"type": "local", "paths": ["x"]}
    assert docs.model_version(doc, STAGES)["source"] == "models:/a/b/3"


def test_errors_map_to_mlflow_codes():
    assert docs.error_of(NotFound("no x"))[0] == 404
    assert docs.error_of(NotFound("no x"))[1]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, doc = docs.error_of(RuleViolation("gate", hint="fix it"))
    assert (status, doc) == (400, {"error_code": "INVALID_STATE", "message": "gate (hint: fix it)"})
    assert docs.error_of(BadInput("bad"))[1]["error_code"] == "INVALID_PARAMETER_VALUE"


def test_pages_and_stage_names():
    items = list(range(5))
    first, token = docs.page(items, 2, None)
    second, token2 = docs.page(items, 2, token)
    last, token3 = docs.page(items, 2, token2)
    assert (first, second, last, token3) == ([0, 1], [2, 3], [4], None)
    with pytest.raises(BadInput):
        docs.page(items, 2, "!!")
    assert docs.canonical_stage("production") == "Production"
    with pytest.raises(BadInput, match="invalid model version stage"):
        docs.canonical_stage("Prod")


def test_filters():
    clauses = mlflow_filters.parse_filter("name LIKE 'team/%' AND tags.`my key` = 'a AND b'")
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("name", "LIKE", "team/%"),
        ("tags.my key", "=", "a AND b"),
    ]
    doc = {"name": "team/x", "tags": [{"key": "my key", "value": "a AND b"}]}
    assert mlflow_filters.matches(clauses, doc)
    assert not mlflow_filters.matches(clauses, {**doc, "name": "other/x"})
    assert mlflow_filters.exact_name(mlflow_filters.parse_filter('name = "m1"')) == "m1"
    assert mlflow_filters.parse_filter("run_id = 'abc'")[0].matches({"run_id": "abc"})
    prompts = mlflow_filters.parse_filter("tag.`mlflow.prompt.is_prompt` != 'true'")
    assert mlflow_filters.matches(prompts, {"tags": []})
    assert not mlflow_filters.matches(
        prompts, {"tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}
    )
    for bad in ("version_number > 3", "name = x", "run_id LIKE 'a%'", "tags.k > 'v'"):
        with pytest.raises(BadInput, match="unsupported filter"):
            mlflow_filters.parse_filter(bad)
    with pytest.raises(BadInput, match="run_id is not searchable"):
        mlflow_filters.parse_filter("run_id = 'a'", ("name", "tags"))


def test_order():
    items = [{"name": "b", "version": "1"}, {"name": "a", "version": "2"}]
    keys = ("name", "version_number")
    assert [d["name"] for d in mlflow_filters.order(items, [], ["name ASC"], keys)] == ["a", "b"]
    got = mlflow_filters.order(items, ["version_number DESC"], [], keys)
    assert [d["version"] for d in got] == ["2", "1"]
    with pytest.raises(BadInput, match="invalid order_by"):
        mlflow_filters.order(items, ["size DESC"], [], keys)


def _state() -> ModelState:
    state = ModelState("m", next_version=4, versions=VersionSet.parse("1-3"))
    state.stages["release"] = VersionSet.parse("1-2")
    state.aliases = {"champion": 2, "candidate": 3}
    state.history = [1]
    return state


def test_alias_decisions():
    s = _state()
    assert mlflow_aliases.on_set_alias(s, STAGES, "champion", 2) == "noop"
    assert mlflow_aliases.on_set_alias(s, STAGES, "champion", 1) == "rollback"
    assert mlflow_aliases.on_set_alias(s, STAGES, "champion", 3) == "promote"
    assert mlflow_aliases.on_set_alias(s, STAGES, "candidate", 3) == "noop"
    assert mlflow_aliases.on_set_alias(s, STAGES, "rollback", 2) == "noop"  # will be
    assert mlflow_aliases.on_set_alias(s, STAGES, "rollback", 1) == "noop"
    assert mlflow_aliases.on_set_alias(s, STAGES, "canary", 1) == "set"
    with pytest.raises(RuleViolation, match="'candidate' is set by publishing"):
        mlflow_aliases.on_set_alias(s, STAGES, "candidate", 1)
    with pytest.raises(RuleViolation, match="previous champion") as refused:
        mlflow_aliases.on_set_alias(s, STAGES, "rollback", 3)
    assert "regctl rollback m --to" in (refused.value.hint or "")
    with pytest.raises(NotFound):
        mlflow_aliases.on_set_alias(s, STAGES, "champion", 9)
    assert mlflow_aliases.on_delete_alias(s, "canary") == "noop"
    with pytest.raises(RuleViolation, match="reserved"):
        mlflow_aliases.on_delete_alias(s, "champion")
    assert mlflow_aliases.on_transition(s, "Production", "Staging", 3) == "promote"
    assert mlflow_aliases.on_transition(s, "Archived", "Staging", 3) == "archive"
    assert mlflow_aliases.on_transition(s, "Staging", "Staging", 3) == "noop"
    with pytest.raises(RuleViolation, match="forward only"):
        mlflow_aliases.on_transition(s, "Staging", "Production", 2)


def test_artifact_paths_listing_and_ranges():
    files = [{"path": "payload/model/MLmodel", "size": 3}, {"path": "payload/model/d/x", "size": 5}]
    assert mlflow_artifacts.model_folder([f["path"] for f in files]) == "model"
    assert mlflow_artifacts.model_folder(["payload/a.pt"]) == ""
    assert mlflow_artifacts.parse_path("models/a/b/-/v3/model/d") == ("a/b", 3, "model/d")
    with pytest.raises(NotFound):
        mlflow_artifacts.parse_path("models/a/v3")
    assert mlflow_artifacts.listing(files, "model") == [
        {"path": "MLmodel", "is_dir": False, "file_size": 3},
        {"path": "d", "is_dir": True},
    ]
    assert mlflow_artifacts.listing(files, "model/MLmodel") == []
    assert mlflow_artifacts.byte_range("bytes=2-", 10) == (2, 10)
    assert mlflow_artifacts.byte_range("bytes=-3", 10) == (7, 10)
    assert mlflow_artifacts.byte_range("bytes=0-99", 10) == (0, 10)
    assert mlflow_artifacts.byte_range(None, 10) is None


def test_verified_stream_holds_back_the_last_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow_artifacts, "CHUNK", 4)
    f = tmp_path / "f"
    f.write_bytes(b"0123456789")
    sha = hashlib.sha256(b"0123456789").hexdigest()
    assert b"".join(mlflow_artifacts.verified(f, sha, 10, 0, 10)) == b"0123456789"
    assert b"".join(mlflow_artifacts.verified(f, sha, 10, 3, 6)) == b"345"
    sent = []
    with pytest.raises(IntegrityError):
        for piece in mlflow_artifacts.verified(f, "0" * 64, 10, 0, 10):
            sent.append(piece)
    assert b"".join(sent) == b"01234567"  # never the whole (wrong) file


def test_sources_and_tags():
    assert kind_of("runs:/abc/model") == "registered"
    assert kind_of("models:/m/3") == "registered" and kind_of("models:/m@champion") == "registered"
    assert kind_of("models:/m-0123abcd") == "logged"
    assert kind_of("mlflow-artifacts:/1/abc/artifacts/model") == "uri"
    for local in ("/etc/passwd", "file:///etc", "C:/x", "relative/dir"):
        with pytest.raises(BadInput, match="path on this machine"):
            kind_of(local)
    assert client_tags([{"key": "a", "value": "1"}]) == {"a": "1"}
    with pytest.raises(BadInput):
        client_tags({"a": 1})


# ----------------------------------------------------------------- routes, in-process
@pytest.fixture
def api(tmp_path):
    from registry_cli.httpapp import create_app
    from registry_cli.server.context import ServerContext

    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    (root / "registry.yaml").write_text("gates:\n  release:\n    metrics: {accuracy: '>= 0.9'}\n")
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "publish", "promote")}
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "data.bin").write_bytes(bytes(range(256)) * 40)
    reg = ModelRegistry(root)
    reg.publish("team/m", [model], metrics={"accuracy": 0.95}, tags={"k": "v"})
    reg.publish("team/m", [model], metrics={"accuracy": 0.5})
    ctx = ServerContext(root, reg.config, auth_delay_s=0)
    client = TestClient(create_app(ctx))

    def call(method, path, scope="read", **kw):
        headers = {"Authorization": f"Bearer {tokens[scope]}"} if scope else {}
        return client.request(method, f"{API}/{path}", headers=headers, **kw)

    call.client, call.reg, call.tokens = client, reg, tokens  # type: ignore[attr-defined]
    return call


def _code(resp) -> tuple[int, str]:
    return resp.status_code, resp.json().get("error_code", "")


def test_reads(api):
    r = api("GET", "registered-models/get", params={"name": "team/m"})
    assert r.status_code == 200
    doc = r.json()["registered_model"]
    assert doc["aliases"] == [{"alias": "candidate", "version": "2"}]
    assert [v["version"] for v in doc["latest_versions"]] == ["2"]
    assert _code(api("GET", "registered-models/get", params={"name": "nope"})) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert _code(api("GET", "registered-models/get")) == (400, "INVALID_PARAMETER_VALUE")
    r = api("GET", "model-versions/get", params={"name": "team/m", "version": "1"})
    assert r.json()["model_version"]["tags"] == [{"key": "k", "value": "v"}]
    assert (
        _code(api("GET", "model-versions/get", params={"name": "team/m", "version": "x"}))[1]
        == "INVALID_PARAMETER_VALUE"
    )
    assert (
        _code(api("GET", "model-versions/get", params={"name": "team/m", "version": "9"}))[0] == 404
    )
    r = api("GET", "registered-models/alias", params={"name": "team/m", "alias": "candidate"})
    assert r.json()["model_version"]["version"] == "2"
    r = api("GET", "registered-models/alias", params={"name": "team/m", "alias": "latest"})
    assert r.json()["model_version"]["version"] == "2"
    assert (
        _code(api("GET", "registered-models/alias", params={"name": "team/m", "alias": "no"}))[0]
        == 404
    )
    for method in ("POST", "GET"):
        r = api(
            method,
            "registered-models/get-latest-versions",
            params={"name": "team/m"},
            json={"name": "team/m", "stages": ["Staging"]},
        )
        assert [v["version"] for v in r.json()["model_versions"]] == ["2"]
    r = api(
        "GET", "registered-models/get-latest-versions", params={"name": "team/m", "stages": "Bogus"}
    )
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE")


def test_searches(api):
    r = api("GET", "registered-models/search", params={"filter": "name LIKE 'team/%'"})
    assert [m["name"] for m in r.json()["registered_models"]] == ["team/m"]
    r = api("GET", "registered-models/search", params={"filter": "name = 'other'"})
    assert r.json() == {"registered_models": []}
    r = api("GET", "model-versions/search", params={"filter": "name='team/m'", "max_results": 1})
    assert [v["version"] for v in r.json()["model_versions"]] == ["2"]
    token = r.json()["next_page_token"]
    r = api("GET", "model-versions/search", params={"filter": "name='team/m'", "page_token": token})
    assert [v["version"] for v in r.json()["model_versions"]] == ["1"]
    r = api("GET", "model-versions/search", params={"filter": "tags.k = 'v'"})
    assert [v["version"] for v in r.json()["model_versions"]] == ["1"]
    r = api("GET", "model-versions/search", params={"filter": "run_id = 'none'"})
    assert r.json()["model_versions"] == []
    r = api("GET", "model-versions/search", params={"filter": "version_number > 1"})
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE") and "version_number > 1" in r.text
    r = api("GET", "registered-models/search", params={"filter": "run_id = 'x'"})
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE")


def test_auth(api):
    r = api("GET", "registered-models/get", scope=None, params={"name": "team/m"})
    assert _code(r) == (401, "UNAUTHENTICATED") and "Bearer" in r.headers["www-authenticate"]
    r = api.client.get(
        f"{API}/registered-models/get",
        params={"name": "team/m"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert _code(r) == (401, "UNAUTHENTICATED")
    body = {"name": "team/m", "alias": "canary", "version": "1"}
    assert _code(api("POST", "registered-models/alias", json=body)) == (403, "PERMISSION_DENIED")
    assert _code(api("POST", "registered-models/alias", "publish", json=body))[0] == 403
    tag = {"name": "team/m", "version": "1", "key": "a", "value": "b"}
    assert _code(api("POST", "model-versions/set-tag", json=tag)) == (403, "PERMISSION_DENIED")
    assert api("POST", "model-versions/set-tag", "publish", json=tag).json() == {}
    r = api("POST", "registered-models/create", "read", json={"name": "new"})
    assert _code(r) == (403, "PERMISSION_DENIED")


def test_aliases_and_stages_follow_regctl_rules(api):
    reg = api.reg
    alias = "registered-models/alias"
    # v2 fails the gate: INVALID_STATE with regctl's message and hint
    r = api("POST", alias, "promote", json={"name": "team/m", "alias": "champion", "version": "2"})
    assert _code(r) == (400, "INVALID_STATE")
    assert "v2 fails the gate for 'release': accuracy" in r.json()["message"]
    assert "--force --reason" in r.json()["message"]
    ok = {"name": "team/m", "alias": "champion", "version": "1"}
    assert api("POST", alias, "promote", json=ok).json() == {}
    assert reg.model_state("team/m").aliases["champion"] == 1
    again = {**ok, "version": 1}  # a number, as hand-written clients send it
    assert api("POST", alias, "promote", json=again).json() == {}  # nothing changes
    r = api("POST", alias, "promote", json={"name": "team/m", "alias": "candidate", "version": "1"})
    assert _code(r) == (400, "INVALID_STATE") and "regctl publish" in r.json()["message"]
    assert (
        api(
            "POST", alias, "promote", json={"name": "team/m", "alias": "canary", "version": "2"}
        ).json()
        == {}
    )
    assert reg.model_state("team/m").aliases["canary"] == 2
    r = api("POST", alias, "promote", json={"name": "team/m", "alias": "bad alias", "version": "2"})
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE")
    assert api("DELETE", alias, "promote", json={"name": "team/m", "alias": "canary"}).json() == {}
    assert api("DELETE", alias, "promote", json={"name": "team/m", "alias": "canary"}).json() == {}
    r = api("DELETE", alias, "promote", json={"name": "team/m", "alias": "champion"})
    assert _code(r) == (400, "INVALID_STATE")
    r = api("POST", alias, "promote", json={"name": "nope", "alias": "champion", "version": "1"})
    assert _code(r)[0] == 404
    entries = reg.audit("team/m").entries
    assert [e["action"] for e in entries][-3:] == ["promote", "alias-set", "alias-rm"]
    assert {e["actor"] for e in entries[-3:]} == {"tok-promote"}

    ts = "model-versions/transition-stage"
    r = api("POST", ts, "promote", json={"name": "team/m", "version": "2", "stage": "Production"})
    assert _code(r) == (400, "INVALID_STATE") and "fails the gate" in r.json()["message"]
    r = api("POST", ts, "promote", json={"name": "team/m", "version": "2", "stage": "Archived"})
    assert r.json()["model_version"]["current_stage"] == "Archived"
    r = api("POST", ts, "promote", json={"name": "team/m", "version": "1", "stage": "Archived"})
    assert _code(r) == (400, "INVALID_STATE") and "champion" in r.json()["message"]
    r = api("POST", ts, "promote", json={"name": "team/m", "version": "1", "stage": "Staging"})
    assert _code(r) == (400, "INVALID_STATE")
    r = api(
        "POST",
        ts,
        "promote",
        json={
            "name": "team/m",
            "version": "1",
            "stage": "Production",
            "archive_existing_versions": True,
        },
    )
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api("POST", ts, "read", json={"name": "team/m", "version": "1", "stage": "Production"})
    assert _code(r) == (403, "PERMISSION_DENIED")


def test_tags_updates_and_refusals(api):
    tag = {"name": "team/m", "version": "1", "key": "owner", "value": "ml"}
    assert api("POST", "model-versions/set-tag", "publish", json=tag).json() == {}
    assert api.reg.get("team/m:v1").tags["owner"] == "ml"
    gone = {"name": "team/m", "version": "1", "key": "owner"}
    assert api("DELETE", "model-versions/delete-tag", "publish", json=gone).json() == {}
    assert api("DELETE", "model-versions/delete-tag", "publish", json=gone).json() == {}
    assert "owner" not in api.reg.get("team/m:v1").tags
    bad = {**tag, "key": "bad key!"}
    assert (
        _code(api("POST", "model-versions/set-tag", "publish", json=bad))[1]
        == "INVALID_PARAMETER_VALUE"
    )
    r = api(
        "POST",
        "registered-models/set-tag",
        "publish",
        json={"name": "team/m", "key": "a", "value": "b"},
    )
    assert _code(r) == (400, "INVALID_STATE")
    r = api(
        "DELETE", "registered-models/delete-tag", "publish", json={"name": "team/m", "key": "a"}
    )
    assert r.json() == {}
    r = api(
        "PATCH",
        "model-versions/update",
        "publish",
        json={"name": "team/m", "version": "1", "description": "new"},
    )
    assert _code(r) == (400, "INVALID_STATE")
    r = api("PATCH", "registered-models/update", "publish", json={"name": "team/m"})
    assert r.json()["registered_model"]["name"] == "team/m"
    for method, path in (
        ("DELETE", "model-versions/delete"),
        ("DELETE", "registered-models/delete"),
        ("POST", "registered-models/rename"),
    ):
        r = api(method, path, "promote", json={"name": "team/m", "version": "1", "new_name": "x"})
        assert _code(r) == (400, "INVALID_STATE")
    r = api("POST", "registered-models/create", "publish", json={"name": "team/m"})
    assert _code(r) == (400, "RESOURCE_ALREADY_EXISTS")
    r = api("POST", "registered-models/create", "publish", json={"name": "fresh"})
    assert r.json()["registered_model"]["name"] == "fresh"
    r = api("POST", "registered-models/create", "publish", json={"name": "v3"})
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE")
    r = api(
        "POST", "model-versions/create", "publish", json={"name": "fresh", "source": "/etc/passwd"}
    )
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE") and "path on this machine" in r.text
    r = api(
        "POST",
        "model-versions/create",
        "publish",
        json={"name": "fresh", "source": "runs:/abc/model"},
    )
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE") and "tracking URI" in r.text
    r = api("POST", "registered-models/create", "publish", content=b"{not json")
    assert _code(r) == (400, "INVALID_PARAMETER_VALUE") and "not valid JSON" in r.text
    r = api("GET", "no/such/endpoint")
    assert _code(r) == (404, "ENDPOINT_NOT_FOUND")
    r = api.client.get(
        "/ajax-api/2.0/mlflow/registered-models/get",
        params={"name": "team/m"},
        headers={"Authorization": f"Bearer {api.tokens['read']}"},
    )
    assert r.status_code == 200


def test_downloads_list_range_and_integrity(api):
    r = api("GET", "model-versions/get-download-uri", params={"name": "team/m", "version": "1"})
    uri = r.json()["artifact_uri"]
    assert uri == "http://testserver/api/2.0/mlflow-artifacts/artifacts/models/team/m/-/v1/model"
    path = uri.split("/artifacts/", 1)[1]
    auth = {"Authorization": f"Bearer {api.tokens['read']}"}
    listed = api.client.get(
        "/api/2.0/mlflow-artifacts/artifacts", params={"path": path}, headers=auth
    ).json()
    assert listed == {
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": 12},
            {"path": "data.bin", "is_dir": False, "file_size": 10240},
        ]
    }
    url = f"/api/2.0/mlflow-artifacts/artifacts/{path}/data.bin"
    whole = api.client.get(url, headers=auth)
    assert whole.content == bytes(range(256)) * 40 and whole.headers["accept-ranges"] == "bytes"
    part = api.client.get(url, headers={**auth, "Range": "bytes=256-511"})
    assert part.status_code == 206 and part.content == bytes(range(256))
    assert api.client.get(url, headers={**auth, "Range": "bytes=99999-"}).status_code == 416
    assert api.client.get(url).json()["error_code"] == "UNAUTHENTICATED"
    missing = api.client.get(url.replace("data.bin", "nope.bin"), headers=auth)
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = api.client.get(url.replace("/model/data.bin", "/../../x"), headers=auth)
    assert r.status_code == 404
    # a payload file changed on disk: the response is cut before its end
    target = api.reg.get("team/m:v1").path / "payload" / "model" / "data.bin"
    target.chmod(0o644)
    target.write_bytes(b"\xff" * 10240)
    with pytest.raises(Exception):  # noqa: B017 - the stream breaks (the client sees a short body)
        api.client.get(url, headers=auth)


def test_the_mlflow_routes_stay_off_the_cli_start_up_path():
    import subprocess
    import sys

    probe = (
        "import sys, registry_cli.cli.main\nprint(sorted(m for m in sys.modules if 'mlflow' in m))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
