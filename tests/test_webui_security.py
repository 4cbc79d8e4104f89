"""The web UI's security, in-process: Starlette's TestClient against the real app.

No browser is needed for what these check (headers, cookies, statuses, escaped
HTML, what changed on disk); what a person sees stays in tests/test_webui.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from registry_cli import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.errors import RuleViolation

PPE = "vision/plant-a/ppe"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
CONFIG = """\
stages: [dev, release]
gates:
  release:
    metrics:
      accuracy: ">= 0.75"
"""
SAME = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}


def build_app(root: Path, *, anonymous_read: bool = False) -> FastAPI:
    """The whole HTTP app of one registry (API, files and UI), as serve-registry builds it."""
    from registry_cli.httpapp import create_app
    from registry_cli.server.context import ServerContext

    config = ModelRegistry(root).config
    return create_app(ServerContext(root, config, anonymous_read=anonymous_read))


@dataclass
class Site:
    root: Path
    tokens: dict[str, str]

    def reg(self) -> ModelRegistry:
        return ModelRegistry(self.root, actor="alice")

    def client(self, **kw) -> TestClient:
        return TestClient(build_app(self.root), follow_redirects=False, **kw)

    def snapshot(self) -> tuple[bytes, dict]:
        return (self.root / "audit.jsonl").read_bytes(), self.reg().model_state(PPE).to_doc()


def make_root(tmp: Path) -> Site:
    root = tmp / "registry"
    ModelRegistry(root, actor="alice").init()
    (root / "registry.yaml").write_text(CONFIG)
    reg = ModelRegistry(root, actor="alice")
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "publish", "promote")}
    weights = tmp / "model.pt"
    weights.write_bytes(b"not really weights " * 64)
    for i in range(7):
        reg.publish(PPE, [weights], metrics={"accuracy": round(0.70 + 0.03 * i, 2)})
        if i in (2, 4):
            reg.promote(PPE, reason=f"round {i}")
    reg.publish("xss/model", [weights], description=XSS, tags={"note": XSS})
    return Site(root, tokens)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_root(tmp_path_factory.mktemp("webui-sec"))


@pytest.fixture
def client(site) -> Iterator[TestClient]:
    with site.client() as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(client: TestClient, secret: str) -> str:
    """Sign in as a browser would; returns the session's CSRF token."""
    form = client.get("/sign-in")
    reply = client.post(
        "/sign-in", data={"token": secret, "csrf": csrf_of(form.text), "next": "/"}, headers=SAME
    )
    assert reply.status_code == 303, reply.text
    return csrf_of(client.get("/").text)


def problem_text(page: str) -> str:
    found = re.search(r'<div class="problem" role="alert">(.*?)</div>', page, re.S)
    assert found, page
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


# ----------------------------------------------------------------- CSRF
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
    ],
)
def test_a_cross_site_post_is_refused_and_changes_nothing(site, client, headers):
    csrf = sign_in(client, site.tokens["promote"])  # a live session and its right token
    before = site.snapshot()
    reply = client.post(
        f"/models/{PPE}/-/act/alias-set",
        data={"csrf": csrf, "alias": "canary", "version": "v4"},
        headers=headers,
    )
    assert reply.status_code == 403
    assert "Nothing was changed" in reply.text and "this site" in reply.text
    assert site.snapshot() == before


def test_a_cross_site_sign_in_opens_no_session(site, client):
    form = client.get("/sign-in")
    reply = client.post(
        "/sign-in",
        data={"token": site.tokens["read"], "csrf": csrf_of(form.text)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert reply.status_code == 403
    assert "regctl_session" not in reply.headers.get("set-cookie", "")
    assert client.get("/").status_code == 303  # still signed out


def test_a_same_origin_post_with_its_token_acts(site, client):
    csrf = sign_in(client, site.tokens["promote"])
    for headers in (SAME, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}, {}):
        reply = client.post(
            f"/models/{PPE}/-/act/alias-set",
            data={"csrf": csrf, "alias": "canary", "version": "v4"},
            headers=headers,
        )
        assert reply.status_code == 303, reply.text
        assert site.reg().model_state(PPE).aliases["canary"] == 4
        reply = client.post(
            f"/models/{PPE}/-/act/alias-rm", data={"csrf": csrf, "alias": "canary"}, headers=headers
        )
        assert reply.status_code == 303
        assert "canary" not in site.reg().model_state(PPE).aliases


def test_a_missing_or_wrong_form_token_is_refused_even_from_this_site(site, client):
    sign_in(client, site.tokens["promote"])
    before = site.snapshot()
    for form in ({"version": "v7"}, {"version": "v7", "csrf": "forged"}):
        reply = client.post(f"/models/{PPE}/-/act/promote", data=form, headers=SAME)
        assert reply.status_code == 403
        assert "Nothing was changed" in reply.text
    reply = client.post("/sign-out", data={"csrf": "forged"}, headers=SAME)
    assert reply.status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    assert site.snapshot() == before


def test_a_read_token_sees_no_actions_and_forged_posts_change_nothing(site, client):
    csrf = sign_in(client, site.tokens["read"])
    version = client.get(f"/models/{PPE}/-/versions/v7").text
    actions = re.compile(r'class="[^"]*\bactions\b')
    assert not actions.search(version)
    for label in ("Promote…", "Archive…", "Set alias…", "Set tag…", "Roll back…"):
        assert label not in version
    model = client.get(f"/models/{PPE}").text
    assert "Roll back…" not in model and not actions.search(model)
    assert "/-/act/" not in version + model
    assert client.get(f"/models/{PPE}/-/act/promote?version=v7").status_code == 403

    before = site.snapshot()
    url = f"/models/{PPE}/-/act/promote"
    # its own valid CSRF token, from this site: the scope still says no
    for form in ({"version": "v7"}, {"version": "v7", "csrf": "forged"}, {"csrf": csrf}):
        reply = client.post(url, data=form, headers=SAME)
        assert reply.status_code == 403
    # and no session at all
    with site.client() as stranger:
        assert stranger.post(url, data={"version": "v7"}).status_code == 403
    assert site.snapshot() == before


# ----------------------------------------------------------------- XSS
def test_a_tag_value_and_a_description_with_script_render_as_text(site, client):
    sign_in(client, site.tokens["read"])
    for path in ("/models/xss/model/-/versions/v1", "/", "/audit", "/models/xss/model"):
        page = client.get(path).text
        assert "<script>window" not in page and "<img src=x" not in page, path
        assert page.count("<script") == 1  # only /static/app.js
    page = client.get("/models/xss/model/-/versions/v1").text
    shown = str(escape(XSS))
    description = re.search(r'class="description"[^>]*>(.*?)</', page, re.S)
    assert description and shown in description.group(1)  # the description, as text
    assert f"note={shown}" in page  # the tag, as text


# ----------------------------------------------------------------- sessions
def test_the_session_cookie_is_httponly_strict_and_secure_only_under_https(site):
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        with site.client(base_url=base) as c:
            form = c.get("/sign-in")
            signin_cookie = form.headers["set-cookie"]
            reply = c.post(
                "/sign-in",
                data={"token": site.tokens["read"], "csrf": csrf_of(form.text)},
                headers={"Sec-Fetch-Site": "same-origin", "Origin": base},
            )
            assert reply.status_code == 303
            cookie = next(
                v for v in reply.headers.get_list("set-cookie") if v.startswith("regctl_session=")
            )
            for each in (cookie, signin_cookie):
                flags = [f.strip().lower() for f in each.split(";")]
                assert "httponly" in flags and "samesite=strict" in flags
                assert ("secure" in flags) is secure
            assert site.tokens["read"] not in cookie


def test_every_page_but_sign_in_leads_to_sign_in_and_sends_strict_headers(client):
    for path in (
        "/",
        f"/models/{PPE}",
        f"/models/{PPE}/-/versions/v1",
        "/audit",
        f"/models/{PPE}/-/versions/v1/files/payload/model.pt",
        f"/models/{PPE}/-/act/promote?version=v1",
        "/models/no/such/model",
    ):
        reply = client.get(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"].startswith("/sign-in?next=")
    reply = client.get("/sign-in")
    assert reply.status_code == 200
    csp = reply.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert reply.headers["x-frame-options"] == "DENY"


def test_a_revoked_token_ends_its_session(site, client):
    reg = site.reg()
    book = Tokens(reg.store, reg.states, "setup")
    secret = book.create("short-lived", ["read"]).secret
    sign_in(client, secret)
    assert "short-lived" in client.get("/").text
    book.revoke("short-lived")
    reply = client.get("/")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/sign-in")


# ----------------------------------------------------------------- error pages
def test_a_refused_promotion_shows_the_cores_message_and_hint_and_409(site, client):
    csrf = sign_in(client, site.tokens["promote"])
    with pytest.raises(RuleViolation) as refused:
        site.reg().promote(PPE, version="v2")  # accuracy 0.73 < 0.75: what the CLI says
    before = site.snapshot()
    reply = client.post(
        f"/models/{PPE}/-/act/promote", data={"csrf": csrf, "version": "v2"}, headers=SAME
    )
    assert reply.status_code == 409
    shown = problem_text(reply.text)
    assert f"error: {refused.value.message}" in shown and "fails the gate" in shown
    assert refused.value.hint and f"hint: {refused.value.hint}" in shown
    assert "Nothing was changed" in shown
    assert 'action="/models/vision/plant-a/ppe/-/act/promote"' in reply.text  # form again
    assert site.snapshot() == before


def test_bad_input_in_a_form_is_400_with_its_hint(site, client):
    csrf = sign_in(client, site.tokens["promote"])
    before = site.snapshot()
    reply = client.post(
        f"/models/{PPE}/-/act/archive", data={"csrf": csrf, "version": "v1"}, headers=SAME
    )
    assert reply.status_code == 400
    assert "error: reason is empty" in problem_text(reply.text)
    assert "hint: fill in the reason" in problem_text(reply.text)
    assert site.snapshot() == before


def test_not_found_is_404_with_the_message_and_hint(site, client):
    sign_in(client, site.tokens["read"])
    from registry_cli.errors import NotFound

    for path, ref in ((f"/models/{PPE}/-/versions/v99", f"{PPE}:v99"), ("/models/nope", None)):
        reply = client.get(path)
        assert reply.status_code == 404, path
        shown = problem_text(reply.text)
        if ref:
            with pytest.raises(NotFound) as missing:
                site.reg().get(ref)
            assert f"error: {missing.value.message}" in shown
            if missing.value.hint:
                assert f"hint: {missing.value.hint}" in shown
        assert "error:" in shown


def test_an_unexpected_fault_is_500_without_a_traceback(site, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ModelRegistry, "list_models", boom)
    with site.client(raise_server_exceptions=False) as c:
        form = c.get("/sign-in")
        c.post(
            "/sign-in",
            data={"token": site.tokens["read"], "csrf": csrf_of(form.text)},
            headers=SAME,
        )
        reply = c.get("/")
    assert reply.status_code == 500
    shown = problem_text(reply.text)
    assert "error: unexpected RuntimeError" in shown and "hint: see the server's log" in shown
    assert "secret internals" not in reply.text and "Traceback" not in reply.text
    assert "text/html" in reply.headers["content-type"]


def test_every_form_carries_its_own_token_and_sign_out_ends_the_session(site, client):
    session_csrf = sign_in(client, site.tokens["promote"])
    page = client.get("/sign-in").text  # signed in: the header's sign-out form and sign-in's
    forms = dict(
        re.findall(r'<form[^>]*action="([^"]+)".*?name="csrf" value="([^"]+)"', page, re.S)
    )
    assert forms["/sign-out"] == session_csrf
    assert forms["/sign-in"] != session_csrf
    confirm = client.get(f"/models/{PPE}/-/act/rollback").text
    assert csrf_of(confirm.split('action="/models/')[1]) == session_csrf
    reply = client.post("/sign-out", data={"csrf": forms["/sign-out"]}, headers=SAME)
    assert reply.status_code == 303
    assert client.get("/").status_code == 303  # signed out


def test_anonymous_read_shows_pages_but_acting_needs_a_session(site):
    before = site.snapshot()
    with TestClient(build_app(site.root, anonymous_read=True), follow_redirects=False) as c:
        page = c.get(f"/models/{PPE}/-/versions/v7")
        assert page.status_code == 200 and "Reading anonymously" in page.text
        assert "/-/act/" not in page.text
        reply = c.get(f"/models/{PPE}/-/act/promote?version=v7")
        assert reply.status_code == 303 and reply.headers["location"].startswith("/sign-in")
        reply = c.post(f"/models/{PPE}/-/act/promote", data={"version": "v7"}, headers=SAME)
        assert reply.status_code == 403
        missing = c.get(f"/models/{PPE}/-/versions/v7/files/payload/nope.bin")
        assert missing.status_code == 404 and "error: no file" in problem_text(missing.text)
    assert site.snapshot() == before
