"""Signatures of published versions: adding them and checking them against trusted keys.

A version's files are immutable; a signature is an addition beside them,
``models/<name>/vN/signatures/<signer>.sig``, created once (never replaced),
audited as ``sign`` and served in ``dist/`` next to ``manifest.json``. A
version may carry several. See docs/trust.md for what a signature proves.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from registry_cli.core import signing
from registry_cli.errors import IntegrityError, RegctlError, RuleViolation
from registry_cli.storage import layout
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store

if TYPE_CHECKING:
    import contextlib

    from registry_cli.core.models import ModelStates
    from registry_cli.core.served.tree import ServedTree
    from registry_cli.core.state import ModelState
    from registry_cli.core.types import VersionInfo


class SigningRoot(Protocol):
    """What signing needs of a root (``core.registry.ModelRegistry`` has it); named here,
    not imported, because the registry's gate rules call into this module."""

    actor: str
    store: Store
    states: ModelStates

    @property
    def served(self) -> ServedTree: ...

    def get(self, ref: str, *, with_bundle: bool = ...) -> VersionInfo: ...

    def model_state(self, name: str) -> ModelState: ...

    def scratch(self, kind: str) -> contextlib.AbstractContextManager[Path]: ...


SIG_FOLDER = "signatures"
SIG_SUFFIX = ".sig"
INDEX = f"{SIG_FOLDER}/index.json"  # what a client reads: a served tree cannot be listed


@dataclass
class TrustReport:
    """The outcome of checking one version against trusted keys."""

    name: str
    version: str
    ok: bool = False
    trusted_by: list[str] = field(default_factory=list)  # signers with a valid trusted signature
    signatures: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "name": self.name,
            "version": self.version,
            "trusted_by": self.trusted_by,
            "signatures": self.signatures,
            "problems": self.problems,
        }

    def summary(self) -> str:
        ref = f"{self.name}:{self.version}"
        if self.ok:
            return f"{ref}: signed by {', '.join(self.trusted_by)} (trusted)"
        return f"{ref}: " + "; ".join(self.problems or ["no valid signature by a trusted key"])


def payload_problems(reg: SigningRoot, info: VersionInfo) -> list[str]:
    return _payload_problems(reg.store, info.name, info.version, info.files)


def _payload_problems(store: Store, name: str, version: int, files: list[Any]) -> list[str]:
    """Every way the version's payload differs from its manifest (changed, missing, extra)."""
    vkey = layout.version_key(name, version)
    out = []
    listed = set()
    for f in files:
        listed.add(f["path"])
        try:
            size, sha = store.hash(store.payload_key(vkey, f["path"], f["sha256"]))
        except (Missing, FileNotFoundError):
            out.append(f"{f['path']} is missing")
            continue
        if sha != f["sha256"] or size != f["size"]:
            out.append(f"{f['path']} changed (sha256 {sha}, manifest says {f['sha256']})")
    for rel in store.walk_files(f"{vkey}/payload"):
        if f"payload/{rel}" not in listed:
            out.append(f"payload/{rel} is not in the manifest")
    return out


def signature_names(store: Store, name: str, version: int) -> list[str]:
    vkey = layout.version_key(name, version)
    return [
        n[: -len(SIG_SUFFIX)]
        for n in store.children(f"{vkey}/{SIG_FOLDER}")
        if n.endswith(SIG_SUFFIX) and not n.startswith(".")
    ]


def payload_folder(reg: SigningRoot, info: VersionInfo) -> Path:
    return _local_payload(reg.store, info.name, info.version)


def _local_payload(store: Store, name: str, version: int) -> Path:
    """The payload on disk: the folder itself, or an object store's verified local copy."""
    from registry_cli.storage.open import local_version

    return local_version(store, layout.version_key(name, version)) / "payload"


def trusted_signers(
    store: Store,
    name: str,
    version: int,
    files: list[Any],
    keys: list[Path],
    cas: list[Path] | None = None,
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """``(trusted signers, every signature checked, problems)`` of one version: a
    signer is trusted when its signature is valid by one of ``keys`` and the payload
    still matches the manifest byte for byte."""
    problems = _payload_problems(store, name, version, files)
    names = signature_names(store, name, version)
    vkey = layout.version_key(name, version)
    folder = _local_payload(store, name, version) if names else Path()
    checked: list[dict[str, Any]] = []
    trusted: list[str] = []
    with tempfile.TemporaryDirectory(prefix="regctl-sig-") as tmp:
        for signer in names:
            sig = Path(tmp) / f"{signer}{SIG_SUFFIX}"  # read through the store: any backend
            sig.write_bytes(store.read(f"{vkey}/{SIG_FOLDER}/{signer}{SIG_SUFFIX}"))
            entry: dict[str, Any] = {
                "signer": signer, "valid": False, "key": None, "problem": None
            }  # fmt: skip
            for key, ca in [(k, False) for k in keys] + [(c, True) for c in cas or []]:
                why = signing.verify_folder(folder, sig, key, ca=ca)
                if why is None:
                    entry.update(valid=True, key=str(key), problem=None)
                    break
                entry["problem"] = why
            checked.append(entry)
            if entry["valid"]:
                trusted.append(signer)
    if not names:
        problems.append("the version is not signed")
    elif not trusted:
        problems.append(f"no valid signature by a trusted key (signed by {', '.join(names)})")
    return ([] if problems else trusted), checked, problems


def sign(
    reg: SigningRoot,
    ref: str,
    key: str | os.PathLike[str],
    signer: str | None = None,
    *,
    certificate: str | None = None,
    chain: list[str] | None = None,
) -> dict[str, Any]:
    """Sign the payload of ``ref`` with the private key file ``key`` (and its signing
    ``certificate`` with its ``chain``, for a certificate signature); store and audit it."""
    key_path = signing.key_file(key, "private key")
    cert = signing.key_file(certificate, "certificate") if certificate else None
    links = tuple(signing.key_file(c, "certificate chain") for c in chain or [])
    name = signing.validate_signer(signer) if signer else signing.default_signer(key_path)
    info = reg.get(ref, with_bundle=False)
    _require_intact(reg, info)
    with reg.scratch("sign") as tmp:
        out = tmp / "new.sig"
        signing.sign_folder(payload_folder(reg, info), key_path, out, certificate=cert, chain=links)
        data = out.read_bytes()
    return attach(reg, info, name, data)


def attach_file(
    reg: SigningRoot,
    ref: str,
    signature: str | os.PathLike[str],
    signer: str,
    trust: list[str],
) -> dict[str, Any]:
    """Attach a signature made elsewhere (``model_signing sign key`` over the payload),
    after checking it is a valid signature of this version by one of ``trust``."""
    from registry_cli.errors import BadInput

    sig_path = signing.key_file(signature, "signature")
    name = signing.validate_signer(signer)
    if not trust:
        raise BadInput(
            "--signature needs --trust KEY: an attached signature is verified first",
            hint="name the public key that made it",
        )
    keys = [signing.key_file(k, "public key") for k in trust]
    info = reg.get(ref, with_bundle=False)
    _require_intact(reg, info)
    folder = payload_folder(reg, info)
    why = [signing.verify_folder(folder, sig_path, k) for k in keys]
    if all(w is not None for w in why):
        raise IntegrityError(
            f"{sig_path} is not a valid signature of {info.name}:{info.vname} by a trusted key: "
            + "; ".join(w for w in why if w),
            hint="sign the version's payload folder itself (regctl show prints its path)",
        )
    return attach(reg, info, name, sig_path.read_bytes())


def attach(reg: SigningRoot, info: VersionInfo, signer: str, data: bytes) -> dict[str, Any]:
    """Store ``data`` as ``signatures/<signer>.sig`` (once), audit ``sign``, serve it."""
    rel = f"{SIG_FOLDER}/{signer}{SIG_SUFFIX}"
    key = f"{layout.version_key(info.name, info.version)}/{rel}"
    try:
        reg.store.create(key, data)
    except AlreadyExists:
        raise RuleViolation(
            f"{info.name}:{info.vname} already has a signature by {signer!r}",
            hint="a signature is never replaced; sign with another --signer name",
        ) from None
    details = {"signer": signer, "sha256": hashlib.sha256(data).hexdigest(), "path": rel}
    _add_to_index(reg, f"{layout.version_key(info.name, info.version)}/{INDEX}", details)
    entry = reg.states.audit(reg.actor, "sign", info.name, info.version, details)
    state = reg.model_state(info.name)
    reg.served.add_version_file(state, info.version, rel)
    reg.served.add_version_file(state, info.version, f"{SIG_FOLDER}/index.json")
    return {"name": info.name, "version": info.vname, **details, "time": entry["time"]}


def _add_to_index(reg: SigningRoot, key: str, item: dict[str, Any]) -> None:
    """Add ``item`` to ``signatures/index.json`` (conditional writes: never loses one)."""
    import json

    for _ in range(50):
        try:
            got = reg.store.read_tagged(key)
        except Missing:
            doc = {"signatures": [item]}
            try:
                reg.store.create(key, (json.dumps(doc, indent=2) + "\n").encode())
                return
            except AlreadyExists:
                continue
        doc = json.loads(got.data)
        doc["signatures"] = [s for s in doc.get("signatures", []) if s["signer"] != item["signer"]]
        doc["signatures"].append(item)
        try:
            reg.store.replace(key, (json.dumps(doc, indent=2) + "\n").encode(), if_match=got.tag)
            return
        except Conflict:
            continue
    raise RegctlError(f"{reg.store.location}/{key}: too many concurrent writers")


def check(
    reg: SigningRoot,
    info: VersionInfo,
    trust: list[str | os.PathLike[str]],
    trust_ca: list[str | os.PathLike[str]] | None = None,
) -> TrustReport:
    """Whether ``info`` is intact and carries a valid signature by a trusted key (or a
    certificate chaining to a trusted CA)."""
    from registry_cli.errors import BadInput

    if not trust and not trust_ca:
        raise BadInput("name at least one trusted public key (--trust KEY or --trust-ca CA)")
    keys = [signing.key_file(k, "public key") for k in trust]
    cas = [signing.key_file(c, "CA certificate") for c in trust_ca or []]
    report = TrustReport(info.name, info.vname)
    trusted, report.signatures, report.problems = trusted_signers(
        reg.store, info.name, info.version, info.files, keys, cas
    )
    report.trusted_by = [e["signer"] for e in report.signatures if e["valid"]]
    report.ok = bool(trusted)
    return report


def verify(
    reg: SigningRoot,
    ref: str,
    trust: list[str | os.PathLike[str]],
    trust_ca: list[str | os.PathLike[str]] | None = None,
) -> TrustReport:
    return check(reg, reg.get(ref, with_bundle=False), trust, trust_ca)


def _require_intact(reg: SigningRoot, info: VersionInfo) -> None:
    problems = payload_problems(reg, info)
    if problems:
        raise IntegrityError(
            f"{info.name}:{info.vname} no longer matches its manifest: {problems[0]}",
            hint="a changed version is never signed; run: regctl verify",
        )


def add_attestation(reg: SigningRoot, info: VersionInfo, name: str, data: bytes) -> None:
    """Keep an in-toto statement as ``attestations/<name>`` beside the version, served
    next to its signatures; audited as ``attest``."""
    rel = f"attestations/{name}"
    try:
        reg.store.create(f"{layout.version_key(info.name, info.version)}/{rel}", data)
    except AlreadyExists:
        raise RuleViolation(f"{info.name}:{info.vname} already has {rel}") from None
    details = {"path": rel, "sha256": hashlib.sha256(data).hexdigest()}
    reg.states.audit(reg.actor, "attest", info.name, info.version, details)
    reg.served.add_version_file(reg.model_state(info.name), info.version, rel)
