"""Config lookup and validation, the audit log, verify and the error funnel."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from registry_cli.core.config import load_config_file


def test_malformed_yaml_names_file_and_line(cli, root, model_file):
    root.mkdir(parents=True)
    cfg = root / "registry.yaml"
    cfg.write_text("stages: [dev, release]\ngates:\n  release:\n    metrics: {accuracy: >= 0.9\n")
    res = cli("publish", "m", str(model_file))
    assert res.exit_code == 2
    assert f"{cfg}:" in res.stderr and "invalid YAML" in res.stderr
    line = int(res.stderr.split(f"{cfg}:")[1].split(":")[0])
    assert 4 <= line <= 5
    assert not (root / "models").exists()


@pytest.mark.parametrize(
    "text,needle,line",
    [
        ("stagez: [a]\n", "unknown key 'stagez'", 1),
        (
            "format_version: 1\ngates:\n  release:\n    metrics: {acc: 'about 0.9'}\n",
            "is not OP NUMBER",
            4,
        ),
        ("gates:\n  prod: {}\n", "unknown stage 'prod'", 2),
        ("best: {mode: median}\n", "best.mode", 1),
        ("bundle:\n  compression: ultra\n", "bundle.compression", 2),
        ("stages: [dev, dev]\n", "distinct", 1),
        ("- a\n- b\n", "top level must be a mapping", None),
        ("format_version: 7\n", "unsupported format_version", 1),
        ("publish:\n  fsync: maybe\n", "publish.fsync", 2),
    ],
)
def test_config_schema_errors(tmp_path, text, needle, line):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        load_config_file(path)
    assert needle in str(exc.value)
    if line:
        assert str(exc.value).startswith(f"{path}:{line}:")


def test_config_lookup_order(tmp_path, monkeypatch, model_file):
    # ./registry.yaml in the working directory, with a relative root
    (tmp_path / "work" / "registry.yaml").write_text("root: store\nstages: [a, b, c]\n")
    reg = ModelRegistry()
    assert reg.root == (tmp_path / "work" / "store")
    assert reg.stages == ("a", "b", "c")
    # $REGCTL_CONFIG wins over ./registry.yaml
    other = tmp_path / "other.yaml"
    other.write_text("stages: [x, y]\n")
    monkeypatch.setenv("REGCTL_CONFIG", str(other))
    assert ModelRegistry().stages == ("x", "y")
    # --config (explicit) wins over the environment; a missing one is an error
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("stages: [p, q]\n")
    assert ModelRegistry(config=explicit).stages == ("p", "q")
    with pytest.raises(ValueError, match="does not exist"):
        ModelRegistry(config=tmp_path / "missing.yaml")
    # $REGCTL_ROOT beats root: in the config
    monkeypatch.setenv("REGCTL_ROOT", str(tmp_path / "envroot"))
    assert ModelRegistry().root == tmp_path / "envroot"


def test_root_config_is_read_when_no_other(tmp_path, root, cli, model_file):
    root.mkdir(parents=True)
    (root / "registry.yaml").write_text("stages: [only]\n")
    assert cli("publish", "m", str(model_file)).exit_code == 0
    assert json.loads(cli("show", "m", "--json").stdout)["stages"] == ["only"]


def test_init_creates_root_and_commented_config(cli, tmp_path):
    target = tmp_path / "fresh"
    res = cli("init", str(target), root_dir=None)
    assert res.exit_code == 0, res.stderr
    assert (target / "models").is_dir() and (target / "registry.yaml").is_file()
    load_config_file(target / "registry.yaml")  # valid
    assert cli("init", str(target), root_dir=None).exit_code == 0  # idempotent


@pytest.mark.folder_only("reads audit.jsonl, the folder's log file (s3: one object per entry)")
def test_audit_lines_have_the_spec_shape(reg, model_file, cli, root):
    reg.publish("m", [model_file])
    reg.promote("m")
    lines = (root / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        entry = json.loads(line)
        assert list(entry) == ["time", "actor", "action", "model", "version", "details"]
        assert entry["time"].endswith("Z") and entry["actor"] == "tester"
    doc = json.loads(cli("audit", "--json").stdout)
    assert [e["action"] for e in doc] == ["publish", "promote"]
    assert json.loads(cli("audit", "m", "--limit", "1", "--json").stdout)[0]["action"] == "promote"
    assert json.loads(cli("audit", "other", "--json").stdout) == []


def test_actor_from_flag_env_and_default(reg, model_file, cli, monkeypatch):
    assert (
        cli("--actor", "alice", "publish", "m", str(model_file), root_dir=reg.root).exit_code == 0
    )
    monkeypatch.setenv("REGCTL_ACTOR", "ci-bot")
    ModelRegistry(reg.root).publish("m", [model_file])
    monkeypatch.delenv("REGCTL_ACTOR")
    ModelRegistry(reg.root).publish("m", [model_file])
    actors = [e["actor"] for e in reg.audit().entries]
    assert actors[:2] == ["alice", "ci-bot"]
    assert actors[2] not in ("", None, "alice", "ci-bot")


@pytest.mark.folder_only("tears a line of the folder's audit.jsonl")
def test_torn_last_audit_line_does_not_hide_earlier_entries(reg, model_file, cli, root):
    reg.publish("m", [model_file])
    reg.publish("m", [model_file])
    with open(root / "audit.jsonl", "ab") as fh:
        fh.write(b'{"time": "2026-01-01T00:00:00Z", "actor": "x", "act')  # crash mid-line
    res = cli("audit", "--json")
    assert res.exit_code == 0
    assert [e["version"] for e in json.loads(res.stdout)] == ["v1", "v2"]
    assert "unreadable line" in res.stderr and "line 3" in res.stderr
    reg.publish("m", [model_file])  # the next append starts a fresh line
    assert [e["version"] for e in reg.audit().entries] == ["v1", "v2", "v3"]


@pytest.mark.folder_only("serves the root over FTP, which serves folders only")
def test_audit_never_holds_secrets(reg, model_file, root, tmp_path):
    """A password regctl really reads (serve-ftp and pull with --password-env) is used,
    and never lands in the audit log, the registry's or the cache's files, the server
    log or any output."""
    from tests.conftest import regctl_cmd
    from tests.ftp_helpers import FtpServer

    secret = "hunter2-secret"
    env = {"REGCTL_FTP_PASSWORD": secret}
    reg.publish("m", [model_file], params={"note": "fine"})
    reg.promote("m")
    cache = tmp_path / "cache"

    def pull(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            regctl_cmd(
                "--root", str(root), "pull", "m", "--from", server.user_url(),
                "--password-env", "REGCTL_FTP_PASSWORD", "--cache-dir", str(cache), "--json",
            ),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, REGCTL_FTP_PASSWORD=password),
        )  # fmt: skip

    with FtpServer(
        root, "--user", "mlops", "--password-env", "REGCTL_FTP_PASSWORD", "--login-delay", "0.1",
        env=env,
    ) as server:  # fmt: skip
        refused = pull("not-the-" + secret[::-1])
        pulled = pull(secret)
        log = server.log
    assert refused.returncode == 6, refused.stderr  # the server checks the password it read
    assert pulled.returncode == 0, pulled.stderr  # ... and pull sends the one it read
    assert json.loads(pulled.stdout)["version"] == "v1"
    reg.publish("m", [model_file])  # the audit goes on after the server ran
    assert [e["action"] for e in reg.audit().entries] == ["publish", "promote", "publish"]
    assert secret not in (root / "audit.jsonl").read_text()
    for text in (pulled.stdout, pulled.stderr, refused.stdout, refused.stderr, log):
        assert secret not in text and secret[::-1] not in text
    for top in (root, cache):
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                assert secret.encode() not in (Path(dirpath) / f).read_bytes(), f


@pytest.mark.folder_only("corrupts files through the local folder (tests/test_s3.py covers s3)")
def test_verify_names_each_bad_file(root, model_file, cli, tmp_path):
    # a compressed bundle is a file of its own (a level-0 one is assembled from the
    # payload); v1 holds other bytes, as a blob shared by both would be damaged in both
    ModelRegistry(root).init()
    (root / "registry.yaml").write_text("bundle: {compression: 1}\n")
    reg = ModelRegistry(root)
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    reg.publish("m", [other])
    v = reg.publish("m", [model_file])
    bad = v.path / "payload" / "model.pt"
    os.chmod(bad, 0o644)
    bad.write_bytes(b"tampered")
    bundle = v.path / "bundle.tar.gz"
    os.chmod(bundle, 0o644)
    with open(bundle, "r+b") as fh:
        fh.seek(100)
        fh.write(b"XXXX")
    res = cli("verify", "--json")
    assert res.exit_code == 5
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and isinstance(doc["checked"], int) and doc["checked"] >= 4
    paths = {p["path"] for p in doc["problems"]}
    assert str(bad) in paths and str(bundle) in paths
    assert all(p["model"] == "m" and p["version"] == "v2" for p in doc["problems"])
    assert str(bad) in res.stderr
    assert cli("verify", "nosuch").exit_code == 3


@pytest.mark.folder_only("edits files through the local folder (tests/test_s3.py covers s3)")
def test_verify_detects_extra_and_missing_files(reg, model_file, cli):
    v = reg.publish("m", [model_file])
    payload = v.path / "payload"
    os.chmod(payload, 0o755)
    (payload / "smuggled.bin").write_bytes(b"x")
    res = cli("verify")
    assert res.exit_code == 5 and "not in the manifest" in res.stdout


def test_corrupt_model_state_is_an_integrity_error(reg, model_file, cli, root):
    reg.publish("m", [model_file])
    (root / "models" / "m" / "model.yaml").write_text("format_version: 99\nkind: regctl/model\n")
    res = cli("show", "m")
    assert res.exit_code == 5 and "model.yaml" in res.stderr


def test_unexpected_errors_say_how_to_get_a_traceback(reg, model_file, cli, monkeypatch):
    reg.publish("m", [model_file])

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ModelRegistry, "get", boom)
    res = cli("show", "m")
    assert res.exit_code == 1
    assert "unexpected RuntimeError: disk on fire" in res.stderr and "--debug" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("--debug", "show", "m")
    assert res.exit_code == 1 and "Traceback" in res.stderr


@pytest.mark.folder_only("file modes exist on a folder only")
def test_read_only_payload_cannot_be_modified_by_unprivileged_writes(reg, model_file):
    v = reg.publish("m", [model_file])
    mode = stat.S_IMODE((v.path / "payload" / "model.pt").stat().st_mode)
    assert mode & 0o222 == 0
