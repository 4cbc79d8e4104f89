"""Pure parts of retention: the purge rule, prune's keep reasons, ``retention:`` parsing,
``--grace`` durations, and gc refusing to remove blobs while references are unknown."""

from __future__ import annotations

import json
import os

import pytest

from registry_cli import ModelRegistry
from registry_cli.core import lifecycle
from registry_cli.core.blob_gc import collect_blobs, parse_grace
from registry_cli.core.retention import keep_reason
from registry_cli.core.state import ModelState
from registry_cli.core.types import GcReport
from registry_cli.core.versionset import VersionSet
from registry_cli.errors import IntegrityError, RuleViolation
from registry_cli.settings.retention import RetentionRule, parse_retention, rule_for

STAGES = ("dev", "release")


def state_with(n: int) -> ModelState:
    state = ModelState("m", next_version=n + 1, versions=VersionSet(range(1, n + 1)))
    state.latest = {"dev": n, "release": None}
    return state


def test_purge_rule_needs_archived_and_round_trips():
    state = state_with(3)
    with pytest.raises(RuleViolation, match="only an archived version"):
        lifecycle.purge(state, 1)
    lifecycle.archive(state, STAGES, 1)
    assert lifecycle.purge(state, 1) == {"status": ["archived", "purged"]}
    assert lifecycle.purge(state, 1) == {"noop": True}
    assert state.status_of(1) == "purged" and state.status_of(2) == "active"
    doc = state.to_doc()
    assert doc["purged"] == "1" and doc["archived"] == "1"
    again = ModelState.from_doc(json.loads(json.dumps(doc)))
    assert again.purged == VersionSet([1]) and again.status_of(1) == "purged"
    assert "purged" not in state_with(2).to_doc()  # old states keep their shape


def test_keep_reasons():
    state = state_with(5)
    state.stages["release"] = VersionSet([2])
    state.aliases = {"canary": 3, "champion": 2}
    assert keep_reason(state, 5, STAGES) == "LATEST of dev"
    assert keep_reason(state, 3, STAGES) == "alias canary"
    assert keep_reason(state, 2, STAGES) == "alias champion"
    state.aliases.pop("champion")
    assert "was champion" in (keep_reason(state, 2, STAGES) or "")
    assert keep_reason(state, 1, STAGES) is None


def test_retention_config_shapes():
    assert parse_retention(None) == ()
    assert parse_retention({"keep_last": 3}) == (RetentionRule("*", 3, None),)
    rules = parse_retention(
        [{"pattern": "team/*", "keep_last": 1, "older_than_days": 7}, {"keep_last": 9}]
    )
    assert rule_for(rules, "team/a/b") == RetentionRule("team/*", 1, 7.0)
    assert rule_for(rules, "other") == RetentionRule("*", 9, None)
    assert rule_for(parse_retention([{"pattern": "x", "keep_last": 1}]), "y") is None
    for bad in (
        "keep",
        [{"keep_last": -1}],
        [{"keep_last": True}],
        [{"keep_last": 1, "older_than_days": "soon"}],
        [{"keep_last": 1, "extra": 1}],
        [{"pattern": "", "keep_last": 1}],
        [3],
    ):
        with pytest.raises(ValueError):
            parse_retention(bad)


def test_grace_durations():
    assert parse_grace("0s") == 0
    assert parse_grace("90") == 90
    assert parse_grace("30m") == 1800
    assert parse_grace("2h") == 7200
    assert parse_grace("1d") == 86400
    for bad in ("", "h", "-1m", "soon", "nan"):
        with pytest.raises(ValueError):
            parse_grace(bad)


def test_gc_removes_no_blob_while_a_manifest_is_unreadable(tmp_path, model_file):
    root = tmp_path / "registry"
    reg = ModelRegistry(root)
    reg.publish("m", [model_file])
    reg.publish("m", [model_file])
    reg.gc(dedup=True)
    orphan = root / "blobs/sha256/ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    manifest = root / "models/m/v1/manifest.json"
    os.chmod(manifest, 0o644)
    manifest.write_text("{broken")
    report = GcReport()
    with pytest.raises(IntegrityError, match="references are unknown"):
        collect_blobs(reg.store, reg.states, reg.versions, report, grace_s=0, dry_run=False)
    assert orphan.exists()
