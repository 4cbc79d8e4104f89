"""OCI commands (docs/oci.md): ``export --oci-layout`` for air gaps (its ``import
oci-layout:DIR`` counterpart is a source of ``regctl import``)."""

from __future__ import annotations

from pathlib import Path

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, note, open_local, print_json
from registry_cli.errors import BadInput


def export(
    refs: list[str] = typer.Argument(
        ..., metavar="REF...", help="Versions to export (NAME:vN, NAME@alias, NAME:latest ...)."
    ),
    oci_layout: Path | None = typer.Option(
        None,
        "--oci-layout",
        metavar="DIR",
        help="Write an OCI image layout here (created, or added to an earlier export).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export versions with their signatures and tags as an OCI image layout, for
    `skopeo copy oci:DIR:TAG docker://...` or `regctl import oci-layout:DIR`."""
    from registry_cli.oci import layout

    if oci_layout is None:
        raise BadInput("name where to write: --oci-layout DIR")
    reg = open_local()
    report = layout.export(reg, list(refs), oci_layout)
    if as_json:
        print_json(report.to_json())
        return
    console = common.stdout_console()
    for m in report.manifests:
        console.print(f"{m['name']}:{m['version']}  {m['digest']}  tags: {', '.join(m['tags'])}")
    note(
        f"wrote {oci_layout}: {report.linked} blob(s) linked, {report.copied} copied, "
        f"{report.present} already there"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(command(export))
