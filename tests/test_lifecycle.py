"""The lifecycle rules (docs/concepts.md), end to end through the CLI, checked with the library."""

from __future__ import annotations

import json

import pytest

from registry_cli import ModelRegistry


def state(reg, name="faq-bot"):
    s = reg.model_state(name)
    return {
        "aliases": {a: f"v{v}" for a, v in s.all_aliases().items()},
        "latest": {k: (f"v{v}" if v else None) for k, v in s.latest.items()},
        "archived": [f"v{v}" for v in s.archived],
    }


@pytest.fixture
def pub(cli, model_file):
    def publish(name="faq-bot", *extra):
        res = cli("publish", name, str(model_file), *extra)
        assert res.exit_code == 0, res.stderr
        return res

    return publish


def ok(res):
    assert res.exit_code == 0, res.stderr
    return res


def test_scenario_a_release_and_rollback(cli, reg, pub):
    pub()
    ok(cli("promote", "faq-bot"))
    s = state(reg)
    assert s["aliases"] == {"champion": "v1"} and s["latest"]["release"] == "v1"
    pub()
    assert state(reg)["aliases"] == {"candidate": "v2", "champion": "v1"}
    ok(cli("promote", "faq-bot"))
    s = state(reg)
    assert s["aliases"] == {"champion": "v2", "rollback": "v1"}
    assert s["latest"] == {"dev": "v2", "release": "v2"}
    # KPI drops
    out = ok(cli("rollback", "faq-bot")).stdout
    assert "@champion: v2 → v1" in out
    s = state(reg)
    assert s["aliases"] == {"candidate": "v2", "champion": "v1"}
    assert s["latest"]["release"] == "v1"
    ok(cli("archive", "faq-bot", "v2", "--reason", "KPI drop"))
    s = state(reg)
    assert s["aliases"] == {"champion": "v1"} and s["archived"] == ["v2"]
    # dev LATEST pointed at v2: falls back to the newest active dev version
    assert s["latest"] == {"dev": "v1", "release": "v1"}
    actions = [(e["action"], e["version"]) for e in reg.audit("faq-bot").entries]
    assert actions == [
        ("publish", "v1"),
        ("promote", "v1"),
        ("publish", "v2"),
        ("promote", "v2"),
        ("rollback", "v1"),
        ("archive", "v2"),
    ]
    assert reg.audit("faq-bot").entries[-1]["details"]["reason"] == "KPI drop"


def test_exactly_one_champion_and_stack_walks_back(cli, reg, pub):
    for _ in range(3):
        pub()
        ok(cli("promote", "faq-bot"))
    s = reg.model_state("faq-bot")
    assert s.aliases["champion"] == 3 and s.history == [1, 2]
    ok(cli("rollback", "faq-bot"))
    assert state(reg)["aliases"] == {"candidate": "v3", "champion": "v2", "rollback": "v1"}
    ok(cli("rollback", "faq-bot"))
    assert state(reg)["aliases"] == {"candidate": "v2", "champion": "v1"}
    res = cli("rollback", "faq-bot")
    assert res.exit_code == 4 and "nothing to roll back" in res.stderr
    assert "--to" in res.stderr
    # jump with --to
    ok(cli("rollback", "faq-bot", "--to", "v3"))
    assert state(reg)["aliases"] == {"candidate": "v1", "champion": "v3"}
    assert state(reg)["latest"]["release"] == "v3"
    for v in reg.list_versions("faq-bot"):
        assert v.aliases.count("champion") <= 1
    assert sum("champion" in v.aliases for v in reg.list_versions("faq-bot")) == 1


def test_rollback_to_drops_everything_above_in_history(cli, reg, pub):
    for _ in range(4):
        pub()
        ok(cli("promote", "faq-bot"))
    assert reg.model_state("faq-bot").history == [1, 2, 3]
    ok(cli("rollback", "faq-bot", "--to", "2"))
    s = reg.model_state("faq-bot")
    assert s.history == [1] and s.aliases["champion"] == 2 and s.aliases["candidate"] == 4


@pytest.mark.parametrize("flag", ["--json", None])
def test_repromote_champion_is_a_noop(cli, reg, pub, flag):
    pub()
    ok(cli("promote", "faq-bot"))
    before = (reg.root / "models" / "faq-bot" / "model.yaml").read_bytes()
    args = ["promote", "faq-bot", "--version", "v1"] + ([flag] if flag else [])
    res = ok(cli(*args))
    if flag:
        assert json.loads(res.stdout)["noop"] is True
    else:
        assert "already the champion" in res.stdout
    assert (reg.root / "models" / "faq-bot" / "model.yaml").read_bytes() == before
    last = reg.audit("faq-bot").entries[-1]
    assert last["action"] == "promote" and last["details"]["noop"] is True


def test_refusals_exit_4_with_reason(cli, reg, pub, root):
    pub()
    pub()
    ok(cli("promote", "faq-bot", "--version", "v1"))
    # archiving the champion
    res = cli("archive", "faq-bot", "v1")
    assert res.exit_code == 4 and "champion" in res.stderr and "hint:" in res.stderr
    # promoting an archived version
    ok(cli("archive", "faq-bot", "v2"))
    res = cli("promote", "faq-bot", "--version", "v2")
    assert res.exit_code == 4 and "archived" in res.stderr
    # reserved aliases by hand
    for args in (
        ["alias", "set", "faq-bot", "champion", "v1"],
        ["alias", "set", "faq-bot", "candidate", "v1"],
        ["alias", "rm", "faq-bot", "rollback"],
    ):
        res = cli(*args)
        assert res.exit_code == 4 and "reserved" in res.stderr, args
    # nothing to roll back to
    res = cli("rollback", "faq-bot")
    assert res.exit_code == 4
    # rollback --to a version never released
    pub()
    res = cli("rollback", "faq-bot", "--to", "v3")
    assert res.exit_code == 4 and "never in 'release'" in res.stderr and "promote" in res.stderr
    res = cli("rollback", "faq-bot", "--to", "v9")
    assert res.exit_code == 3
    # no candidate to promote
    ok(cli("promote", "faq-bot"))
    res = cli("promote", "faq-bot")
    assert res.exit_code == 4 and "no candidate" in res.stderr


def test_stage_skipping_refused_with_three_stages(cli, reg, pub, root):
    root.mkdir(parents=True)
    (root / "registry.yaml").write_text("stages: [dev, staging, production]\n")
    pub()
    res = cli("promote", "faq-bot", "--to", "production")
    assert res.exit_code == 4
    assert "not in 'staging'" in res.stderr and "--to staging" in res.stderr
    assert "champion" not in reg.model_state("faq-bot").aliases
    ok(cli("promote", "faq-bot", "--to", "staging"))
    s = reg.model_state("faq-bot")
    assert "champion" not in s.aliases and s.aliases["candidate"] == 1  # not the last stage
    ok(cli("promote", "faq-bot"))  # default target: the last stage
    s = state(reg)
    assert s["aliases"] == {"champion": "v1"}
    assert s["latest"] == {"dev": "v1", "staging": "v1", "production": "v1"}
    # a registry opened now reads the three-stage config
    assert ModelRegistry(root).get("faq-bot:v1").stages == ["dev", "staging", "production"]
    res = cli("promote", "faq-bot", "--to", "dev", "--version", "v1")
    assert res.exit_code == 4
    res = cli("promote", "faq-bot", "--to", "qa")
    assert res.exit_code == 2 and "unknown stage" in res.stderr


def test_gates(cli, reg, pub, root, model_file):
    root.mkdir(parents=True)
    (root / "registry.yaml").write_text(
        "gates:\n  release:\n    metrics: {accuracy: '>= 0.9'}\n    tags: [dataset]\n"
    )
    pub("faq-bot", "--metric", "accuracy=0.85")
    res = cli("promote", "faq-bot")
    assert res.exit_code == 4
    assert "accuracy >= 0.9" in res.stderr and "'dataset'" in res.stderr
    assert "--force --reason" in res.stderr
    assert "champion" not in reg.model_state("faq-bot").aliases
    res = cli("promote", "faq-bot", "--force")
    assert res.exit_code == 2 and "--reason" in res.stderr
    ok(cli("promote", "faq-bot", "--force", "--reason", "hotfix for outage"))
    entry = reg.audit("faq-bot").entries[-1]
    assert entry["details"]["forced"] is True
    assert entry["details"]["reason"] == "hotfix for outage"
    assert len(entry["details"]["overridden"]) == 2
    # a version lacking the metric fails clearly
    pub("faq-bot", "--tag", "dataset=d")
    res = cli("promote", "faq-bot")
    assert res.exit_code == 4 and "metric 'accuracy' is missing" in res.stderr
    # a passing version goes through; tags set later count
    pub("faq-bot", "--metric", "accuracy=0.95")
    assert cli("promote", "faq-bot").exit_code == 4
    ok(cli("tag", "faq-bot", "v3", "dataset=faq-2026"))
    ok(cli("promote", "faq-bot"))
    assert reg.model_state("faq-bot").aliases["champion"] == 3


def test_user_aliases_and_tags(cli, reg, pub):
    pub()
    pub()
    ok(cli("alias", "set", "faq-bot", "canary", "v1"))
    assert reg.get("faq-bot@canary").vname == "v1"
    ok(cli("alias", "set", "faq-bot", "canary", "v2"))
    assert reg.get("faq-bot@canary").vname == "v2"
    assert cli("alias", "set", "faq-bot", "canary", "v7").exit_code == 3
    assert cli("alias", "set", "faq-bot", "9bad", "v1").exit_code == 2
    ok(cli("alias", "rm", "faq-bot", "canary"))
    assert cli("alias", "rm", "faq-bot", "canary").exit_code == 3
    ok(cli("tag", "faq-bot", "v1", "owner=ml", "team=qa"))
    ok(cli("tag", "faq-bot", "v1", "--rm", "team"))
    assert reg.get("faq-bot:v1").tags == {"owner": "ml"}
    assert cli("tag", "faq-bot", "v1", "--rm", "nope").exit_code == 3
    assert cli("tag", "faq-bot", "v1").exit_code == 2
    actions = [e["action"] for e in reg.audit("faq-bot").entries]
    assert actions[-5:] == ["alias-set", "alias-set", "alias-rm", "tag", "tag"]


def test_archive_removes_aliases_and_moves_latest(cli, reg, pub):
    pub()
    pub()
    pub()
    ok(cli("alias", "set", "faq-bot", "canary", "v3"))
    ok(cli("archive", "faq-bot", "v3"))
    s = state(reg)
    assert s["aliases"] == {} and s["latest"]["dev"] == "v2"
    assert cli("alias", "set", "faq-bot", "x", "v3").exit_code == 4
    ok(cli("archive", "faq-bot", "v2"))
    ok(cli("archive", "faq-bot", "v1"))
    assert state(reg)["latest"]["dev"] is None
    assert "already archived" in ok(cli("archive", "faq-bot", "v1")).stdout


def test_archived_rollback_target_leaves_history(cli, reg, pub):
    for _ in range(3):
        pub()
        ok(cli("promote", "faq-bot"))
    ok(cli("archive", "faq-bot", "v2"))  # the rollback target
    assert state(reg)["aliases"] == {"champion": "v3", "rollback": "v1"}
    ok(cli("rollback", "faq-bot"))
    assert state(reg)["aliases"] == {"candidate": "v3", "champion": "v1"}


def test_hierarchical_and_variant_names_through_the_lifecycle(cli, reg, pub):
    base = "donghwa/busan-plant1/welding/ppe"
    variant = f"{base}__openvino_int8"
    pub(base)
    pub(base)
    pub(base)
    ok(cli("promote", base, "--version", "v3"))
    pub(variant, "--derived-from", f"{base}:v3")
    ok(cli("promote", variant))
    pub(variant, "--derived-from", f"{base}:v3")
    ok(cli("promote", variant))
    ok(cli("rollback", variant))
    ok(cli("archive", variant, "v2"))
    listing = {m["name"]: m for m in json.loads(cli("list", "--json").stdout)}
    assert listing[base]["aliases"] == {"candidate": "v3", "champion": "v3"} or listing[base][
        "aliases"
    ] == {"champion": "v3"}
    assert listing[variant]["aliases"] == {"champion": "v1"}
    show = json.loads(cli("show", f"{variant}:v1", "--json").stdout)
    assert show["derived_from"] == f"{base}:v3"
    versions = json.loads(cli("versions", variant, "--json").stdout)["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [("v1", "active"), ("v2", "archived")]
    assert versions[0]["derived_from"] == f"{base}:v3"


def test_promote_candidate_clears_candidate(cli, reg, pub):
    pub()
    ok(cli("promote", "faq-bot"))
    assert "candidate" not in reg.model_state("faq-bot").aliases


def test_demoted_champion_becomes_candidate_taking_alias(cli, reg, pub):
    pub()
    ok(cli("promote", "faq-bot"))
    pub()
    ok(cli("promote", "faq-bot"))
    pub()  # v3 is candidate now
    ok(cli("rollback", "faq-bot"))
    assert state(reg)["aliases"] == {"candidate": "v2", "champion": "v1"}
    assert reg.audit("faq-bot").entries[-1]["details"]["aliases"]["candidate"] == ["v3", "v2"]
