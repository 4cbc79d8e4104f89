"""``pull --require-signed --trust KEY...``: check a fetched version's signatures before
it enters the cache.

The served tree carries ``versions/vN/signatures/index.json`` (the signers) and
``signatures/<signer>.sig`` beside ``manifest.json``. The signatures are read
from the source into a private temporary folder (never into the cache) and
each is checked against the fetched, manifest-verified payload with every
trusted public key; one valid signature by a trusted key is enough. See
docs/trust.md.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from registry_cli.core.names import format_version
from registry_cli.errors import IntegrityError, NotFound
from registry_cli.pull.remote import RemoteVersion
from registry_cli.pull.transports import Transport

INDEX_LIMIT = 1 << 20
SIGNATURE_LIMIT = 4 << 20


def require_signed(
    trust: list[Path],
    transport: Transport,
    stage: str,
    name: str,
    remote: RemoteVersion,
    version_dir: Path,
) -> None:
    """With trusted keys (``--require-signed``), :func:`check_signed` the version."""
    if trust:
        what = f"{name}:{format_version(remote.version)} ({stage})"
        check_signed(transport, remote.folder(stage, name), version_dir, what, trust)


def check_signed(
    transport: Transport, folder: str, version_dir: Path, what: str, trust: list[Path]
) -> list[str]:
    """The signers of ``what`` with a valid signature by one of ``trust``, over
    ``version_dir/payload``; IntegrityError (exit 5) when there is none."""
    from registry_cli.core import signing

    try:
        raw = transport.read_small(f"{folder}/signatures/index.json", INDEX_LIMIT)
    except NotFound:
        raise IntegrityError(
            f"{what} is not signed; refusing it (--require-signed)",
            hint="sign it on the registry: regctl sign REF --key FILE",
        ) from None
    try:
        listed = json.loads(raw)["signatures"]
        signers = [(str(s["signer"]), str(s["sha256"])) for s in listed]
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{folder}/signatures/index.json is not a signature index") from None
    trusted: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="regctl-sig-") as tmp:
        for signer, sha in signers:
            signing.validate_signer(signer)
            try:
                data = transport.read_small(f"{folder}/signatures/{signer}.sig", SIGNATURE_LIMIT)
            except NotFound:
                problems.append(f"{signer}: signature missing")
                continue
            if hashlib.sha256(data).hexdigest() != sha:
                problems.append(f"{signer}: signature does not match the index")
                continue
            sig = Path(tmp) / f"{signer}.sig"
            sig.write_bytes(data)
            why = [signing.verify_folder(version_dir / "payload", sig, key) for key in trust]
            if any(w is None for w in why):
                trusted.append(signer)
            else:
                problems.append(f"{signer}: {next(w for w in why if w)}")
    if not trusted:
        detail = "; ".join(problems) if problems else "no signatures listed"
        raise IntegrityError(
            f"{what} has no valid signature by a trusted key ({detail}); refusing it",
            hint="check --trust (pull.trust) names the signer's public key",
        )
    return trusted
