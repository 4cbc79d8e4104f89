"""The fleet page of the web UI (docs/fleet.md), in process: rings × versions with
device counts, failures and stragglers, the rollout's progress, and its controls for
``promote`` tokens only, behind a confirmation and a CSRF token."""

from __future__ import annotations

import re
import uuid

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.fleet import Fleet
from registry_cli.core.rollout import Rollouts
from registry_cli.core.tokens import Tokens


@pytest.fixture
def site(tmp_path, model_file):
    from fastapi.testclient import TestClient

    from registry_cli.core.config import Config
    from registry_cli.server.app import create_app
    from registry_cli.server.context import ServerContext

    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    for _ in range(2):
        reg.publish("plant/demo", [model_file])
        reg.promote("plant/demo")
    reg.rollback("plant/demo")
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"ui-{s}", [s]).secret for s in ("read", "promote")}
    ctx = ServerContext(root, Config(), auth_delay_s=0)
    with TestClient(create_app(ctx), follow_redirects=False) as client:
        client.reg, client.tokens = reg, tokens  # type: ignore[attr-defined]
        yield client


def sign_in(client, scope: str) -> None:
    client.cookies.clear()
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    reply = client.post("/sign-in", data={"csrf": csrf, "token": client.tokens[scope], "next": "/"})
    assert reply.status_code == 303, reply.text


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def report(reg, device: str, ring: str, version: str, state: str = "healthy") -> None:
    Fleet(reg).ingest(
        {
            "report_id": uuid.uuid4().hex,
            "device": device,
            "ring": ring,
            "model": "plant/demo",
            "version": version,
            "manifest_sha256": None,
            "state": state,
            "detail": "p99 too high" if state == "unhealthy" else None,
        }
    )


PAGE = "/models/plant/demo/-/fleet"


def test_the_page_shows_rings_versions_failures_and_progress(site):
    reg = site.reg
    Rollouts(reg).start("plant/demo", "v2", ["canary", "all"], soak_s=0)
    report(reg, "c1", "canary", "v2")
    report(reg, "c2", "canary", "v2", "unhealthy")
    report(reg, "p1", "plant", "v1")
    sign_in(site, "read")
    html = site.get(PAGE).text
    assert "<h1>Fleet: plant/demo</h1>" in html
    assert "3 device(s) reporting" in html
    assert re.search(r'<th scope="row" data-label="Ring">canary</th>', html)
    assert '<td data-label="v2">2</td>' in html and '<td data-label="v1">1</td>' in html
    assert "c2</strong> unhealthy on v2: p99 too high" in html
    assert "<strong>current</strong>" in html and "ring-canary" in html
    assert "/act/" not in html  # a read token sees no controls
    assert site.get(PAGE + "/act/step").status_code == 403
    model_html = site.get("/models/plant/demo").text
    assert 'href="/models/plant/demo/-/fleet"' in model_html
    assert site.get("/models/nope/-/fleet").status_code == 404


def test_controls_confirm_check_csrf_and_act(site):
    reg = site.reg
    sign_in(site, "promote")
    html = site.get(PAGE).text
    assert f'href="{PAGE}/act/start"' in html
    confirm = site.get(PAGE + "/act/start?version=v2")
    assert confirm.status_code == 200 and "Confirm: start a rollout" in confirm.text
    assert Rollouts(reg).load("plant/demo")[0] is None  # the confirmation wrote nothing
    form = {"version": "v2", "rings": "canary,all", "min_healthy": "1", "soak": "0",
            "min_devices": "1"}  # fmt: skip
    for bad in ({}, {"csrf": "wrong"}):
        reply = site.post(PAGE + "/act/start", data={**form, **bad})
        assert reply.status_code == 403
    assert Rollouts(reg).load("plant/demo")[0] is None
    reply = site.post(PAGE + "/act/start", data={**form, "csrf": csrf_of(confirm.text)})
    assert reply.status_code == 303 and reply.headers["location"] == PAGE
    assert reg.model_state("plant/demo").aliases["ring-canary"] == 2
    html = site.get(PAGE).text
    assert "rollout-start plant/demo:v2" in html  # the notice
    assert f'href="{PAGE}/act/abort"' in html
    step = site.get(PAGE + "/act/step")
    reply = site.post(PAGE + "/act/step", data={"csrf": csrf_of(step.text)})
    assert reply.status_code == 303
    assert "holding" in site.get(PAGE).text
    abort = site.get(PAGE + "/act/abort")
    site.post(PAGE + "/act/abort", data={"csrf": csrf_of(abort.text)})
    assert "ring-canary" not in reg.model_state("plant/demo").aliases
    entries = [e for e in reg.audit("plant/demo").entries if e["action"].startswith("rollout")]
    assert {e["actor"] for e in entries} == {"ui-promote"}


def test_a_refusal_shows_the_cli_message_and_changes_nothing(site):
    sign_in(site, "promote")
    confirm = site.get(PAGE + "/act/start")
    form = {"version": "v9", "rings": "canary", "csrf": csrf_of(confirm.text)}
    reply = site.post(PAGE + "/act/start", data=form)
    assert reply.status_code == 404
    assert "<strong>error:</strong> plant/demo has no version v9" in reply.text
    assert "<strong>hint:</strong> see the versions with: regctl versions plant/demo" in reply.text
    assert "Nothing was changed." in reply.text
    form = {"version": "v2", "rings": "canary", "min_healthy": "x", "csrf": form["csrf"]}
    assert site.post(PAGE + "/act/start", data=form).status_code == 400
    assert Rollouts(site.reg).load("plant/demo")[0] is None
    site.cookies.clear()
    assert site.post(PAGE + "/act/step", data={"csrf": "x"}).status_code == 403
