"""``regctl push`` to an OCI registry and ``regctl oci status|sync`` for mirrors
(docs/oci.md). The HTTP client is imported only when these commands run."""

from __future__ import annotations

from pathlib import Path

import typer

from registry_cli.cli.common import JSON_HELP, command, note, open_local, print_json

oci_app = typer.Typer(help="OCI mirrors: what is pending, and retrying it.", no_args_is_help=True)


def push(
    ref: str = typer.Argument(..., metavar="REF", help="The version: NAME, NAME:vN, NAME@alias."),
    target: str = typer.Argument(
        ..., metavar="oci://HOST[:PORT]/REPO", help="The repository to push to (no tag)."
    ),
    tags: list[str] = typer.Option([], "--tag", metavar="T", help="Also tag it T (repeatable)."),
    plain_http: bool = typer.Option(False, "--plain-http", help="Talk http, not https."),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", metavar="FILE", help="CA bundle."),
    username: str | None = typer.Option(
        None, "--username", metavar="U", help="Log in as U (with --password-env)."
    ),
    password_env: str | None = typer.Option(
        None, "--password-env", metavar="VAR", help="Read the password from this variable."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Push a version to an OCI registry as a model artifact, tagged vN and each --tag;
    only the blobs the registry lacks are sent (credentials: flags or the Docker config)."""
    from registry_cli.oci import auth
    from registry_cli.oci.push import Target, push_version
    from registry_cli.oci.reference import parse_ref

    where = parse_ref(target, reference=False)
    creds = auth.resolve(where.registry, username, password_env)
    reg = open_local()
    result = push_version(
        reg, ref, Target(where, plain_http, ca_cert, creds), tags, notify=None if as_json else note
    )
    if as_json:
        print_json(result.to_json())
        return
    typer.echo(f"{result.repository}@{result.digest}")
    typer.echo(f"tags: {', '.join(result.tags)}")
    typer.echo(f"sent {result.pushed_bytes} bytes, {result.skipped_bytes} already there")


def oci_status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the mirror pushes that failed and wait for `regctl oci sync`."""
    from registry_cli.oci import mirrors

    reg = open_local()
    pending = mirrors.pending(reg)
    old = mirrors.legacy_count(reg.store)
    if old:
        note(f"{old} push(es) in the old {mirrors.LEGACY}/ queue: `regctl oci sync` moves them")
    if as_json:
        print_json([p.to_json() for p in pending])
        return
    if not pending:
        typer.echo("nothing pending")
    for p in pending:
        typer.echo(f"{p.id}  {p.model}:v{p.version} -> {p.url} [{', '.join(p.tags)}]  {p.error}")


def oci_sync(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Retry every pending mirror push; exit 6 when some still fail."""
    from registry_cli.errors import RemoteError
    from registry_cli.oci import mirrors

    done, left = mirrors.sync(open_local(), warn=None if as_json else note)
    if as_json:
        print_json(
            {"delivered": [p.to_json() for p in done], "pending": [p.to_json() for p in left]}
        )
    else:
        typer.echo(f"delivered {len(done)}, still pending {len(left)}")
    if left:
        raise RemoteError(f"{len(left)} mirror push(es) still failing; see `regctl oci status`")


def register(app: typer.Typer) -> None:
    app.command("push")(command(push))
    oci_app.command("status")(command(oci_status))
    oci_app.command("sync")(command(oci_sync))
    app.add_typer(oci_app, name="oci")
