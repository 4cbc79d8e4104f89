"""The gate gates: {release: {signed_by: [KEY...]}}: promotion needs a valid signature by
one of those keys (exit 4), --force --reason overrides it (audited). Real CLI."""

from __future__ import annotations

import json

import pytest

from tests.test_sign import make_key, tamper

pytest.importorskip("model_signing")


@pytest.fixture
def keys(tmp_path):
    return {n: make_key(tmp_path / "keys", n) for n in ("alice", "mallory")}


@pytest.fixture
def gated(regctl_proc, tmp_path, model_file, keys):
    root = tmp_path / "registry"
    root.mkdir()
    (root / "registry.yaml").write_text(
        "stages: [dev, release]\ngates:\n  release:\n    signed_by: [../keys/alice.pub]\n"
    )
    regctl_proc("publish", "team/det", str(model_file), check=True)
    return root


def promote(regctl_proc, *extra):
    return regctl_proc("promote", "team/det", "--version", "v1", "--to", "release", *extra)


def test_unsigned_is_refused(regctl_proc, gated):
    proc = promote(regctl_proc)
    assert proc.returncode == 4, proc.stderr
    assert "signed_by" in proc.stderr and "not signed" in proc.stderr


def test_wrong_key_is_refused(regctl_proc, gated, keys):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["mallory"][0]), check=True)
    proc = promote(regctl_proc)
    assert proc.returncode == 4 and "no valid signature by a trusted key" in proc.stderr


def test_tampered_byte_is_refused(regctl_proc, gated, keys):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    tamper(gated / "models" / "team" / "det" / "v1" / "payload" / "model.pt")
    proc = promote(regctl_proc)
    assert proc.returncode == 4 and "changed" in proc.stderr


def test_signed_by_a_trusted_key_passes(regctl_proc, gated, keys):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    proc = promote(regctl_proc)
    assert proc.returncode == 0, proc.stderr
    show = json.loads(regctl_proc("show", "team/det:v1", "--json", check=True).stdout)
    assert "release" in show["stages"]


def test_force_with_reason_overrides_and_is_audited(regctl_proc, gated):
    proc = promote(regctl_proc, "--force")
    assert proc.returncode == 2  # --force needs --reason
    proc = promote(regctl_proc, "--force", "--reason", "hotfix, signed later")
    assert proc.returncode == 0, proc.stderr
    audit = json.loads(regctl_proc("audit", "team/det", "--json", check=True).stdout)
    entry = [e for e in audit if e["action"] == "promote"][-1]
    assert entry["details"]["forced"] is True
    assert any("signed_by" in o for o in entry["details"]["overridden"])
    assert entry["details"]["reason"] == "hotfix, signed later"


def test_bad_signed_by_is_a_config_error(regctl_proc, gated):
    (gated / "registry.yaml").write_text(
        "stages: [dev, release]\ngates:\n  release:\n    signed_by: {a: 1}\n"
    )
    proc = promote(regctl_proc)
    assert proc.returncode == 2 and "signed_by" in proc.stderr
