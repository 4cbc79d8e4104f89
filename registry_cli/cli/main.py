"""The ``regctl`` entry point: the Typer app, global options, command groups.

Command modules import nothing heavy at import time (no torch, mlflow,
pyftpdlib or HTTP stack), so ``regctl --help`` and ``regctl resolve`` start fast.
"""

from __future__ import annotations

import os

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.lazy import LazyGroup, lazy_command
from registry_cli.errors import RegctlError

app = typer.Typer(
    name="regctl",
    cls=LazyGroup,
    help="A model registry on a plain filesystem: immutable checksummed versions, "
    "candidate → champion → rollback, dev → release, FTP distribution.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from registry_cli.version import __version__

        typer.echo(f"regctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    root: str | None = typer.Option(
        None,
        "--root",
        metavar="DIR",
        help="Registry root (else $REGCTL_ROOT, root: in the config, ./registry).",
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Config file (else $REGCTL_CONFIG, ./registry.yaml, <root>/registry.yaml).",
    ),
    actor: str | None = typer.Option(
        None,
        "--actor",
        help="Who is acting, for the audit log (else $REGCTL_ACTOR, the user).",
    ),
    remote: str | None = typer.Option(
        None,
        "--remote",
        metavar="URL",
        help="A registry server (regctl serve-registry) to work on instead of a root "
        "(else $REGCTL_URL, remote: in the config).",
    ),
    token_file: str | None = typer.Option(
        None,
        "--token-file",
        metavar="FILE",
        help="File holding the token for --remote (else $REGCTL_TOKEN).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or remarks."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the regctl version and exit.",
    ),
) -> None:
    """Global options come before the command: regctl --root R publish ..."""
    common.STATE.root = root
    common.STATE.config = config
    common.STATE.actor = actor
    common.STATE.debug = debug
    common.STATE.quiet = quiet
    common.STATE.remote = remote or os.environ.get("REGCTL_URL") or None
    common.STATE.token_file = token_file
    common.STATE.command = ctx.invoked_subcommand
    if common.STATE.remote:
        try:
            common.refuse_remote(ctx.invoked_subcommand, common.STATE.remote)
        except RegctlError as exc:
            common.fail(exc)
            raise typer.Exit(exc.exit_code) from None


def _register() -> None:
    from registry_cli.cli import (
        cache_cmds,
        dist_cmds,
        events_cmds,
        fleet_cmds,
        import_cmds,
        lifecycle_cmds,
        oci_cmds,
        oci_push_cmds,
        ops_cmds,
        predict_cmds,
        registry_cmds,
        server_cmds,
        trust_cmds,
    )

    registry_cmds.register(app)
    lifecycle_cmds.register(app)
    dist_cmds.register(app)
    cache_cmds.register(app)
    predict_cmds.register(app)
    ops_cmds.register(app)
    events_cmds.register(app)
    server_cmds.register(app)
    import_cmds.register(app)
    fleet_cmds.register(app)
    trust_cmds.register(app)
    oci_cmds.register(app)
    oci_push_cmds.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    if completion.COMPLETE_VAR in os.environ:  # the shell asks for completions
        return completion.complete(lambda: _run(argv))
    return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        # app() would convert every command to run one (see cli/lazy.py)
        lazy_command(app)(args=argv, prog_name="regctl")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
