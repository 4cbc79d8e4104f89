"""sign and verify --trust on an object-store root (moto's S3 server), real CLI."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import regctl_cmd
from tests.test_sign import make_key

pytest.importorskip("model_signing")


def test_sign_and_verify_on_an_s3_root(s3_root, tmp_path, model_file):
    alice, mallory = make_key(tmp_path / "k", "alice"), make_key(tmp_path / "k", "mallory")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            regctl_cmd("--root", str(s3_root), *args),
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )

    assert run("publish", "team/det", str(model_file)).returncode == 0
    assert run("verify", "team/det:v1", "--trust", str(alice[1])).returncode == 5
    proc = run("sign", "team/det:v1", "--key", str(alice[0]))
    assert proc.returncode == 0, proc.stderr
    assert (s3_root / "models" / "team" / "det" / "v1" / "signatures" / "alice.sig").exists()
    proc = run("verify", "team/det:v1", "--trust", str(alice[1]), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trusted_by"] == ["alice"]
    assert run("verify", "team/det:v1", "--trust", str(mallory[1])).returncode == 5
    served = s3_root / "dist" / "dev" / "team" / "det" / "versions" / "v1" / "signatures"
    assert (served / "alice.sig").exists() and (served / "index.json").exists()
