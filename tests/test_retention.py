"""Retention on folder and S3 roots with the real CLI: purge, prune (flags, config,
dry-run), du; refusals change nothing. Blob roots are made by ``gc --dedup``."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from registry_cli.core.names import format_version
from tests.legacy_layout import to_legacy

pytestmark = pytest.mark.parametrize("backend", ["folder", "s3"], indirect=True)


def snapshot(root) -> tuple:
    """Every file (and on a folder its inode) plus the model states and the audit."""
    if isinstance(root, Path):
        files = []
        for dirpath, _dirs, names in os.walk(root):
            for n in names:
                p = Path(dirpath, n)
                if n.endswith(".lock") or n == ".alive":
                    continue
                st = p.lstat()
                files.append((p.relative_to(root).as_posix(), st.st_size, st.st_ino))
        states = {f[0]: (root / f[0]).read_bytes() for f in files if f[0].endswith("model.yaml")}
        return sorted(files), states
    keys = [k for k in root.keys() if not k.startswith(".regctl/")]
    states = {k: (root / k).read_bytes() for k in keys if k.endswith("model.yaml")}
    return keys, states


def audit_lines(proc) -> list[dict]:
    return json.loads(proc("audit", "--json", check=True).stdout)


def publish(proc, tmp_path: Path, name: str, count: int, shared: bytes) -> None:
    """``count`` versions, each with one shared file and one file of its own."""
    for i in range(count):
        src = tmp_path / f"src-{uuid.uuid4().hex}"
        src.mkdir()
        (src / "shared.bin").write_bytes(shared)
        (src / "own.bin").write_bytes(os.urandom(2000 + i))
        proc("publish", name, str(src / "shared.bin"), str(src / "own.bin"), check=True)


def payload_exists(root, name: str, v: int) -> bool:
    return (root / "models" / name / format_version(v) / "payload").exists()


@pytest.fixture
def shared() -> bytes:
    return os.urandom(5000)


def test_purge_keeps_facts_and_number_refuses_reads(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "team/m", 3, shared)
    regctl_proc("archive", "team/m", "v1", check=True)
    done = regctl_proc("purge", "team/m", "v1", "--reason", "old weights", check=True)
    assert "purged team/m:v1" in done.stdout
    assert not payload_exists(root, "team/m", 1)
    assert not (root / "models/team/m/v1/bundle.tar.gz").exists()
    assert (root / "models/team/m/v1/manifest.json").exists()
    assert (root / "models/team/m/v1/version.yaml").exists()
    assert not (root / "dist/dev/team/m/versions/v1").exists()
    show = json.loads(regctl_proc("show", "team/m:v1", "--json", check=True).stdout)
    assert show["status"] == "purged" and len(show["files"]) == 2
    versions = json.loads(regctl_proc("versions", "team/m", "--json", check=True).stdout)
    assert [v["status"] for v in versions["versions"]] == ["purged", "active", "active"]
    index = json.loads((root / "dist/dev/team/m/index.json").read_text())
    assert [e["version"] for e in index["versions"]] == ["v2", "v3"]
    state = json.loads((root / "models/team/m/model.yaml").read_text())
    assert state["purged"] == "1" and state["archived"] == "1"
    for args in (("resolve", "team/m:v1"), ("resolve", "team/m:v1", "--path")):
        res = regctl_proc(*args)
        assert res.returncode == 3, res.stderr
        assert res.stderr.splitlines()[0] == "error: team/m:v1 was purged: its payload is gone"
        assert res.stderr.splitlines()[1].startswith("hint: ")
    inp = tmp_path / "x.json"
    inp.write_text('{"X": [[1.0]]}')
    res = regctl_proc("predict", "team/m:v1", "--input", str(inp))
    assert res.returncode == 3 and "purged" in res.stderr and "Traceback" not in res.stderr
    if isinstance(root, Path):
        res = regctl_proc(
            "pull", "team/m", "--version", "v1", "--stage", "dev", "--from", str(root)
        )
        assert res.returncode == 3 and "hint:" in res.stderr
    entry = audit_lines(regctl_proc)[-1]
    assert entry["action"] == "purge" and entry["version"] == "v1"
    assert entry["details"]["reason"] == "old weights"
    # the number is never handed out again
    publish(regctl_proc, tmp_path, "team/m", 1, shared)
    assert regctl_proc("resolve", "team/m", check=True).stdout.strip() == "v4"
    again = regctl_proc("purge", "team/m", "v1", "--reason", "x", check=True)
    assert "already purged" in again.stdout
    assert regctl_proc("verify").returncode == 0


def test_purge_refusals_change_nothing(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "m", 2, shared)
    before, lines = snapshot(root), len(audit_lines(regctl_proc))
    cases = [
        (("purge", "m", "v1", "--reason", "r"), 4, "only an archived version can be purged"),
        (("purge", "m", "v1"), 2, "purge needs --reason"),
        (("purge", "m", "v9", "--reason", "r"), 3, "m has no version v9"),
        (("purge", "nope", "v1", "--reason", "r"), 3, "no model named 'nope'"),
        (("purge", "m", "banana", "--reason", "r"), 2, ""),
        (("purge", "Bad Name", "v1", "--reason", "r"), 2, ""),
    ]
    for args, code, text in cases:
        res = regctl_proc(*args)
        assert res.returncode == code, (args, res.stderr)
        assert res.stderr.startswith("error: ") and text in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert snapshot(root) == before and len(audit_lines(regctl_proc)) == lines


def test_prune_keeps_newest_aliases_latest_and_champions(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "m", 8, shared)
    regctl_proc("promote", "m", "--version", "v2", check=True)  # v2 was champion
    regctl_proc("promote", "m", "--version", "v3", check=True)  # v3 champion, v2 rollback
    regctl_proc("rollback", "m", check=True)  # v2 champion again, v3 candidate
    regctl_proc("alias", "set", "m", "canary", "v4", check=True)
    regctl_proc("archive", "m", "v5", check=True)
    before = snapshot(root)
    plan = regctl_proc("prune", "m", "--keep-last", "2", "--dry-run", "--json", check=True)
    items = json.loads(plan.stdout)
    assert snapshot(root) == before
    # newest 2 (v7, v8) kept; v2, v3 released; v4 aliased; v1, v5, v6 go
    assert [(i["version"], i["action"]) for i in items] == [
        ("v1", "archive+purge"),
        ("v5", "purge"),
        ("v6", "archive+purge"),
    ]
    # each frees its own file; the shared one stays, held by the kept versions
    assert all(i["model"] == "m" for i in items)
    assert [i["bytes"] for i in items] == [2000, 2004, 2005]
    done = json.loads(regctl_proc("prune", "m", "--keep-last", "2", "--json", check=True).stdout)
    assert done == items
    statuses = {
        v["version"]: v["status"]
        for v in json.loads(regctl_proc("versions", "m", "--json", check=True).stdout)["versions"]
    }
    assert statuses == {
        "v1": "purged", "v2": "active", "v3": "active", "v4": "active",
        "v5": "purged", "v6": "purged", "v7": "active", "v8": "active",
    }  # fmt: skip
    actions = [(e["action"], e["version"]) for e in audit_lines(regctl_proc)[-5:]]
    assert actions == [
        ("archive", "v1"), ("purge", "v1"), ("purge", "v5"), ("archive", "v6"), ("purge", "v6"),
    ]  # fmt: skip
    assert regctl_proc("verify").returncode == 0
    again = json.loads(regctl_proc("prune", "--keep-last", "2", "--json", check=True).stdout)
    assert again == []


def test_prune_older_than_and_bad_input(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "m", 3, shared)
    res = regctl_proc("prune", "--keep-last", "0", "--older-than", "1", "--json", check=True)
    assert json.loads(res.stdout) == []  # every version is younger than a day
    before = snapshot(root)
    for args, code in [
        (("prune",), 2),
        (("prune", "--older-than", "3"), 2),
        (("prune", "--keep-last", "-1"), 2),
        (("prune", "nope", "--keep-last", "1"), 3),
    ]:
        res = regctl_proc(*args)
        assert res.returncode == code and res.stderr.startswith("error: "), (args, res.stderr)
    assert snapshot(root) == before


def test_prune_and_du_follow_retention_config(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "team/a", 4, shared)
    publish(regctl_proc, tmp_path, "other", 3, shared)
    cfg = tmp_path / "registry.yaml"
    cfg.write_text("retention:\n  - {pattern: 'team/*', keep_last: 1}\n")
    cfg_args = ("--config", str(cfg))
    du = json.loads(regctl_proc(*cfg_args, "du", "--json", check=True).stdout)
    rows = {m["name"]: m for m in du["models"]}
    assert rows["other"]["reclaimable"] == 0 and rows["team/a"]["reclaimable"] > 3 * 2000
    plan = json.loads(regctl_proc(*cfg_args, "prune", "--dry-run", "--json", check=True).stdout)
    expected = [("team/a", "v1"), ("team/a", "v2"), ("team/a", "v3")]
    assert [(i["model"], i["version"]) for i in plan] == expected
    assert sum(i["bytes"] for i in plan) == rows["team/a"]["reclaimable"]
    done = json.loads(regctl_proc(*cfg_args, "prune", "--json", check=True).stdout)
    assert [(i["model"], i["version"]) for i in done] == expected
    after = json.loads(regctl_proc(*cfg_args, "du", "--json", check=True).stdout)
    assert {m["name"]: m["reclaimable"] for m in after["models"]} == {"other": 0, "team/a": 0}
    bad = tmp_path / "bad.yaml"
    bad.write_text("retention:\n  - {pattern: 'x', keep_last: many}\n")
    res = regctl_proc("--config", str(bad), "prune", "--dry-run")
    assert (
        res.returncode == 2
        and "keep_last" in res.stderr
        and "bad.yaml:1: retention[0].keep_last" in res.stderr
    )


def test_du_counts_shared_blobs_once(regctl_proc, root, tmp_path, shared):
    publish(regctl_proc, tmp_path, "a", 2, shared)
    publish(regctl_proc, tmp_path, "b", 2, shared)
    to_legacy(root)  # written before blobs: gc --dedup moves it into them
    old = json.loads(regctl_proc("du", "--json", check=True).stdout)
    assert old["total"]["logical"] == 4 * 5000 + sum(2000 + i for i in (0, 1)) * 2
    regctl_proc("gc", "--dedup", "--grace", "0s", check=True)
    new = json.loads(regctl_proc("du", "--json", check=True).stdout)
    assert new["total"]["logical"] == old["total"]["logical"]
    rows = {m["name"]: m for m in new["models"]}
    bundles = {
        n: sum(
            e["size"]
            for e in json.loads((root / "dist/dev" / n / "index.json").read_text())["versions"]
        )
        for n in ("a", "b")
    }
    # the shared file once (with "a", first by name), each own file once, the old bundles
    blobs = {"a": 5000 + 2000 + 2001, "b": 2000 + 2001}
    # the payload files (S3: the version's payload objects) are the blobs now
    assert rows["a"]["stored"] == blobs["a"] + bundles["a"]
    assert rows["b"]["stored"] == blobs["b"] + bundles["b"]
    assert old["total"]["stored"] == new["total"]["stored"] + 3 * 5000  # 4 copies, now 1
    one = json.loads(regctl_proc("du", "b", "--json", check=True).stdout)
    assert [m["name"] for m in one["models"]] == ["b"] and one["models"][0] == rows["b"]
    assert regctl_proc("du", "nope").returncode == 3
    human = regctl_proc("du", check=True).stdout
    assert "logical" in human and "total" in human
