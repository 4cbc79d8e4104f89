"""The web UI's version page renders the model card as Markdown without raw HTML, through
a real serve-registry process."""

from __future__ import annotations

import urllib.request

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.provenance import card_html
from registry_cli.server.launch import ServeRegistryProcess

pytest.importorskip("markdown_it")

CARD = (
    "# Helmet detector\n\nTrained on **helmets-2026**.\n\n"
    '<script>window.__xss = 1</script>\n\n<img src=x onerror="window.__xss = 2">\n\n'
    "[click](javascript:alert(1))\n\n| metric | value |\n|---|---|\n| accuracy | 0.93 |\n"
)


def test_card_html_has_no_raw_html():
    html = card_html(CARD)
    assert "<h1>Helmet detector</h1>" in html and "<strong>helmets-2026</strong>" in html
    assert "<table>" in html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert card_html(None) == "" and card_html("") == ""


@pytest.mark.slow
def test_version_page_renders_the_card(tmp_path):
    root = tmp_path / "registry"
    reg = ModelRegistry(root, actor="alice")
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"w" * 256)
    reg.publish("team/det", [weights], facts={"card": CARD, "license": "Apache-2.0"})
    reg.publish("team/plain", [weights])
    env = {"HOME": str(tmp_path), "NO_COLOR": "1"}
    proc = ServeRegistryProcess(root, "--anonymous-read", log=tmp_path / "server.log", env=env)
    proc.start()
    try:
        with urllib.request.urlopen(f"{proc.url}/models/team/det/-/versions/v1") as resp:
            page = resp.read().decode()
        with urllib.request.urlopen(f"{proc.url}/models/team/plain/-/versions/v1") as resp:
            plain = resp.read().decode()
    finally:
        assert proc.stop() == 0, proc.log
    assert "<h1>Helmet detector</h1>" in page and "<strong>helmets-2026</strong>" in page
    assert "Apache-2.0" in page
    assert "window.__xss" not in page.replace("&lt;script&gt;window.__xss = 1", "").replace(
        "onerror=&quot;window.__xss = 2&quot;", ""
    )
    assert "<script>window.__xss" not in page and "<img src=x" not in page
    assert "Model card" not in plain
