"""regctl import of the lightweight YAML registry and the SQLite stage registry.

Both fixtures are built here from the seeds' descriptions (schemas in
docs/import.md): ``registry.yaml`` + ``models/<name>/vN/``, and ``registry.db``
with tables ``models``, ``model_versions`` and ``audit_logs`` as the SQLite
stage registry's SQLAlchemy models define them. Includes the SIGKILL test: an
import killed midway and run again ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from registry_cli.core.versionset import VersionSet
from tests.conftest import regctl_cmd


# ----------------------------------------------------------------- YAML registry
def build_yaml_registry(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    """resnet18 v1..v3 (v2 in Production, v1 archived) and chest_xray_densenet v1
    whose file is only an s3:// URL; an audit trail of three entries."""
    sizes = sizes or {}
    for name, label in (("resnet18", "v1"), ("resnet18", "v2"), ("resnet18", "v3")):
        vdir = folder / "models" / name / label
        vdir.mkdir(parents=True)
        (vdir / f"{name}.pth").write_bytes(os.urandom(sizes.get(label, 2048)))
        (vdir / "config.json").write_text(json.dumps({"arch": name, "version": label}))
    doc = {
        "models": {
            "resnet18": {
                "description": "general vision model",
                "versions": {
                    "v1": {
                        "path": "models/resnet18/v1/resnet18.pth",
                        "metrics": {"accuracy": 0.71, "top5": 0.9},
                        "tags": {"dataset": "imagenet"},
                        "created_at": "2025-01-05 10:00:00",
                        "description": "first try",
                        "stage": "Archived",
                    },
                    "v2": {
                        "path": "models/resnet18/v2/resnet18.pth",
                        "metrics": {"accuracy": 0.76},
                        "tags": ["baseline"],
                        "params": {"lr": 0.01, "epochs": 10},
                        "created_at": "2025-01-06T10:00:00+09:00",
                        "stage": "Production",
                    },
                    "v3": {
                        "path": "models/resnet18/v3/resnet18.pth",
                        "metrics": {"accuracy": 0.79},
                        "created_at": "2025-01-07T10:00:00Z",
                        "stage": "Staging",
                    },
                },
            },
            "chest_xray_densenet": {
                "v1": {
                    "path": "s3://medical-models/densenet/v1.pth",
                    "metrics": {"auc": 0.88},
                    "created_at": "2025-01-08T10:00:00Z",
                }
            },
        },
        "audit": [
            {
                "time": "2025-01-05T10:00:00Z",
                "actor": "alice",
                "action": "register",
                "model": "resnet18",
                "version": "v1",
            },
            {
                "time": "2025-01-06T01:00:00Z",
                "actor": "bob",
                "action": "promote",
                "model": "resnet18",
                "version": "v2",
                "details": {"to": "Production"},
            },
            {
                "time": "2025-01-09T08:00:00Z",
                "actor": "alice",
                "action": "archive",
                "model": "resnet18",
                "version": "v1",
            },
        ],
    }
    (folder / "registry.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def test_yaml_registry_import(cli, reg, tmp_path):
    src = build_yaml_registry(tmp_path / "lite")
    res = cli("import", "yaml-registry", str(src), "--json")
    assert res.exit_code == 0, res.stderr  # an unfetchable URL is reported, not an error
    rows = {r["source"].rsplit("#", 1)[1]: r for r in json.loads(res.stdout)}
    assert rows["chest_xray_densenet:v1"]["action"] == "report"
    assert (
        "s3://medical-models/densenet/v1.pth cannot be fetched"
        in (rows["chest_xray_densenet:v1"]["reason"])
    )
    assert "chest_xray_densenet" not in [m.name for m in reg.list_models()]  # not invented
    versions = json.loads(cli("versions", "resnet18", "--json").stdout)["versions"]
    assert [(v["version"], v["status"], v["stages"]) for v in versions] == [
        ("v1", "archived", ["dev"]),
        ("v2", "active", ["dev", "release"]),
        ("v3", "active", ["dev"]),
    ]
    assert cli("resolve", "resnet18@champion").stdout.strip() == "v2"
    assert cli("resolve", "resnet18@candidate").stdout.strip() == "v3"
    v2 = json.loads(cli("show", "resnet18:v2", "--json").stdout)
    assert v2["created_at"] == "2025-01-06T01:00:00.000000Z"  # +09:00 in UTC
    assert v2["tags"] == {"baseline": "true"}
    assert v2["params"] == {"lr": "0.01", "epochs": "10"}
    assert {f["path"] for f in v2["files"]} == {"payload/resnet18.pth", "payload/config.json"}
    assert v2["source"]["uri"] == f"yaml-registry:{src}#resnet18:v2"
    v1 = json.loads(cli("show", "resnet18:v1", "--json").stdout)
    assert v1["metrics"] == {"accuracy": 0.71, "top5": 0.9} and v1["description"] == "first try"
    promote = [e for e in reg.audit("resnet18").entries if e["action"] == "promote"]
    assert promote[0]["details"]["reason"] == f"imported from yaml-registry {src}"
    old = [e for e in reg.audit("resnet18").entries if "imported_from" in e["details"]]
    assert [(e["time"], e["actor"], e["action"], e["version"]) for e in old] == [
        ("2025-01-05T10:00:00.000000Z", "alice", "register", "v1"),
        ("2025-01-06T01:00:00.000000Z", "bob", "promote", "v2"),
        ("2025-01-09T08:00:00.000000Z", "alice", "archive", "v1"),
    ]
    assert reg.verify().ok
    again = cli("import", "yaml-registry", str(src), "--json")
    assert again.exit_code == 0
    assert {r["action"] for r in json.loads(again.stdout)} == {"skip", "report"}
    missing = cli("import", "yaml-registry", str(src), "--model", "vgg16")
    assert missing.exit_code == 3 and "no model 'vgg16'" in missing.stderr
    only = cli("import", "yaml-registry", str(src), "--model", "resnet18", "--dry-run", "--json")
    assert {r["model"] for r in json.loads(only.stdout)} == {"resnet18"}
    assert len([e for e in reg.audit().entries if "imported_from" in e["details"]]) == 3


def test_a_gate_does_not_refuse_history(cli, reg, tmp_path):
    """Imported promotions are forced with a reason: a gate the old versions fail
    is overridden, and the audit says so."""
    src = build_yaml_registry(tmp_path / "lite")
    config = tmp_path / "registry.yaml"
    config.write_text("gates:\n  release:\n    metrics: {accuracy: '>= 0.99'}\n")
    res = cli("--config", str(config), "import", "yaml-registry", str(src))
    assert res.exit_code == 0, res.stderr
    assert cli("--config", str(config), "resolve", "resnet18@champion").stdout.strip() == "v2"
    promote = [e for e in reg.audit("resnet18").entries if e["action"] == "promote"][0]
    assert promote["details"]["forced"] is True
    assert promote["details"]["reason"] == f"imported from yaml-registry {src}"
    assert "accuracy" in promote["details"]["overridden"][0]


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda t: t.replace("stage: Staging", "stage: Staging: [", 1), "not valid YAML (line"),
        (lambda t: t.replace("auc: 0.88", "auc: high"), "metric 'auc' is not a number"),
        (lambda t: t.replace("stage: Staging", "stage: Production"), "2 Production versions"),
        (lambda t: t.replace("chest_xray_densenet:", "'bad name!':"), "invalid model name"),
        (lambda t: t.replace("stage: Staging", "stage: Canary"), "unknown stage 'Canary'"),
        (lambda t: "- just\n- a list\n", "not a mapping of models"),
    ],
)
def test_malformed_registry_yaml_is_exit_2_nothing_imported(cli, root, tmp_path, spoil, message):
    src = build_yaml_registry(tmp_path / "lite")
    path = src / "registry.yaml"
    path.write_text(spoil(path.read_text()))
    res = cli("import", "yaml-registry", str(src))
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr and "registry.yaml" in res.stderr
    assert "Traceback" not in res.stderr
    assert not root.exists()


# ----------------------------------------------------------------- SQLite registry
SCHEMA = """
CREATE TABLE models (
    id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, owner VARCHAR(100),
    description TEXT, created_at DATETIME);
CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES models (id),
    version VARCHAR(50) NOT NULL, stage VARCHAR(10) NOT NULL DEFAULT 'None',
    artifact_url TEXT, tags JSON, meta JSON, created_at DATETIME,
    CONSTRAINT uq_model_version UNIQUE (model_id, version));
CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY, ts DATETIME NOT NULL, actor VARCHAR(100), action VARCHAR(50),
    model_name VARCHAR(100), version VARCHAR(50), from_stage VARCHAR(10), to_stage VARCHAR(10),
    detail JSON);
"""


def build_sqlite_registry(folder: Path) -> Path:
    """The seed's scenario A: faq-bot 1.0.0 to Production, 1.1.0 to Production, rollback_to
    1.0.0, 1.1.0 archived; 2.0.0 only at s3:// (reported)."""
    folder.mkdir(parents=True)
    arts = folder / "artifacts"
    arts.mkdir()
    (arts / "faq-1.0.0.bin").write_bytes(b"one" * 100)
    (arts / "faq-1.1.0").mkdir()
    (arts / "faq-1.1.0" / "model.onnx").write_bytes(b"eleven" * 100)
    db = folder / "registry.db"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO models VALUES (1, 'faq-bot', 'hazel', 'Q&A bot', '2025-03-01 09:00:00')"
    )
    versions = [
        (
            1,
            "1.0.0",
            "Production",
            (arts / "faq-1.0.0.bin").as_uri(),
            '["baseline"]',
            '{"commit": "a1b2c3", "eval_f1": 0.81}',
            "2025-03-01 09:10:00",
        ),
        (
            2,
            "1.1.0",
            "Archived",
            "artifacts/faq-1.1.0",
            '["canary"]',
            '{"commit": "d4e5f6"}',
            "2025-03-02 09:10:00",
        ),
        (3, "2.0.0", "None", "s3://bucket/faq-bot/2.0.0", None, None, "2025-03-03 09:10:00"),
    ]
    for vid, label, stage, url, tags, meta, created in versions:
        conn.execute(
            "INSERT INTO model_versions VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
            (vid, label, stage, url, tags, meta, created),
        )
    audit = [
        ("2025-03-01 09:11:00", "create_version", "1.0.0", None, "None", None),
        ("2025-03-01 09:12:00", "transition", "1.0.0", "None", "Staging", None),
        ("2025-03-01 09:13:00", "transition", "1.0.0", "Staging", "Production", None),
        ("2025-03-02 09:12:00", "transition", "1.1.0", "None", "Staging", None),
        ("2025-03-02 09:13:00", "transition", "1.1.0", "Staging", "Production", None),
        (
            "2025-03-02 12:00:00",
            "transition",
            "1.0.0",
            "Staging",
            "Production",
            '{"rollback_to": true}',
        ),
        ("2025-03-02 12:30:00", "transition", "1.1.0", "Staging", "Archived", None),
    ]
    for i, (ts, action, version, frm, to, detail) in enumerate(audit, start=1):
        conn.execute(
            "INSERT INTO audit_logs VALUES (?, ?, 'hazel', ?, 'faq-bot', ?, ?, ?, ?)",
            (i, ts, action, version, frm, to, detail),
        )
    conn.commit()
    conn.close()
    return db


def test_sqlite_registry_import(cli, reg, tmp_path):
    db = build_sqlite_registry(tmp_path / "day22")
    res = cli("import", "sqlite", str(db), "--json")
    assert res.exit_code == 0, res.stderr
    rows = {r["source"].rsplit(":", 1)[1]: r for r in json.loads(res.stdout)}
    assert [(rows[k]["version"], rows[k]["action"]) for k in ("1.0.0", "1.1.0", "2.0.0")] == [
        ("v1", "imported"),
        ("v2", "imported"),
        (None, "report"),
    ]
    assert "s3://bucket/faq-bot/2.0.0 cannot be fetched" in rows["2.0.0"]["reason"]
    state = reg.model_state("faq-bot")
    assert state.aliases["champion"] == 1  # exactly one Production: the champion
    assert 2 in state.archived and state.latest["release"] == 1
    assert "rollback" not in state.all_aliases()  # the archived v2 left the history
    v1 = json.loads(cli("show", "faq-bot:v1", "--json").stdout)
    assert v1["tags"] == {"baseline": "true"}
    assert v1["metrics"] == {"eval_f1": 0.81} and v1["params"] == {"commit": "a1b2c3"}
    assert v1["created_at"] == "2025-03-01T09:10:00.000000Z"
    assert v1["created_by"] == "hazel"
    assert v1["source"]["uri"] == f"sqlite:{db}#faq-bot:1.0.0"
    v2 = json.loads(cli("show", "faq-bot:v2", "--json").stdout)
    assert [f["path"] for f in v2["files"]] == ["payload/model.onnx"]
    old = [e for e in reg.audit("faq-bot").entries if "imported_from" in e["details"]]
    assert len(old) == 7
    assert old[5]["time"] == "2025-03-02T12:00:00.000000Z" and old[5]["actor"] == "hazel"
    assert old[5]["version"] == "v1" and old[5]["details"]["rollback_to"] is True
    assert old[5]["details"]["to_stage"] == "Production"
    assert old[5]["details"]["source_version"] == "1.0.0"
    assert reg.verify().ok
    assert cli("import", "sqlite", str(db)).exit_code == 0
    assert len([e for e in reg.audit().entries if "imported_from" in e["details"]]) == 7


def test_not_sqlite_and_unknown_schema_are_exit_2(cli, root, tmp_path):
    text = tmp_path / "registry.db"
    text.write_text("models:\n  - not a database\n")
    res = cli("import", "sqlite", str(text))
    assert res.exit_code == 2 and "is not an SQLite database" in res.stderr
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    res = cli("import", "sqlite", str(other))
    assert res.exit_code == 2
    assert "unknown schema: no table 'models' (tables: experiments)" in res.stderr
    db = build_sqlite_registry(tmp_path / "two-prod")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE model_versions SET stage = 'Production' WHERE version = '2.0.0'")
    conn.commit()
    conn.close()
    res = cli("import", "sqlite", str(db))
    assert res.exit_code == 2 and "2 Production versions" in res.stderr
    res = cli("import", "sqlite", str(tmp_path / "missing.db"))
    assert res.exit_code == 2 and "is not a file" in res.stderr
    assert not root.exists()


# ----------------------------------------------------------------- SIGKILL midway
def _snapshot(root: Path) -> dict:
    """What an import decides: states, versions' facts, the old audit entries."""
    out: dict = {"models": {}, "audit": []}
    for state_file in sorted((root / "models").rglob("model.yaml")):
        name = state_file.parent.relative_to(root / "models").as_posix()
        state = json.loads(state_file.read_text())
        state.pop("stage_entered")  # when the import ran
        out["models"][name] = state
        for vdir in sorted(state_file.parent.glob("v*")):
            out["models"][f"{name}:{vdir.name}"] = json.loads((vdir / "manifest.json").read_text())
    for line in (root / "audit.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "imported_from" in entry["details"]:
            out["audit"].append(entry)
    return out


def test_sigkill_midway_then_rerun_equals_uninterrupted(tmp_path):
    sizes = {"v1": 6 << 20, "v2": 6 << 20, "v3": 6 << 20}
    src = build_yaml_registry(tmp_path / "lite", sizes)
    doc = yaml.safe_load((src / "registry.yaml").read_text())
    for n in range(4, 10):  # more versions, so the kill lands in the middle
        label = f"v{n}"
        (src / "models" / "resnet18" / label).mkdir()
        (src / "models" / "resnet18" / label / "w.pth").write_bytes(os.urandom(4 << 20))
        doc["models"]["resnet18"]["versions"][label] = {
            "metrics": {"accuracy": n / 10},
            "created_at": f"2025-02-0{n}T00:00:00Z",
        }
    (src / "registry.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    command = ["import", "yaml-registry", str(src)]

    whole = tmp_path / "whole"
    done = subprocess.run(
        regctl_cmd("--root", str(whole), *command), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        regctl_cmd("--root", str(killed), *command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = killed / "models" / "resnet18" / "model.yaml"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                listed = json.loads(state_file.read_text())["versions"]
            except (OSError, ValueError, KeyError):
                listed = None
            # at least two versions are in, and a publish is copying its payload
            count = len(list(VersionSet.parse(listed))) if listed else 0
            copying = list((killed / ".regctl" / "tmp").glob("publish-*/version/payload"))
            if 2 <= count < 9 and copying:
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it was killed"
    halfway = _snapshot(killed)
    assert 2 <= len([k for k in halfway["models"] if k.startswith("resnet18:")]) < 9

    rerun = subprocess.run(
        regctl_cmd("--root", str(killed), *command), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(killed) == _snapshot(whole)
    verify = subprocess.run(
        regctl_cmd("--root", str(killed), "verify"), capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_sigkill_while_settling_then_rerun_equals_uninterrupted(tmp_path):
    """Killed after every version is in (promotions, archive, old audit still to come)."""
    src = build_yaml_registry(tmp_path / "lite")
    command = ["import", "yaml-registry", str(src)]
    whole = tmp_path / "whole"
    done = subprocess.run(
        regctl_cmd("--root", str(whole), *command), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        regctl_cmd("--root", str(killed), *command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = killed / "models" / "resnet18" / "model.yaml"
    try:
        while proc.poll() is None:
            try:
                if json.loads(state_file.read_text())["versions"] == "1-3":
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.0005)
    finally:
        os.kill(proc.pid, signal.SIGKILL) if proc.poll() is None else None
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import finished before the kill landed"
    rerun = subprocess.run(
        regctl_cmd("--root", str(killed), *command), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert _snapshot(killed) == _snapshot(whole)
