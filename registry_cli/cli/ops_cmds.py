"""Operations commands: ``doctor`` (is this machine fit to hold the registry?)."""

from __future__ import annotations

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, print_json


def doctor(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Check the root (space, filesystem, rename, hard links, flock), config, dist/, cache,
    extras and the MLflow server; one line per check. Exit 1 when a check fails."""
    from registry_cli import doctor as checks

    results = checks.run(common.STATE.root, common.STATE.config, common.open_registry)
    if as_json:
        print_json([c.to_json() for c in results])
    else:
        width = max(len(c.check) for c in results)
        for c in results:
            fix = f" (fix: {c.fix})" if c.fix else ""
            typer.echo(f"{c.status:<4}  {c.check:<{width}}  {c.detail}{fix}")
    raise typer.Exit(checks.exit_code(results))


def register(app: typer.Typer) -> None:
    app.command("doctor")(command(doctor))
