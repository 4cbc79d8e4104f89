"""The web UI (see docs/webui.md) in a real browser: headless Chromium driven by Playwright
against
a real `regctl serve-registry` process on a loopback port: what a person sees. The
security checks that need no browser (CSRF, escaping, cookies, sign-in, error pages)
run in-process in tests/test_webui_security.py.

The browser is the system Chromium (Playwright's own download does not work on these
machines). A missing piece fails these tests with a message naming it: never a skip.
`make test` installs both where it can.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.tokens import Tokens
from registry_cli.server.launch import ServeRegistryProcess
from tests.test_webui_security import CONFIG, PPE, XSS  # one scene for both suites

pytestmark = pytest.mark.slow


def chromium_path() -> str:
    """The system Chromium, or a test failure that says how to get it."""
    for candidate in (
        os.environ.get("REGCTL_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "the web UI tests need the system Chromium and it is missing: "
        "apt-get install -y chromium (or set REGCTL_CHROMIUM=/path/to/chromium)"
    )


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail(
            "the web UI tests need the Python package 'playwright' and it is missing: "
            ".venv/bin/pip install playwright (it is in the dev extra)"
        )
    return start()


@dataclass
class Site:
    url: str
    root: Path
    tokens: dict[str, str]
    proc: ServeRegistryProcess

    def reg(self, actor: str = "alice") -> ModelRegistry:
        return ModelRegistry(self.root, actor=actor)


def make_site(tmp: Path, *args: str) -> tuple[Path, dict[str, str], dict[str, str]]:
    root = tmp / "registry"
    reg = ModelRegistry(root, actor="alice")
    reg.init()
    (root / "registry.yaml").write_text(CONFIG)
    reg = ModelRegistry(root, actor="alice")
    book = Tokens(reg.store, reg.states, "setup")
    tokens = {s: book.create(f"tok-{s}", [s]).secret for s in ("read", "publish", "promote")}
    weights = tmp / "model.pt"
    weights.write_bytes(b"not really weights " * 64)
    for i in range(7):
        reg.publish(
            PPE,
            [weights],
            metrics={"accuracy": round(0.70 + 0.03 * i, 2), "loss": round(1.0 - 0.1 * i, 2)},
            params={"lr": f"0.0{i + 1}"},
            tags={"dataset": "helmets-2026"},
        )
        if i in (2, 4):
            reg.promote(PPE, reason=f"round {i}")
    reg.publish(f"{PPE}__int8", [weights], metrics={"accuracy": 0.8}, derived_from=f"{PPE}:v5")
    reg.publish("faq-bot", [weights], metrics={"f1": 0.7})
    reg.publish(
        "xss/model", [weights], description=XSS, tags={"note": XSS}, metrics={"accuracy": 0.1}
    )
    env = {
        "HOME": str(tmp),
        "REGCTL_ACTOR": "server-user",
        "REGCTL_CONFIG": str(root / "registry.yaml"),
        "NO_COLOR": "1",
    }
    return root, tokens, env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("webui")
    root, tokens, env = make_site(tmp)
    proc = ServeRegistryProcess(root, log=tmp / "server.log", env=env)
    proc.start()
    yield Site(proc.url, root, tokens, proc)
    assert proc.stop() == 0, proc.log


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    yield context.new_page()
    context.close()


def sign_in(page, site: Site, scope: str) -> None:
    page.goto(f"{site.url}/sign-in")
    page.fill("#token", site.tokens[scope])
    with page.expect_navigation():  # the signed-in page, not the sign-in form still shown
        page.click("form[action='/sign-in'] button[type=submit]")
    assert f"tok-{scope}" in page.inner_text("header")


def audit_lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]


def unlabelled_controls(page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0)
            .map(e => e.outerHTML)"""
    )


# ----------------------------------------------------------------- reading
def test_browse_models_model_version_and_compare(page, site):
    sign_in(page, site, "read")
    page.goto(site.url + "/")
    row = page.locator("#models-table tbody tr", has_text="ppe__int8")
    assert row.locator(".prefix").inner_text() == "vision/plant-a/"  # nested name with prefix
    ppe = page.locator("#models-table tbody tr[data-name='vision/plant-a/ppe']")
    assert ppe.locator("td[data-label=Champion]").inner_text() == "v5"
    assert ppe.locator("td[data-label=Candidate]").inner_text() == "v7"
    assert ppe.locator("td[data-label='release LATEST']").inner_text() == "v5"
    assert ppe.locator("td[data-label='dev LATEST']").inner_text() == "v7"

    ppe.get_by_role("link", name="vision/plant-a/ppe").click()
    assert page.url == f"{site.url}/models/{PPE}"
    assert page.locator("h1").inner_text() == PPE
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 7
    first = rows.first
    assert first.locator("th").inner_text() == "v7"
    assert "@candidate" in first.locator("td[data-label=Aliases]").inner_text()
    assert "accuracy=0.88" in first.locator("td[data-label=Metrics]").inner_text()
    assert "dataset=helmets-2026" in first.locator("td[data-label=Tags]").inner_text()
    assert first.locator("td[data-label=By]").inner_text() == "alice"
    # champion history from the audit: who promoted which version, with the reason
    history = page.locator("section[aria-labelledby=history-h] li")
    assert history.count() == 2
    assert "champion v3 → v5" in history.first.inner_text()
    assert "round 4" in history.first.inner_text() and "alice" in history.first.inner_text()
    # lineage both ways
    lineage = page.locator("section[aria-labelledby=lineage-h]").inner_text()
    assert f"{PPE}__int8:v1 ← {PPE}:v5" in lineage
    page.goto(f"{site.url}/models/{PPE}__int8")
    assert f"v1 ← {PPE}:v5" in page.locator("section[aria-labelledby=lineage-h]").inner_text()

    page.goto(f"{site.url}/models/{PPE}")
    page.get_by_role("link", name="v6", exact=True).first.click()
    assert page.url == f"{site.url}/models/{PPE}/-/versions/v6"
    facts = page.locator("section[aria-labelledby=facts-h]").inner_text()
    assert "accuracy=0.85" in facts and "lr=0.06" in facts
    info = site.reg().get(f"{PPE}:v6")
    files = page.locator("table.files tbody tr")
    assert files.count() == len(info.files) == 1
    assert info.files[0]["sha256"] in files.first.inner_text()
    assert str(info.files[0]["size"]) in files.first.inner_text()
    assert info.bundle["sha256"] in facts
    assert page.locator("#cmd-1").input_value() == (
        f"regctl pull {PPE} --stage dev --version v6 --from {site.url}"
    )
    assert page.locator("#cmd-2").input_value() == (f"regctl --remote {site.url} resolve {PPE}:v6")

    page.get_by_role("link", name="champion (v5)").click()
    table = page.locator("table.compare")
    differs = table.locator("tr.differs th").all_inner_texts()
    assert any("accuracy" in d for d in differs) and any("lr" in d for d in differs)
    assert any("stages" in d for d in differs)  # v5 is released, v6 is not
    assert any("aliases" in d for d in differs)  # v5 is @champion
    same = table.locator("tr.same th").all_inner_texts()
    assert "dataset" in same and "payload/model.pt" in same  # same tag, same file bytes
    assert "5 differences between v6 and v5" in page.inner_text("main")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v6?compare=@champion")
    assert "5 differences between v6 and v5" in page.inner_text("main")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v6?compare=v99")
    assert "has no version v99" in page.locator(".problem").inner_text()
    assert page.locator("h1").inner_text().startswith(f"{PPE}:v6")  # the page stays
    assert unlabelled_controls(page) == []


def test_download_link_gives_the_files_bytes(page, site):
    sign_in(page, site, "read")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v2")
    with page.expect_download() as got:
        page.locator("table.files a").first.click()
    data = Path(got.value.path()).read_bytes()
    info = site.reg().get(f"{PPE}:v2")
    assert hashlib.sha256(data).hexdigest() == info.files[0]["sha256"]


def test_filter_on_the_server_and_without_javascript(browser, site):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, site, "read")
    page.goto(site.url + "/")
    page.fill("#q", "PLANT ppe")
    page.press("#q", "Enter")
    page.wait_for_load_state()
    assert "q=PLANT+ppe" in page.url
    names = page.locator("#models-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert names == [PPE, f"{PPE}__int8"]
    assert "2 of 4 models match" in page.inner_text("main")
    page.goto(site.url + "/?q=nothing-like-this")
    assert "No model name contains" in page.inner_text("main")
    # without JavaScript the version page still shows everything, copy buttons stay hidden
    page.goto(f"{site.url}/models/{PPE}/-/versions/v1")
    assert page.locator("#cmd-1").input_value().startswith("regctl pull")
    assert not page.locator("button.copy").first.is_visible()
    context.close()


def test_filter_narrows_as_you_type_with_javascript(page, site):
    sign_in(page, site, "read")
    page.goto(site.url + "/")
    page.fill("#q", "faq")
    visible = page.locator("#models-table tbody tr:visible")
    assert visible.count() == 1 and "faq-bot" in visible.first.inner_text()


def test_chart_has_one_point_per_version_and_marks_the_champion(page, site):
    sign_in(page, site, "read")
    page.goto(f"{site.url}/models/{PPE}")
    for metric in ("accuracy", "loss"):
        points = page.locator(f"svg[data-metric={metric}] circle.point")
        assert points.count() == 7
        versions = points.evaluate_all("ps => ps.map(p => p.dataset.version)")
        assert versions == [f"v{n}" for n in range(1, 8)]
        champion = page.locator(f"svg[data-metric={metric}] circle.is-champion")
        assert champion.count() == 1 and champion.get_attribute("data-version") == "v5"
    # higher accuracy is drawn higher (smaller y)
    ys = page.locator("svg[data-metric=accuracy] circle.point").evaluate_all(
        "ps => ps.map(p => parseFloat(p.getAttribute('cy')))"
    )
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]


def test_audit_page_filters_by_model_action_and_actor(page, site):
    sign_in(page, site, "read")
    page.goto(site.url + "/audit")
    page.fill("#f-model", PPE)
    page.select_option("#f-action", "promote")
    page.select_option("#f-actor", "alice")
    with page.expect_navigation(url="**/audit?*"):  # count the filtered page's rows
        page.click("form.audit-filter button[type=submit]")
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 2
    for i in range(2):
        cells = rows.nth(i).locator("td")
        assert cells.nth(1).inner_text() == "alice"
        assert cells.nth(2).inner_text() == "promote"
        assert cells.nth(3).inner_text() == PPE
    assert "round 4" in rows.first.inner_text()  # newest first
    assert unlabelled_controls(page) == []


# ----------------------------------------------------------------- acting
def test_promote_with_a_reason_is_audited_with_the_token_name(page, site):
    before = site.reg().model_state(PPE)
    assert before.aliases["candidate"] == 7
    sign_in(page, site, "promote")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v7")
    page.get_by_role("link", name="Promote…").click()
    assert "/-/act/promote?version=v7" in page.url
    assert site.reg().model_state(PPE).aliases["champion"] == 5  # the GET changed nothing
    assert unlabelled_controls(page) == []
    page.fill("#reason", "better <b>recall</b> on night shifts")
    page.get_by_role("button", name="Confirm: promote").click()
    page.wait_for_load_state()
    assert page.url == f"{site.url}/models/{PPE}/-/versions/v7"
    assert "@champion: v5 → v7" in page.locator(".notice").inner_text()

    after = site.reg().model_state(PPE)
    assert after.aliases["champion"] == 7 and after.all_aliases()["rollback"] == 5
    last = audit_lines(site.root)[-1]
    assert last["actor"] == "tok-promote" and last["action"] == "promote"
    assert last["version"] == "v7"
    assert last["details"]["reason"] == "better <b>recall</b> on night shifts"

    page.goto(f"{site.url}/audit?model={PPE}&action=promote")
    newest = page.locator("table.audit tbody tr").first
    assert "tok-promote" in newest.inner_text()
    assert "better <b>recall</b> on night shifts" in newest.inner_text()  # as text
    page.goto(f"{site.url}/models/{PPE}")
    assert (
        "tok-promote promoted"
        in page.locator("section[aria-labelledby=history-h] li").first.inner_text()
    )

    # and back: roll back through its confirmation page
    page.get_by_role("link", name="Roll back…").click()
    page.get_by_role("button", name="Confirm: roll back").click()
    page.wait_for_load_state()
    assert site.reg().model_state(PPE).aliases["champion"] == 5
    assert audit_lines(site.root)[-1]["actor"] == "tok-promote"
    assert page.url == f"{site.url}/models/{PPE}"  # v7 is the candidate again
    page.get_by_role("link", name="Promote @candidate (v7)…").click()
    assert page.url == f"{site.url}/models/{PPE}/-/act/promote?version=v7"


def test_a_refused_promotion_shows_the_clis_message_and_hint(page, site):
    sign_in(page, site, "promote")
    page.goto(f"{site.url}/models/{PPE}/-/act/promote?version=v2")  # accuracy 0.73 < 0.75
    page.get_by_role("button", name="Confirm: promote").click()
    page.wait_for_load_state()
    shown = page.locator(".problem").inner_text()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry_cli",
            "--root",
            str(site.root),
            "--config",
            str(site.root / "registry.yaml"),
            "promote",
            PPE,
            "--version",
            "v2",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert cli.returncode == 4, cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert len(lines) == 2 and "fails the gate" in lines[0]
    for line in lines:
        assert line in shown
    assert "Nothing was changed" in shown
    assert site.reg().model_state(PPE).aliases["champion"] == 5


def test_tag_alias_and_archive_through_confirmation_pages(browser, site):
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site, "promote")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v4")
    assert page.get_by_role("link", name="Set tag…").count() == 0  # tags need 'publish'
    page.get_by_role("link", name="Set alias…").click()
    page.fill("#alias", "canary")
    page.get_by_role("button", name="Confirm: set alias").click()
    page.wait_for_load_state()
    assert site.reg().model_state(PPE).aliases["canary"] == 4
    page.get_by_role("link", name="Remove @canary…").click()
    page.get_by_role("button", name="Confirm: remove alias").click()
    page.wait_for_load_state()
    assert "canary" not in site.reg().model_state(PPE).aliases
    page.get_by_role("link", name="Archive…").click()
    page.fill("#reason", "superseded")
    page.get_by_role("button", name="Confirm: archive").click()
    page.wait_for_load_state()
    assert 4 in site.reg().model_state(PPE).archived
    last = audit_lines(site.root)[-1]
    assert (last["action"], last["actor"], last["details"]["reason"]) == (
        "archive",
        "tok-promote",
        "superseded",
    )
    context.close()

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site, "publish")
    page.goto(f"{site.url}/models/{PPE}/-/versions/v6")
    assert page.get_by_role("link", name="Promote…").count() == 0  # needs 'promote'
    page.get_by_role("link", name="Set tag…").click()
    page.fill("#key", "reviewed")
    page.fill("#value", "yes")
    page.get_by_role("button", name="Confirm: set tag").click()
    page.wait_for_load_state()
    assert site.reg().get(f"{PPE}:v6").tags["reviewed"] == "yes"
    assert audit_lines(site.root)[-1]["actor"] == "tok-publish"
    context.close()


def test_xss_payloads_in_a_description_and_a_tag_render_as_text(page, site):
    sign_in(page, site, "read")
    for path in ("/models/xss/model/-/versions/v1", "/", "/audit", "/models/xss/model"):
        page.goto(site.url + path)
        assert page.evaluate("window.__xss") is None
        assert page.locator("script").count() == 1  # only /static/app.js
        assert page.locator("img[src=x]").count() == 0
    page.goto(site.url + "/models/xss/model/-/versions/v1")
    assert XSS in page.locator(".description").inner_text()
    assert f"note={XSS}" in page.locator("section[aria-labelledby=facts-h]").inner_text()


# ----------------------------------------------------------------- sessions
def test_sign_in_failure_is_delayed_and_the_token_never_in_a_url(browser, site):
    context = browser.new_context()
    page = context.new_page()
    reply = page.goto(site.url + f"/models/{PPE}")
    assert page.url.startswith(f"{site.url}/sign-in?next=")  # every page leads to sign-in
    assert reply.status == 200
    page.fill("#token", "rgt_wrong")
    started = time.monotonic()
    page.click("form[action='/sign-in'] button[type=submit]")
    page.wait_for_load_state()
    assert time.monotonic() - started >= 0.25
    assert "not accepted" in page.locator(".problem").inner_text()
    assert "rgt_" not in page.url
    page.fill("#token", site.tokens["read"])
    page.click("form[action='/sign-in'] button[type=submit]")
    page.wait_for_load_state()
    assert page.url == f"{site.url}/models/{PPE}"  # back where it was going
    assert site.tokens["read"] not in page.url
    cookie = next(c for c in context.cookies() if c["name"] == "regctl_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert site.tokens["read"] not in cookie["value"]
    # a token in a URL is never used
    other = browser.new_context()
    p2 = other.new_page()
    p2.goto(f"{site.url}/sign-in?token={site.tokens['read']}")
    p2.goto(site.url + "/")
    assert "/sign-in" in p2.url
    other.close()
    context.close()


def test_sign_out_clears_access(browser, site):
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site, "promote")
    stolen = next(c for c in context.cookies() if c["name"] == "regctl_session")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert "You are signed out" in page.inner_text("main")
    assert not [c for c in context.cookies() if c["name"] == "regctl_session"]
    page.goto(site.url + "/")
    assert "/sign-in" in page.url
    context.close()
    # the old cookie is dead on the server too
    context = browser.new_context()
    context.add_cookies([stolen])
    page = context.new_page()
    page.goto(site.url + "/")
    assert "/sign-in" in page.url
    reply = context.request.post(
        f"{site.url}/models/{PPE}/-/act/rollback", form={"csrf": "x"}, max_redirects=0
    )
    assert reply.status == 403
    context.close()


# ----------------------------------------------------------------- layout
def test_keyboard_skip_link_and_focus(page, site):
    sign_in(page, site, "read")
    page.goto(f"{site.url}/models/{PPE}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # links are reachable by Tab (the @candidate badge comes first) and followed with Enter
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "v7":
            break
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/-/versions/v7")


@pytest.mark.parametrize("width", [390, 1440])
def test_screenshots_and_no_sideways_scrolling(browser, site, tmp_path, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, site, "promote")
    pages = {
        "models": "/",
        "model": f"/models/{PPE}",
        "version": f"/models/{PPE}/-/versions/v6?compare=v5",
        "audit": "/audit",
        "confirm": f"/models/{PPE}/-/act/promote?version=v6",
    }
    for name, path in pages.items():
        page.goto(site.url + path)
        shot = tmp_path / f"webui-{name}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} scrolls sideways at {width}px ({overflow}px)"
        size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 14
    if os.environ.get("REGCTL_WEBUI_SHOTS"):  # keep them to look at
        target = Path(os.environ["REGCTL_WEBUI_SHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, target / shot.name)
    context.close()


def test_anonymous_read_shows_pages_but_no_actions(browser, tmp_path):
    root, tokens, env = make_site(tmp_path)
    with ServeRegistryProcess(
        root, "--anonymous-read", log=tmp_path / "server.log", env=env
    ) as proc:
        context = browser.new_context()
        page = context.new_page()
        page.goto(proc.url + f"/models/{PPE}/-/versions/v7")
        assert page.url.endswith("/-/versions/v7")
        assert "Reading anonymously" in page.inner_text("header")
        assert page.locator("section.actions").count() == 0
        reply = page.goto(proc.url + f"/models/{PPE}/-/act/promote?version=v7")
        assert "/sign-in" in page.url  # acting always needs a signed-in token
        reply = context.request.post(
            proc.url + f"/models/{PPE}/-/act/promote", form={"version": "v7"}, max_redirects=0
        )
        assert reply.status == 403
        assert ModelRegistry(root).model_state(PPE).aliases["champion"] == 5
        context.close()


def test_under_tls_the_session_cookie_is_secure(browser, tmp_path):
    from tests.ftp_helpers import make_tls_cert

    root, tokens, env = make_site(tmp_path)
    cert, key = make_tls_cert(tmp_path)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with ServeRegistryProcess(root, *args, log=tmp_path / "server.log", env=env) as proc:
        assert proc.url.startswith("https://")
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(proc.url + "/sign-in")
        page.fill("#token", tokens["read"])
        page.click("form[action='/sign-in'] button[type=submit]")
        page.wait_for_load_state()
        assert "tok-read" in page.inner_text("header")
        cookie = next(c for c in context.cookies() if c["name"] == "regctl_session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        context.close()
