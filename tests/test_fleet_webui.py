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
from registry_cli.errors import NotFound, RegctlError, RuleViolation
from registry_cli.server.errors import status_of
from tests.test_webui_security import SAME, build_app, problem_text


@pytest.fixture
def site(tmp_path, model_file):
    from fastapi.testclient import TestClient

    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.init()
    for _ in range(2):
        reg.publish("plant/demo", [model_file])
        reg.promote("plant/demo")
    reg.rollback("plant/demo")
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"ui-{s}", [s]).secret for s in ("read", "promote")}
    with TestClient(build_app(root), follow_redirects=False) as client:
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


def snapshot(reg) -> tuple[bytes, dict, object]:
    """Everything a rollout control could change: the audit, the model's state, the rollout."""
    audit = (reg.root / "audit.jsonl").read_bytes()
    return audit, reg.model_state("plant/demo").to_doc(), Rollouts(reg).load("plant/demo")[0]


def rollout_audit(reg) -> list[dict]:
    return [e for e in reg.audit("plant/demo").entries if e["action"].startswith("rollout")]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver.evil.example"},
    ],
)
def test_a_cross_site_post_to_a_rollout_control_is_refused_and_changes_nothing(site, headers):
    reg = site.reg
    Rollouts(reg).start("plant/demo", "v2", ["canary", "all"], soak_s=0)
    sign_in(site, "promote")  # a live session, and below its right CSRF token
    csrf = csrf_of(site.get(PAGE + "/act/abort").text)
    before, audited = snapshot(reg), len(rollout_audit(reg))
    for action, form in (
        ("abort", {}),
        ("step", {}),
        ("pause", {}),
        ("start", {"version": "v1", "rings": "canary", "soak": "0"}),
    ):
        reply = site.post(f"{PAGE}/act/{action}", data={**form, "csrf": csrf}, headers=headers)
        assert reply.status_code == 403, action
        assert "Nothing was changed" in reply.text and "this site" in reply.text
    assert snapshot(reg) == before
    assert len(rollout_audit(reg)) == audited  # no audit line
    # the same post from this site acts: the refusal was the cross-site check
    reply = site.post(PAGE + "/act/abort", data={"csrf": csrf}, headers=SAME)
    assert reply.status_code == 303 and Rollouts(reg).load("plant/demo")[0]["state"] == "aborted"


def test_a_read_token_sees_no_rollout_controls_and_its_forged_posts_are_refused(site):
    reg = site.reg
    Rollouts(reg).start("plant/demo", "v2", ["canary", "all"], soak_s=0)
    sign_in(site, "read")
    page = site.get(PAGE)
    assert page.status_code == 200 and "<strong>current</strong>" in page.text
    assert "/act/" not in page.text and not re.search(r'class="[^"]*\bactions\b', page.text)
    for label in ("Start a rollout…", "Step…", "Pause…", "Abort…"):
        assert label not in page.text
    own_csrf = csrf_of(page.text)  # the sign-out form's: a valid token of this session
    for action in ("step", "abort"):
        assert site.get(f"{PAGE}/act/{action}").status_code == 403
    before, audited = snapshot(reg), len(rollout_audit(reg))
    for action in ("abort", "step", "pause", "start"):
        for form in ({}, {"csrf": "forged"}, {"csrf": own_csrf}):
            reply = site.post(f"{PAGE}/act/{action}", data=form, headers=SAME)
            assert reply.status_code == 403, (action, form)
            assert "Nothing was changed" in reply.text
    reply = site.post(PAGE + "/act/abort", data={"csrf": own_csrf}, headers=SAME)
    assert "may not promote" in reply.text and "ui-read" in reply.text
    site.cookies.clear()  # and no session at all
    assert site.post(PAGE + "/act/abort", data={"csrf": own_csrf}).status_code == 403
    assert snapshot(reg) == before
    assert len(rollout_audit(reg)) == audited


def core_error(call) -> RegctlError:
    """What the CLI would print for the same call to the core."""
    with pytest.raises(RegctlError) as caught:
        call()
    return caught.value


def test_stepping_without_a_rollout_shows_the_clis_message_and_hint_on_the_form(site):
    reg = site.reg
    expected = core_error(lambda: Rollouts(reg).step("plant/demo"))
    assert isinstance(expected, NotFound) and expected.hint
    sign_in(site, "promote")
    csrf = csrf_of(site.get(PAGE + "/act/step").text)
    before = snapshot(reg)
    reply = site.post(PAGE + "/act/step", data={"csrf": csrf}, headers=SAME)
    assert reply.status_code == status_of(expected) == 404
    shown = problem_text(reply.text)
    assert f"error: {expected.message}" in shown and f"hint: {expected.hint}" in shown
    assert "Nothing was changed" in shown
    assert f'action="{PAGE}/act/step"' in reply.text  # the confirmation again
    assert csrf_of(reply.text.split(f'action="{PAGE}/act/step"')[1]) == csrf
    assert snapshot(reg) == before and not rollout_audit(reg)


def test_a_refused_rule_is_409_and_a_refused_start_keeps_its_values(site):
    reg = site.reg
    Rollouts(reg).start("plant/demo", "v2", ["canary", "all"], soak_s=0)
    before = snapshot(reg)
    expected = core_error(lambda: Rollouts(reg).start("plant/demo", "v2", ["canary"]))
    assert isinstance(expected, RuleViolation) and expected.hint  # one is running
    sign_in(site, "promote")
    csrf = csrf_of(site.get(PAGE).text)
    start = {"version": "v2", "rings": "canary", "csrf": csrf}
    reply = site.post(PAGE + "/act/start", data=start, headers=SAME)
    assert reply.status_code == 409
    shown = problem_text(reply.text)
    assert f"error: {expected.message}" in shown and f"hint: {expected.hint}" in shown
    assert f'action="{PAGE}/act/start"' in reply.text and 'value="canary"' in reply.text
    form = {"version": "v2", "rings": "north,south", "soak": "never", "csrf": csrf}
    reply = site.post(PAGE + "/act/start", data=form, headers=SAME)
    assert reply.status_code == 400 and "error:" in problem_text(reply.text)
    assert 'value="north,south"' in reply.text and 'value="never"' in reply.text
    assert snapshot(reg) == before


def test_an_unknown_model_is_the_error_page_with_404(site):
    expected = core_error(lambda: Fleet(site.reg).status("plant/nope"))
    assert isinstance(expected, NotFound)
    sign_in(site, "promote")
    csrf = csrf_of(site.get(PAGE).text)
    for reply in (
        site.get("/models/plant/nope/-/fleet"),
        site.get("/models/plant/nope/-/fleet/act/step"),
        site.post("/models/plant/nope/-/fleet/act/step", data={"csrf": csrf}, headers=SAME),
    ):
        assert reply.status_code == 404
        assert "<h1>Something is not right</h1>" in reply.text
        shown = problem_text(reply.text)
        assert f"error: {expected.message}" in shown
        if expected.hint:
            assert f"hint: {expected.hint}" in shown
    assert "Nothing was changed" in shown  # the last one was a POST
    assert site.get(PAGE + "?stale=soon").status_code == 400


def test_signed_out_the_page_and_its_controls_lead_to_sign_in(site):
    for path in (PAGE, PAGE + "/act/start"):
        reply = site.get(path)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/sign-in?next=")
    assert site.get(PAGE + "/act/launch").status_code == 403  # no such control
