"""OpenSSF model signatures of a folder, through the ``model-signing`` library.

A signature covers every file of a version's ``payload/`` folder by digest (the
library's default file serialization: sha256 per file, symlinks refused, git
files ignored), exactly as ``model_signing sign key PAYLOAD`` makes it, so
``model_signing verify key PAYLOAD --signature S --public_key K`` accepts a
regctl signature and the other way round. See docs/trust.md.

The library (and sigstore, cryptography) is imported inside the functions:
no other command pays for it at start-up. Private keys are only ever passed
to the library as paths: never read, printed, logged or copied here.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput

SIGNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


def validate_signer(name: str) -> str:
    """A signer name is one safe file-name segment (it names ``signatures/<signer>.sig``)."""
    if not SIGNER_RE.match(name or ""):
        raise BadInput(
            f"invalid signer name {name!r}",
            hint="letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def key_file(path: str | os.PathLike[str], what: str = "key") -> Path:
    """``path`` as a readable regular file, else BadInput naming it (never its content)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{what} file {p} does not exist or is not a file")
    if not os.access(p, os.R_OK):
        raise BadInput(f"{what} file {p} is not readable")
    return p


def loose_permissions(path: Path) -> bool:
    """True when a private key file is readable or writable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def default_signer(key: Path) -> str:
    """The signer name when none is given: the key file's stem, made safe."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", key.name.split(".")[0]).strip("-.") or "key"
    return stem[:100] if SIGNER_RE.match(stem) else "key"


def _hashing() -> Any:
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=True)


def sign_folder(
    folder: Path,
    private_key: Path,
    out: Path,
    *,
    certificate: Path | None = None,
    chain: tuple[Path, ...] = (),
) -> None:
    """Write the signature of ``folder`` made with the EC private key at ``private_key``;
    with ``certificate`` (and its ``chain``), a certificate signature."""
    from model_signing import signing

    try:
        if certificate is not None:
            config = signing.Config().use_certificate_signer(
                private_key=private_key, signing_certificate=certificate, certificate_chain=chain
            )
        else:
            config = signing.Config().use_elliptic_key_signer(private_key=private_key)
        config.set_hashing_config(_hashing()).sign(folder, out)
    except (ValueError, TypeError, OSError) as exc:
        raise BadInput(
            f"cannot sign with {private_key}: {type(exc).__name__}: {_short(exc)}",
            hint="the key must be a PEM elliptic-curve private key (P-256, P-384 or P-521)"
            + (
                "; --cert must be its PEM certificate, --chain its issuer(s)" if certificate else ""
            ),
        ) from None


def verify_folder(
    folder: Path, signature: Path, public_key: Path, *, ca: bool = False
) -> str | None:
    """None when ``signature`` is a valid signature of ``folder`` by ``public_key`` (with
    ``ca``: by a certificate that chains to the CA certificate(s) in that file); else why
    not, in a few words."""
    from model_signing import verifying

    try:
        if ca:
            config = verifying.Config().use_certificate_verifier(certificate_chain=[public_key])
        else:
            config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    except (ValueError, TypeError, OSError) as exc:
        raise BadInput(
            f"cannot read public key {public_key}: {_short(exc)}",
            hint="a trusted key is a PEM elliptic-curve public key",
        ) from None
    try:
        config.set_hashing_config(_hashing()).verify(folder, signature)
    except Exception as exc:  # the library raises several kinds for a bad signature
        return _short(exc)
    return None


def signed_files(signature: Path) -> list[str]:
    """The file names a signature covers, read from its (unverified) statement."""
    import base64
    import json

    try:
        bundle = json.loads(signature.read_bytes())
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        return sorted(
            str(r.get("name")) for r in statement.get("predicate", {}).get("resources", [])
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
