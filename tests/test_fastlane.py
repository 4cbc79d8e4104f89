"""The fast lane of the version read (server/fastlane.py): a cached answer is sent
with the route's bytes and headers, only to a caller the route would let in, counted
under the route's template; everything else goes to the route."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry_cli import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.httpapp import create_app
from registry_cli.server.context import ServerContext
from registry_cli.server.readcache import ReadCache

URL = "/api/v1/models/m/a/-/versions/1"


def setup(tmp_path: Path, **options) -> tuple[ServerContext, dict[str, str]]:
    root = tmp_path / "root"
    reg = ModelRegistry(root, actor="t")
    reg.init()
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    reg.publish("m/a", [weights], metrics={"acc": 0.5})
    book = Tokens(reg.store, reg.states, "t")
    tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "report")}
    return ServerContext(root, reg.config, auth_delay_s=0.0, **options), tokens


class Counting(ReadCache):
    """A read cache that counts the route's calls (the lane never makes one)."""

    routed = 0

    async def version_json(self, *args, **kwargs):
        Counting.routed += 1
        return await super().version_json(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch):
    Counting.routed = 0
    monkeypatch.setattr("registry_cli.server.context.ReadCache", Counting)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_cached_read_is_the_routes_answer_and_counted_under_its_template(tmp_path, counted):
    ctx, tokens = setup(tmp_path)
    with TestClient(create_app(ctx)) as client:
        first = client.get(URL, headers=bearer(tokens["read"]))
        second = client.get(URL, headers=bearer(tokens["report"]))
        assert Counting.routed == 1  # the second came through the lane
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert first.headers == second.headers
        page = client.get("/metrics", headers=bearer(tokens["read"])).text
    line = (
        'regctl_http_requests_total{method="GET",'
        'route="/api/v1/models/{name:modelname}/-/versions/{version}",status="200"} 2.0'
    )
    assert line in page


def test_callers_the_route_refuses_and_other_requests_go_to_the_route(tmp_path, counted):
    ctx, tokens = setup(tmp_path)
    with TestClient(create_app(ctx)) as client:
        assert client.get(URL, headers=bearer(tokens["read"])).status_code == 200
        assert client.get(URL).status_code == 401  # no token
        assert client.get(URL, headers=bearer("rgt_wrong")).status_code == 401
        assert client.get(URL, headers={"Authorization": "Basic eDp5"}).status_code == 401
        assert client.get(URL + "?x=1", headers=bearer(tokens["read"])).status_code == 200
        assert Counting.routed == 2  # the first read and the one with a query
        reg = ModelRegistry(ctx.root, actor="t")
        Tokens(reg.store, reg.states, "t").revoke("tok-read")
        assert client.get(URL, headers=bearer(tokens["read"])).status_code == 401
        reg.tag("m/a", "v1", {"k": "v"}, [])  # a change: the cached answer is old
        changed = client.get(URL, headers=bearer(tokens["report"]))
        assert changed.json()["tags"] == {"k": "v"}
        assert Counting.routed == 3


def test_anonymous_reads_take_the_lane_only_when_the_server_allows_them(tmp_path, counted):
    ctx, tokens = setup(tmp_path, anonymous_read=True)
    with TestClient(create_app(ctx)) as client:
        assert client.get(URL).status_code == 200
        assert client.get(URL).status_code == 200
        assert Counting.routed == 1
        assert client.get(URL, headers=bearer("rgt_wrong")).status_code == 401
