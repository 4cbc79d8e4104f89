"""regctl sign / verify --trust, checked against the model-signing library's own CLI.

Every regctl call is the real CLI in a subprocess; ``model_signing`` (the
OpenSSF reference CLI) is the independent verifier and signer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("model_signing")


def make_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files (private 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder / f"{name}.pem", folder / f"{name}.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(priv, 0o600)
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def keys(tmp_path):
    return {n: make_key(tmp_path / "keys", n) for n in ("alice", "mallory")}


@pytest.fixture
def published(regctl_proc, tmp_path, model_file):
    (model_file.parent / "config.json").write_text('{"layers": 3}')
    regctl_proc("publish", "team/det", str(model_file.parent), check=True)
    return tmp_path / "registry" / "models" / "team" / "det" / "v1"


def tamper(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def test_regctl_signature_verifies_with_model_signing_cli(regctl_proc, published, keys, tmp_path):
    priv, pub = keys["alice"]
    proc = regctl_proc("sign", "team/det:v1", "--key", str(priv), "--json", check=True)
    done = json.loads(proc.stdout)
    assert done["signer"] == "alice" and done["path"] == "signatures/alice.sig"
    assert str(priv) not in proc.stdout + proc.stderr
    sig = published / "signatures" / "alice.sig"
    assert sig.is_file()
    lib = model_signing(
        "verify", "key", str(published / "payload"), "--signature", str(sig),
        "--public_key", str(pub),
    )  # fmt: skip
    assert lib.returncode == 0, lib.stderr
    # the wrong key is refused by the library too
    lib = model_signing(
        "verify", "key", str(published / "payload"), "--signature", str(sig),
        "--public_key", str(keys["mallory"][1]),
    )  # fmt: skip
    assert lib.returncode != 0
    # audited as sign, and nothing about the key file
    audit = json.loads(regctl_proc("audit", "team/det", "--json", check=True).stdout)
    signs = [e for e in audit if e["action"] == "sign"]
    assert len(signs) == 1 and signs[0]["version"] == "v1"
    assert signs[0]["details"]["signer"] == "alice"
    assert "pem" not in json.dumps(signs[0]) and "PRIVATE" not in json.dumps(signs[0])
    assert not list((tmp_path / "registry").rglob("*.pem"))
    # served next to manifest.json in dist/
    served = tmp_path / "registry" / "dist" / "dev" / "team" / "det" / "versions" / "v1"
    assert (served / "signatures" / "alice.sig").read_bytes() == sig.read_bytes()
    assert regctl_proc("verify").returncode == 0  # dist/ is consistent with the signature
    # dist rebuild reproduces the served signatures from models/
    shutil.rmtree(served.parent)
    regctl_proc("dist", "rebuild", check=True)
    assert (served / "signatures" / "alice.sig").read_bytes() == sig.read_bytes()
    assert (served / "signatures" / "index.json").is_file()


def test_verify_trust_accepts_and_refuses(regctl_proc, published, keys):
    priv, pub = keys["alice"]
    # unsigned: exit 5
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub))
    assert proc.returncode == 5 and "not signed" in proc.stderr
    regctl_proc("sign", "team/det:v1", "--key", str(priv), check=True)
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["trusted_by"] == ["alice"]
    # a key that is not trusted: exit 5
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(keys["mallory"][1]))
    assert proc.returncode == 5 and "no valid signature by a trusted key" in proc.stderr
    # one trusted key among several is enough
    proc = regctl_proc(
        "verify", "team/det:v1", "--trust", str(keys["mallory"][1]), "--trust", str(pub)
    )
    assert proc.returncode == 0, proc.stderr
    # one changed byte: exit 5
    tamper(published / "payload" / "src" / "model.pt")
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub))
    assert proc.returncode == 5 and "changed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_signing_cli_signature_attaches_and_verifies(regctl_proc, published, keys, tmp_path):
    priv, pub = keys["alice"]
    pulled = json.loads(
        regctl_proc(
            "pull",
            "team/det",
            "--version",
            "v1",
            "--from",
            str(tmp_path / "registry"),
            "--stage",
            "dev",
            "--json",
            check=True,
        ).stdout
    )
    payload = Path(pulled["path"]) / "payload"
    assert payload.is_dir()
    sig = tmp_path / "ci.sig"
    lib = model_signing(
        "sign", "key", str(payload), "--private_key", str(priv), "--signature", str(sig)
    )
    assert lib.returncode == 0, lib.stderr
    # attaching needs the key that made it, and a wrong one is refused (nothing stored)
    proc = regctl_proc(
        "sign", "team/det:v1", "--signature", str(sig), "--signer", "ci",
        "--trust", str(keys["mallory"][1]),
    )  # fmt: skip
    assert proc.returncode == 5
    assert not (published / "signatures" / "ci.sig").exists()
    regctl_proc(
        "sign", "team/det:v1", "--signature", str(sig), "--signer", "ci", "--trust", str(pub),
        check=True,
    )  # fmt: skip
    assert (published / "signatures" / "ci.sig").read_bytes() == sig.read_bytes()
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trusted_by"] == ["ci"]


def test_several_signatures_and_no_replacement(regctl_proc, published, keys, tmp_path):
    regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]), check=True)
    regctl_proc("sign", "team/det:v1", "--key", str(keys["mallory"][0]), check=True)
    before = (published / "signatures" / "alice.sig").read_bytes()
    proc = regctl_proc("sign", "team/det:v1", "--key", str(keys["mallory"][0]), "--signer", "alice")
    assert proc.returncode == 4 and "already has a signature" in proc.stderr
    assert (published / "signatures" / "alice.sig").read_bytes() == before
    names = sorted(p.name for p in (published / "signatures").iterdir())
    assert names == ["alice.sig", "index.json", "mallory.sig"]
    # the version's own files did not change
    assert regctl_proc("verify").returncode == 0


def test_sign_bad_input(regctl_proc, published, keys, tmp_path):
    priv, _pub = keys["alice"]
    proc = regctl_proc("sign", "team/det:v1", "--key", str(tmp_path / "nope.pem"))
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    os.chmod(garbage, 0o600)
    proc = regctl_proc("sign", "team/det:v1", "--key", str(garbage))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = regctl_proc("sign", "team/det:v1", "--key", str(priv), "--signer", "../x")
    assert proc.returncode == 2
    proc = regctl_proc("sign", "team/det:v9", "--key", str(priv))
    assert proc.returncode == 3
    assert not (published / "signatures").exists()


def test_loose_key_permissions_warn(regctl_proc, published, keys):
    priv, _pub = keys["alice"]
    os.chmod(priv, 0o644)
    proc = regctl_proc("sign", "team/det:v1", "--key", str(priv), check=True)
    assert "warning:" in proc.stderr and "readable by group or others" in proc.stderr
    assert "PRIVATE KEY" not in proc.stderr + proc.stdout


def test_tampered_payload_is_never_signed(regctl_proc, published, keys):
    tamper(published / "payload" / "src" / "config.json")
    proc = regctl_proc("sign", "team/det:v1", "--key", str(keys["alice"][0]))
    assert proc.returncode == 5 and "no longer matches its manifest" in proc.stderr
    assert not (published / "signatures").exists()


@pytest.mark.parametrize("args", [["--help"], ["list"], ["pull", "--help"], ["sign", "--help"]])
def test_trust_libraries_stay_off_the_start_up_path(args, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "registry_cli", "--root", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    assert "registry_cli" in loaded  # the import log is real
    heavy = {"model_signing", "sigstore", "cyclonedx", "license_expression", "markdown_it"}
    assert not loaded & heavy


def test_damaged_signature_or_bad_trusted_key(regctl_proc, published, keys, tmp_path):
    priv, pub = keys["alice"]
    regctl_proc("sign", "team/det:v1", "--key", str(priv), check=True)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key\n")
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(garbage))
    assert proc.returncode == 2 and "public key" in proc.stderr and "Traceback" not in proc.stderr
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(tmp_path / "missing.pub"))
    assert proc.returncode == 2
    sig = published / "signatures" / "alice.sig"
    doc = json.loads(sig.read_text())
    doc["dsseEnvelope"]["signatures"][0]["sig"] = (
        "AAAA" + doc["dsseEnvelope"]["signatures"][0]["sig"][4:]
    )
    os.chmod(sig, 0o644)
    sig.write_text(json.dumps(doc))
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub))
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    sig.write_text("{broken")
    proc = regctl_proc("verify", "team/det:v1", "--trust", str(pub), "--json")
    assert proc.returncode == 5
    assert json.loads(proc.stdout)["signatures"][0]["valid"] is False
