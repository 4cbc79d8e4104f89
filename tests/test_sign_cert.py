"""Certificate signatures: regctl sign --key K --cert C, checked by the model_signing CLI
(verify certificate) and by regctl verify --trust-ca. Real CLI subprocesses."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest

from tests.test_sign import model_signing

pytest.importorskip("model_signing")


def make_ca(folder: Path, name: str):
    """A CA certificate and a code-signing leaf certificate (with its private key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} builder")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {k: folder / f"{name}-{k}.pem" for k in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(paths["key"], 0o600)
    return paths


def test_certificate_signature(regctl_proc, tmp_path, model_file):
    good, other = make_ca(tmp_path / "pki", "acme"), make_ca(tmp_path / "pki", "evil")
    regctl_proc("publish", "team/det", str(model_file), check=True)
    proc = regctl_proc(
        "sign", "team/det:v1", "--key", str(good["key"]), "--cert", str(good["cert"]),
        "--chain", str(good["ca"]), "--signer", "acme-ci",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    vdir = tmp_path / "registry" / "models" / "team" / "det" / "v1"
    sig = vdir / "signatures" / "acme-ci.sig"
    lib = model_signing(
        "verify", "certificate", str(vdir / "payload"), "--signature", str(sig),
        "--certificate_chain", str(good["ca"]),
    )  # fmt: skip
    assert lib.returncode == 0, lib.stderr
    proc = regctl_proc("verify", "team/det:v1", "--trust-ca", str(good["ca"]), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trusted_by"] == ["acme-ci"]
    proc = regctl_proc("verify", "team/det:v1", "--trust-ca", str(other["ca"]))
    assert proc.returncode == 5
    # a certificate that does not belong to the key is refused, nothing stored
    proc = regctl_proc(
        "sign", "team/det:v1", "--key", str(other["key"]), "--cert", str(good["cert"]),
        "--chain", str(good["ca"]), "--signer", "mixed",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (vdir / "signatures" / "mixed.sig").exists()
