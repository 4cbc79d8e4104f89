"""``regctl doctor`` against a healthy root, a read-only one, a broken config, drift in
dist/ and an unreachable MLflow server (see docs/operations.md)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from registry_cli import ModelRegistry
from tests.conftest import regctl_cmd
from tests.test_meta import HEAVY

ROOT_CHECKS = ("root", "root free space", "root filesystem", "root writable")
TRIED = ("atomic rename", "hard links", "flock")


def doctor(*args: str, cwd: Path | None = None) -> tuple[int, list[dict[str, str]], str]:
    proc = subprocess.run(
        regctl_cmd(*args, "doctor", "--json"), capture_output=True, text=True, timeout=120, cwd=cwd
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def by_name(checks: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {c["check"]: c for c in checks}


@pytest.fixture
def healthy(root, model_file) -> ModelRegistry:
    reg = ModelRegistry(root)
    reg.publish("team/m", [model_file])
    reg.promote("team/m")
    return reg


def test_healthy_root_passes_every_check(healthy, root):
    code, checks, err = doctor("--root", str(root))
    assert code == 0, err
    assert all(list(c) == ["check", "status", "detail"] for c in checks)
    found = by_name(checks)
    for name in ("config", *ROOT_CHECKS, *TRIED, "served tree", "versions", "cache"):
        assert found[name]["status"] == "ok", found[name]
    assert found["flock"]["detail"] == "a second process finds the lock taken"
    assert found["root filesystem"]["detail"].split()[0] not in ("", "unknown")
    for extra in ("torch", "mlflow", "pyftpdlib", "fastapi", "uvicorn"):  # make install: [all]
        assert found[f"extra {extra}"]["status"] == "ok"
    assert "not configured" in found["mlflow server"]["detail"]
    assert "not configured" in found["remote registry"]["detail"]
    assert "not configured" in found["s3 root"]["detail"]
    assert not any(p.name.startswith("doctor") for p in (root / ".regctl" / "tmp").iterdir())


def test_human_output_is_one_line_per_check(healthy, root):
    proc = subprocess.run(
        regctl_cmd("--root", str(root), "doctor"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(doctor("--root", str(root))[1])
    assert all(ln.split()[0] in ("ok", "warn", "fail") for ln in lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only remount needs root (CI runs as root)")
def test_read_only_root_fails_the_write_checks(model_file):
    point = Path(tempfile.mkdtemp(prefix="regctl-doctor-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(point)], check=True)
    try:
        root = point / "reg"
        ModelRegistry(root).publish("m", [model_file])
        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        code, checks, _ = doctor("--root", str(root))
        assert code == 1
        found = by_name(checks)
        assert found["root"]["status"] == "ok"
        assert found["root filesystem"]["detail"].startswith("tmpfs")
        writable = found["root writable"]
        assert writable["status"] == "fail"
        assert f"{root} is on a read-only filesystem" in writable["detail"]
        assert "fix: remount it read-write" in writable["detail"]
        assert ".regctl" not in writable["detail"]
        assert not any(name in found for name in TRIED)  # nothing to try them in
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def test_broken_config_fails_and_names_the_file(tmp_path):
    cfg = tmp_path / "work" / "registry.yaml"
    cfg.write_text("stages: [dev, release]\nstagez: oops\n")
    code, checks, _ = doctor(cwd=cfg.parent)
    assert code == 1
    config = by_name(checks)["config"]
    assert config["status"] == "fail"
    assert f"{cfg}:2" in config["detail"] and "unknown key 'stagez'" in config["detail"]


def test_drift_in_dist_is_a_failure_with_its_fix(healthy, root):
    latest = root / "dist" / "release" / "team" / "m" / "LATEST.json"
    latest.unlink()
    code, checks, _ = doctor("--root", str(root))
    assert code == 1
    served = by_name(checks)["served tree"]
    assert served["status"] == "fail" and "fix: regctl dist rebuild" in served["detail"]
    assert subprocess.run(regctl_cmd("--root", str(root), "dist", "rebuild")).returncode == 0
    assert doctor("--root", str(root))[0] == 0


def test_missing_root_is_a_warning_with_init_as_the_fix(tmp_path):
    code, checks, _ = doctor("--root", str(tmp_path / "nowhere"))
    root = by_name(checks)["root"]
    assert root["status"] == "warn" and "regctl --root" in root["detail"]
    assert code == 0


def test_unreachable_mlflow_server_fails(healthy, root):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (root / "registry.yaml").write_text(f"mlflow:\n  tracking_uri: http://127.0.0.1:{port}\n")
    code, checks, _ = doctor("--root", str(root))
    assert code == 1
    mlflow = by_name(checks)["mlflow server"]
    assert mlflow["status"] == "fail" and f"127.0.0.1:{port} unreachable" in mlflow["detail"]


def test_doctor_imports_no_optional_part(healthy, root):
    code = (
        "import json, sys\n"
        "from registry_cli.cli.main import main\n"
        f"main(['--root', {str(root)!r}, 'doctor', '--json'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line and json.loads(line[0][6:]) == [], proc.stderr
