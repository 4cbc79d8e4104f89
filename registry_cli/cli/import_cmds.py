"""``regctl import``: move whole registries in from the systems regctl replaces (docs/import.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, note, open_local, print_json
from registry_cli.errors import BadInput, IntegrityError


def _password(spec: Any, password_env: str | None, password_file: Path | None) -> str | None:
    from registry_cli.settings import read_password_env, read_password_file

    if password_env and password_file:
        raise BadInput("give --password-env or --password-file, not both")
    if (password_env or password_file) and spec.kind != "ftp":
        raise BadInput("--password-env/--password-file apply to ftp:// sources only")
    if password_env:
        return read_password_env(password_env)
    if password_file:
        return read_password_file(password_file)
    if spec.kind == "ftp" and "@" in spec.source.split("://", 1)[1].split("/", 1)[0]:
        if not sys.stdin.isatty():
            raise BadInput(
                f"no password for {spec.source}",
                hint="give --password-env VAR or --password-file FILE",
            )
        import getpass

        return getpass.getpass(f"password for {spec.source}: ")
    return None


def _table(rows: list[Any]) -> None:
    from rich.table import Table

    console = common.stdout_console()
    if not rows:
        console.print("nothing to import: the source holds no versions")
        return
    table = Table(box=None, header_style="bold")
    for col in ("model", "version", "source", "action", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.model, r.version or "-", r.source, r.action, r.reason or "")
    console.print(table)


def import_registry(
    source: str = typer.Argument(
        ...,
        metavar="SOURCE",
        help="mlflow://HOST:PORT, ftp://USER@HOST:PORT, yaml-registry, sqlite, "
        "oci-layout:DIR (a regctl export), or the PATH of an old FTP registry tree.",
    ),
    path: str | None = typer.Argument(
        None, metavar="[PATH]", help="The folder (yaml-registry) or registry.db (sqlite)."
    ),
    models: list[str] = typer.Option(
        [], "--model", metavar="NAME", help="Import only this model (repeatable)."
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (overrides mlflow://HOST:PORT)."
    ),
    password_env: str | None = typer.Option(
        None, "--password-env", metavar="VAR", help="Read the FTP password from this variable."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="FILE", help="Read the FTP password from this file."
    ),
    plain_http: bool = typer.Option(
        False, "--plain-http", help="An oci:// registry speaks plain http (docs/oci.md)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Write nothing; print the plan (import / skip / report)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Import every version (with facts, stages, aliases, audit) from an old registry;
    rerunning imports only what is new."""
    from registry_cli.importers import SourceSpec, execute, make_plan, read_source
    from registry_cli.storage import faults

    spec = SourceSpec(source=source, path=path, models=list(models), tracking_uri=tracking_uri)
    if plain_http and spec.kind != "oci":
        raise BadInput("--plain-http applies to oci:// sources only")
    spec.plain_http = plain_http
    spec.check()
    spec.password = _password(spec, password_env, password_file)
    reg = open_local()
    found = read_source(spec, reg.config)
    try:
        plan = make_plan(reg, found)
        if dry_run:
            for remark in found.notes:
                note(f"note: {remark}")
            if as_json:
                print_json([r.to_json() for r in plan.rows])
            else:
                _table(plan.rows)
            return
        needed = plan.bytes_to_fetch()
        if needed and common.STATE.registry_root is not None:  # a folder root (not s3://)
            faults.check_free_space(
                common.STATE.registry_root,
                2 * needed,
                "import",
                found.display,
                what="payload + bundle",
            )
        report = execute(reg, plan, notify=None if as_json else note)
    finally:
        found.close()
    for remark in report.notes:
        note(f"note: {remark}")
    if as_json:
        print_json([r.to_json() for r in report.rows])
    else:
        _table(report.rows)
        note(
            f"imported {report.imported} version(s) from {found.display}"
            + (
                f"; {report.audit_appended} old audit entr(ies) appended"
                if report.audit_appended
                else ""
            )
        )
    reported = sum(1 for r in report.rows if r.action == "report") - report.bad
    if reported:
        note(f"note: {reported} version(s) reported and not imported (see the rows marked report)")
    if report.bad:
        bad = IntegrityError(
            f"{report.bad} version(s) failed their checks and were not imported (the others were)",
            hint="see the rows marked report; fix the source and rerun to import them",
        )
        common.fail(bad)
        raise typer.Exit(bad.exit_code)


def register(app: typer.Typer) -> None:
    app.command("import")(command(import_registry))
