"""The documentation stands alone: README.md and docs/*.md link only to files and
anchors that exist, the README stays a short front door, and nothing in the
repository cites a specification that is not in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

README_MAX_LINES = 250
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where links live."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if fenced or not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [ln for ln in links if not re.match(r"^[a-z][a-z0-9+.-]*:", ln)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_at_an_existing_file_and_anchor(page):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        dest = (page.parent / target).resolve() if target else page
        if not dest.exists():
            broken.append(f"{link}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{link}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A `code` heading\n\n[ok](#a-code-heading) [bad](#nope)\n")
    assert anchors(page) == {"title", "a-code-heading"}
    assert relative_links(page) == ["#a-code-heading", "#nope"]
    fenced = tmp_path / "fenced.md"
    fenced.write_text("```\n[not a link](missing.md)\n```\n[web](https://example.com)\n")
    assert relative_links(fenced) == []


def test_the_readme_is_a_short_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_links_every_docs_page_and_the_web_ui_picture():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in (REPO / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, f"README does not link docs/{page.name}"
    assert "](docs/webui.png)" in readme


def test_nothing_cites_the_specification_outside_the_repository():
    spec_ref = re.compile(r"SPEC\s*§|SPEC's|the SPEC\b|\(SPEC\)")
    hits = []
    for top in ("registry_cli", "tests", "docs", "bench", "scripts"):
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix not in (".py", ".md", ".html", ".txt", ".yaml", ".toml"):
                continue
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if spec_ref.search(line) and path.name != "test_docs.py":
                    hits.append(f"{path.relative_to(REPO)}:{no}")
    for name in ("README.md", "Makefile", "pyproject.toml", "registry.yaml.example"):
        for no, line in enumerate((REPO / name).read_text(encoding="utf-8").splitlines(), 1):
            if spec_ref.search(line):
                hits.append(f"{name}:{no}")
    assert not hits, "cites SPEC: " + ", ".join(hits)
