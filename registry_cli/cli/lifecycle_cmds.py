"""Lifecycle commands: promote, rollback, archive, alias set/rm, tag."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from registry_cli.cli import completion
from registry_cli.cli.common import JSON_HELP, command, open_registry, print_json

if TYPE_CHECKING:
    from registry_cli.core.types import ChangeResult


def _report(result: ChangeResult, as_json: bool) -> None:
    from registry_cli.cli import render

    if as_json:
        print_json(result.to_json())
    else:
        render.change(result)


def promote(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    version: str | None = typer.Option(
        None,
        "--version",
        help="vN or @alias to promote (default: @candidate).",
        autocompletion=completion.versions_or_aliases,
    ),
    to: str | None = typer.Option(
        None, "--to", help="Target stage (default: the last).", autocompletion=completion.stages
    ),
    force: bool = typer.Option(False, "--force", help="Override failed gates (needs --reason)."),
    reason: str | None = typer.Option(None, "--reason", help="Why; recorded in the audit log."),
    no_latest: bool = typer.Option(False, "--no-latest", help="Do not move the stage's LATEST."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Promote a version into the next stage; into the last stage it becomes @champion."""
    result = open_registry().promote(
        name, version=version, to=to, force=force, reason=reason, set_latest=not no_latest
    )
    _report(result, as_json)


def rollback(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Released version to make champion (default: @rollback).",
        autocompletion=completion.versions,
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make the previous champion (or --to vN) champion again; the demoted becomes @candidate."""
    _report(open_registry().rollback(name, to=to), as_json)


def archive(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    version: str = typer.Argument(
        ..., help="Version to archive (vN).", autocompletion=completion.versions
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why; recorded in the audit log."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Archive a version for good (never the champion); its aliases are removed."""
    _report(open_registry().archive(name, version, reason=reason), as_json)


alias_app = typer.Typer(
    help="Set or remove user aliases (canary, shadow, ...).", no_args_is_help=True
)


def alias_set(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    alias: str = typer.Argument(
        ...,
        help="Alias name (not candidate/champion/rollback).",
        autocompletion=completion.aliases,
    ),
    version: str = typer.Argument(
        ..., help="Version it points at (vN).", autocompletion=completion.versions
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Point ALIAS at VERSION (moving it if it exists)."""
    _report(open_registry().set_alias(name, alias, version), as_json)


def alias_rm(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    alias: str = typer.Argument(..., help="Alias to remove.", autocompletion=completion.aliases),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove a user alias."""
    _report(open_registry().remove_alias(name, alias), as_json)


def tag(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    version: str = typer.Argument(..., help="Version (vN).", autocompletion=completion.versions),
    pairs: list[str] | None = typer.Argument(None, help="KEY=VALUE tags to set."),
    rm: list[str] | None = typer.Option(None, "--rm", help="Tag key to remove, repeatable."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Set or remove a version's tags (audited; publish-time tags stay in the manifest)."""
    from registry_cli.core.names import parse_key_values

    result = open_registry().tag(name, version, parse_key_values(pairs, "tag"), rm or [])
    _report(result, as_json)


def register(app: typer.Typer) -> None:
    app.command("promote")(command(promote))
    app.command("rollback")(command(rollback))
    app.command("archive")(command(archive))
    alias_app.command("set")(command(alias_set))
    alias_app.command("rm")(command(alias_rm))
    app.add_typer(alias_app, name="alias")
    app.command("tag")(command(tag))
