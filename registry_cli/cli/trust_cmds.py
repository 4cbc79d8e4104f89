"""Commands of trust: sign, and verify with --trust (signatures); bom (ML-BOM).

See docs/trust.md. Nothing here imports the signing or BOM libraries at
module level: ``regctl --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.common import JSON_HELP, command, open_local, print_json

REF_HELP = "NAME, NAME:vN, NAME:latest, NAME:best or NAME@alias."
TRUST_HELP = "A trusted public key (PEM), repeatable: one valid signature by any of them is enough."


def warn_loose_key(key: str | Path) -> None:
    """A private key readable by group or others is a warning (never its content)."""
    from registry_cli.core.signing import loose_permissions

    if loose_permissions(Path(key)):
        typer.echo(
            f"warning: private key {key} is readable by group or others (chmod 600 it)",
            err=True,
        )


def sign(
    ref: str = typer.Argument(..., help=REF_HELP, autocompletion=completion.references),
    key: str | None = typer.Option(
        None, "--key", metavar="FILE", help="PEM elliptic-curve private key to sign with."
    ),
    signer: str | None = typer.Option(
        None, "--signer", metavar="NAME", help="Names signatures/NAME.sig (default: key's name)."
    ),
    signature: str | None = typer.Option(
        None,
        "--signature",
        metavar="FILE",
        help="Attach a signature made elsewhere (model_signing sign key over the payload); "
        "verified with --trust first.",
    ),
    trust: list[str] | None = typer.Option(
        None, "--trust", metavar="KEY", help="With --signature: the public key that made it."
    ),
    cert: str | None = typer.Option(
        None, "--cert", metavar="FILE", help="With --key: its signing certificate (PEM)."
    ),
    chain: list[str] | None = typer.Option(
        None, "--chain", metavar="FILE", help="With --cert: intermediate certificates."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sign a version's payload (OpenSSF model signing); the signature is stored beside it."""
    from registry_cli.core import signatures
    from registry_cli.errors import BadInput

    if (key is None) == (signature is None):
        raise BadInput("give exactly one of --key FILE (sign) or --signature FILE (attach)")
    if (cert is None) != (not chain) or (cert is not None and key is None):
        raise BadInput("--cert needs --key and --chain (the issuing CA certificate(s))")
    reg = open_local()
    if key is not None:
        warn_loose_key(key)
        done = signatures.sign(reg, ref, key, signer, certificate=cert, chain=list(chain or []))
    else:
        if not signer:
            raise BadInput("--signature needs --signer NAME (it names signatures/NAME.sig)")
        done = signatures.attach_file(reg, ref, signature or "", signer, list(trust or []))
    if as_json:
        print_json(done)
    elif not common.STATE.quiet:
        typer.echo(f"signed {done['name']}:{done['version']} as {done['signer']} ({done['path']})")


def verify_trusted(ref: str, trust: list[str], as_json: bool, trust_ca: list[str]) -> None:
    """``regctl verify REF --trust KEY...``: exit 5 without a valid trusted signature or
    when any byte changed."""
    from registry_cli.core import signatures

    report = signatures.verify(open_local(), ref, list(trust), list(trust_ca))
    if as_json:
        print_json(report.to_json())
    elif report.ok:
        typer.echo(report.summary())
    if not report.ok:
        typer.echo(f"error: {report.summary()}", err=True)
        raise typer.Exit(5)


class PublishTrust:
    """What ``publish --sign-key/--attestation`` does once the version exists."""

    def __init__(self, sign_key: str | None, attestation: bytes | None, name: str) -> None:
        self.sign_key = sign_key
        self.attestation = attestation
        self.attestation_name = name

    def after_publish(self, reg: Any, info: Any) -> Any:
        if self.attestation is None and self.sign_key is None:
            return info  # nothing to sign: the signing code is not even loaded
        from registry_cli.core import signatures

        ref = f"{info.name}:{info.vname}"
        if self.attestation is not None:
            signatures.add_attestation(reg, info, self.attestation_name, self.attestation)
        if self.sign_key is not None:
            signatures.sign(reg, ref, self.sign_key)
        return info


def publish_extras(
    reg: Any,
    kwargs: dict[str, Any],
    license: str | None,
    card: str | None,
    sign_key: str | None,
    attestation: str | None,
) -> PublishTrust:
    """Check ``publish --license/--card/--sign-key/--attestation`` before anything is
    published (exit 2 on bad input) and add the facts (and ``source.ci``) to ``kwargs``."""
    from registry_cli.errors import BadInput

    given = [f for f, v in (("--license", license), ("--card", card), ("--sign-key", sign_key),
                            ("--attestation", attestation)) if v is not None]  # fmt: skip
    if getattr(reg, "remote", False):
        if given:
            raise BadInput(f"{', '.join(given)} do(es) not work with a registry server yet")
        return PublishTrust(None, None, "")
    from registry_cli.core import provenance, signing

    facts = provenance.publish_facts(license=license, card=card)
    if facts:
        kwargs["facts"] = facts
    if sign_key is not None:
        signing.key_file(sign_key, "private key")
        warn_loose_key(sign_key)
    data, name = None, ""
    if attestation is not None:
        data = provenance.read_attestation(attestation)
        name = signing.default_signer(Path(attestation)) + ".intoto.jsonl"
    return PublishTrust(sign_key, data, name)


def bom(
    ref: str = typer.Argument(..., help=REF_HELP, autocompletion=completion.references),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the BOM here (default: stdout)."
    ),
) -> None:
    """Write a CycloneDX 1.6 ML-BOM (JSON) of a version: model, hashes, license, card
    facts and metrics, files, lineage."""
    import json

    from registry_cli.core.bom import build_bom

    reg = open_local()
    info = reg.get(ref)
    doc = build_bom(info, reg.served.manifest_sha256(info.name, info.version))
    text = json.dumps(doc, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    from registry_cli.storage.atomic import atomic_write_bytes

    atomic_write_bytes(Path(output), text.encode())
    if not common.STATE.quiet:
        typer.echo(f"wrote {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command("sign")(command(sign))
    app.command("bom")(command(bom))
