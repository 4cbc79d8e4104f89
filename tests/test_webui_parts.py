"""Parts of the web UI that need no browser: chart layout and sampling, lineage parsing,
comparisons, redirects that stay on the site, session expiry."""

from __future__ import annotations

import time

from registry_cli.core.types import ChangeResult
from registry_cli.webui import sessions
from registry_cli.webui.access import csrf_matches, local_path
from registry_cli.webui.actions import describe
from registry_cli.webui.chart import MAX_POINTS, metric_charts
from registry_cli.webui.facts import parse_parent
from registry_cli.webui.views import audit_view, champion_changes, matches


def test_one_point_per_version_up_to_the_limit_then_even_samples():
    series = {v: {"accuracy": v / 10, "note": "text", "flag": True} for v in range(1, 8)}
    (chart,) = metric_charts(series, champion=5)  # non-numbers are not charted
    assert [p.version for p in chart.points] == list(range(1, 8))
    assert [p.version for p in chart.points if p.champion] == [5]
    assert not chart.sampled

    big = {v: {"loss": 1 / v} for v in range(1, 10_001)}
    (chart,) = metric_charts(big, champion=4_321)
    versions = [p.version for p in chart.points]
    assert MAX_POINTS <= len(versions) <= MAX_POINTS + 1 and chart.sampled and chart.total == 10_000
    assert versions[0] == 1 and versions[-1] == 10_000 and 4_321 in versions
    assert versions == sorted(versions)
    gaps = [b - a for a, b in zip(versions, versions[1:], strict=False)]
    assert max(gaps) <= 2 * (10_000 // MAX_POINTS)  # evenly spread


def test_chart_coordinates_stay_inside_the_plot():
    (chart,) = metric_charts({1: {"m": 3.0}})  # one version, a flat line
    (point,) = chart.points
    assert chart.left <= point.x <= chart.plot_right and 0 <= point.y <= chart.plot_bottom
    (chart,) = metric_charts({1: {"m": -5.0}, 2: {"m": 7.5}, 9: {"m": 0.0}})
    assert all(chart.left <= p.x <= chart.plot_right for p in chart.points)
    assert all(0 <= p.y <= chart.plot_bottom for p in chart.points)
    assert chart.points[1].y < chart.points[2].y < chart.points[0].y  # higher is up


def test_lineage_and_filters():
    assert parse_parent("team/ppe:v12") == ("team/ppe", 12)
    assert parse_parent(None) is None
    assert matches("vision/plant-a/ppe", "PLANT ppe") and not matches("faq-bot", "ppe")


def test_champion_history_and_audit_filters_from_entries():
    entries = [
        {"time": "t1", "actor": "a", "action": "publish", "model": "m", "version": "v1",
         "details": {"aliases": {"candidate": [None, "v1"]}}},
        {"time": "t2", "actor": "ci", "action": "promote", "model": "m", "version": "v1",
         "details": {"aliases": {"champion": [None, "v1"]}, "reason": "first"}},
        {"time": "t3", "actor": "ops", "action": "rollback", "model": "m", "version": "v0",
         "details": {"aliases": {"champion": ["v2", "v1"]}}},
        {"time": "t4", "actor": "ci", "action": "promote", "model": "m", "version": "v1",
         "details": {"noop": True}},
    ]  # fmt: skip
    history = champion_changes(entries)
    assert [(h.actor, h.action, h.old, h.new) for h in history] == [
        ("ops", "rollback", "v2", "v1"),
        ("ci", "promote", None, "v1"),
    ]
    assert history[1].reason == "first"
    view = audit_view(entries, model="m", action="promote", actor="ci", page=1)
    assert [e["time"] for e in view.entries] == ["t4", "t2"]
    assert view.actions == ["promote", "publish", "rollback"]


def test_change_summary_like_the_cli():
    result = ChangeResult(
        "promote",
        "m",
        "v3",
        {"aliases": {"champion": ["v2", "v3"]}, "latest": {"release": ["v2", "v3"]}},
    )
    assert describe(result) == "promote m:v3: @champion: v2 → v3; release LATEST: v2 → v3"
    noop = ChangeResult("promote", "m", "v3", {"noop": True}, noop=True, message="already")
    assert describe(noop) == "already"


def test_redirects_stay_on_this_site_and_csrf_compares_exactly():
    assert local_path("/models/a?page=2") == "/models/a?page=2"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil", "", None, "/a\nb"):
        assert local_path(bad) == "/"
    assert csrf_matches("abc", "abc") and not csrf_matches("abc", "abd")
    assert not csrf_matches("", "") and not csrf_matches(None, None)


def test_sessions_expire_and_close(monkeypatch):
    book = sessions.SessionBook()
    sid = book.open("tok", ("read",), "hash")
    session = book.get(sid)
    assert session is not None and session.token_name == "tok"
    assert sid not in repr(book._by_key)  # looked up by hash only
    assert not session.csrf_ok("") and session.csrf_ok(session.csrf)
    now = time.monotonic()
    monkeypatch.setattr(sessions.time, "monotonic", lambda: now + sessions.IDLE_S + 1)
    assert book.get(sid) is None
    sid = book.open("tok", ("read",), "hash")
    book.close(sid)
    assert book.get(sid) is None


def test_model_page_pages_versions_and_learns_lineage(tmp_path, monkeypatch):
    from registry_cli import ModelRegistry
    from registry_cli.webui import views
    from registry_cli.webui.facts import VersionFacts
    from registry_cli.webui.views import VERSIONS_PER_PAGE, model_page, model_rows

    reg = ModelRegistry(tmp_path / "registry", actor="alice")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    total = VERSIONS_PER_PAGE + 5
    for i in range(total):
        reg.publish("team/big", [weights], metrics={"acc": i / total})
    reg.promote("team/big", version=3, reason="why not")
    lineage = VersionFacts()
    page = model_page(reg, "team/big", 2, lineage, reg.audit().entries)
    assert (page.page, page.pages, page.total) == (2, 2, total)
    assert [r.version for r in page.rows] == [5, 4, 3, 2, 1]  # newest first
    assert len(page.charts[0].points) == total
    assert [(h.new, h.reason, h.actor) for h in page.champion_history] == [
        ("v3", "why not", "alice")
    ]
    assert model_page(reg, "team/big", 99, lineage, reg.audit().entries).page == 2
    reg.archive("team/big", 50, reason="bad")
    monkeypatch.setattr(views, "VERSIONS_PER_PAGE", 10)  # many pages: a get per row
    paged = model_page(reg, "team/big", 2, lineage, reg.audit().entries)
    assert paged.pages == 6 and [r.version for r in paged.rows] == list(range(45, 35, -1))
    assert [r.status for r in paged.rows if r.version == 50] == []
    paged = model_page(reg, "team/big", 1, lineage, reg.audit().entries)
    assert [r.status for r in paged.rows if r.version == 50] == ["archived"]
    assert [r.aliases for r in paged.rows if r.version == total] == [["candidate"]]
    assert [p.archived for p in paged.charts[0].points if p.version == 50] == [True]
    monkeypatch.undo()
    assert page.children == []

    # a variant published later is found from the audit log on the next page view
    reg.publish("team/big__int8", [weights], derived_from="team/big:v3")
    page = model_page(reg, "team/big", 1, lineage, reg.audit().entries)
    assert [(e.model, e.version, e.parent_version) for e in page.children] == [
        ("team/big__int8", 1, 3)
    ]
    variant = model_page(reg, "team/big__int8", 1, lineage, reg.audit().entries)
    assert variant.parents == [("v1", "team/big", "v3")]
    rows, count = model_rows(reg, "INT8")
    assert [r.name for r in rows] == ["team/big__int8"] and count == 2
    assert (rows[0].prefix, rows[0].leaf) == ("team/", "big__int8")
