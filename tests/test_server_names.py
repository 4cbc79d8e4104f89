"""An invalid model name in an API path is 400 bad_input with the CLI's message, not 404.

A real `regctl serve-registry` on a loopback port, talked to with http.client so the
path goes out byte for byte as written (no client normalises ``..`` or re-quotes).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import urllib.parse

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.names import NAME_RULE
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.conftest import regctl_cmd

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    root = tmp / "registry"
    reg = ModelRegistry(root)
    reg.init()
    token = Tokens(reg.store, reg.states, "setup").create("tok-admin", ["admin"]).secret
    weights = tmp / "w.bin"
    weights.write_bytes(b"weights")
    reg.publish("team/known", [weights])
    home = tmp / "home"
    home.mkdir()
    env = {"HOME": str(home), "REGCTL_ACTOR": "server-user", "NO_COLOR": "1"}
    proc = ServeRegistryProcess(root, log=tmp / "server.log", env=env)
    proc.start()
    yield proc, token, root
    assert proc.stop() == 0, proc.log


def call(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    proc, token, _root = server
    url = urllib.parse.urlsplit(proc.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def cli_error(root, name: str) -> str:
    """The ``error: ...`` line the CLI prints for ``regctl versions NAME``."""
    proc = subprocess.run(
        [*regctl_cmd("--root", str(root), "versions", name)], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    return proc.stderr.splitlines()[0].removeprefix("error: ")


# (as written in the path, the name the server sees, the rule it breaks)
INVALID = [
    ("my%20model", "my model", "bad segment"),
    ("team/v3", "team/v3", "looks like a version"),
    ("v3", "v3", "looks like a version"),
    ("team/..", "team/..", "bad segment '..'"),
    ("..", "..", "bad segment '..'"),
    ("a//b", "a//b", "bad segment ''"),
    ("-x", "-x", "bad segment '-x'"),
]

ROUTES = [
    ("GET", "/api/v1/models/{}/-/versions", None),
    ("GET", "/api/v1/models/{}/-/versions/v1", None),
    ("POST", "/api/v1/models/{}/-/promote", {}),
    ("POST", "/api/v1/models/{}/-/rollback", {}),
    ("PUT", "/api/v1/models/{}/-/aliases/canary", {"version": "v1"}),
]


@pytest.mark.parametrize(("written", "name", "rule"), INVALID)
@pytest.mark.parametrize(("method", "route", "body"), ROUTES)
def test_an_invalid_name_is_400_bad_input_naming_the_rule(
    server, method, route, body, written, name, rule
):
    status, doc = call(server, method, route.format(written), body)
    assert status == 400, doc
    assert doc["error"]["code"] == "bad_input"
    assert rule in doc["error"]["message"]
    assert repr(name) in doc["error"]["message"]
    assert doc["error"]["hint"] == NAME_RULE  # the naming rule, as the CLI hints


def test_the_message_is_the_one_the_cli_gives(server):
    _proc, _token, root = server
    for written, name, _rule in INVALID[:3]:
        status, doc = call(server, "GET", f"/api/v1/models/{written}/-/versions", None)
        assert status == 400
        assert doc["error"]["message"] == cli_error(root, name)


def test_a_valid_name_of_no_model_stays_404_not_found(server):
    for method, route, body in ROUTES[:3]:
        status, doc = call(server, method, route.format("team/unknown"), body)
        assert status == 404, doc
        assert doc["error"]["code"] == "not_found"
        assert "team/unknown" in doc["error"]["message"]


def test_a_known_name_still_answers(server):
    status, doc = call(server, "GET", "/api/v1/models/team/known/-/versions", None)
    assert status == 200, doc
    status, doc = call(server, "GET", "/api/v1/models/team/known/-/versions/v1", None)
    assert status == 200, doc


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v1/models/team/known/-/nothing-here",
        "/api/v1/models/team/known/versions",  # no /-/ separator
        "/api/v1/models/my%20model/-/nothing-here",
    ],
)
def test_an_unknown_route_stays_404(server, path):
    status, doc = call(server, "GET", path, None)
    assert status == 404, doc
    assert doc["error"]["code"] == "not_found"
    assert doc["error"]["message"] == "no such route"
