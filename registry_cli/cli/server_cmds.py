"""``regctl serve-registry`` and ``regctl token create|list|revoke`` (see docs/server.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, open_local, print_json

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.core.tokens import Tokens


def _tokens(reg: ModelRegistry) -> Tokens:
    from registry_cli.core.tokens import Tokens

    return Tokens(reg.store, reg.states, reg.actor)


def serve_registry(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (default 8008; 0 picks one)."),
    anonymous_read: bool = typer.Option(
        False, "--anonymous-read", help="Let GET requests in without a token."
    ),
    tls_cert: str | None = typer.Option(None, "--tls-cert", metavar="FILE", help="HTTPS cert."),
    tls_key: str | None = typer.Option(None, "--tls-key", metavar="FILE", help="HTTPS key."),
    max_upload_size: str | None = typer.Option(
        None, "--max-upload-size", metavar="SIZE", help="Largest publish body (default 50GiB)."
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", metavar="FORMAT", help="text (default) or json: one object a line."
    ),
    drain_timeout: float | None = typer.Option(
        None,
        "--drain-timeout",
        metavar="SECONDS",
        help="On SIGTERM, how long requests in flight may finish (default 30).",
    ),
) -> None:
    """Serve this root over HTTP: the REST API, dist/ and FTP control (docs at /docs)."""
    from registry_cli.errors import BadInput
    from registry_cli.settings import SECTIONS

    reg = open_local()
    settings = SECTIONS["server"].resolve(
        {
            "host": host,
            "port": port,
            "anonymous_read": True if anonymous_read else None,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "max_upload_size": max_upload_size,
            "log_format": log_format,
            "drain_timeout_s": drain_timeout,
        },
        reg.config.section("server"),
    )
    reg.states.require_root()
    if not settings["anonymous_read"] and not _tokens(reg).any():
        raise BadInput(
            f"no API tokens in {reg.root}: nobody could use the server",
            hint="create one first: regctl token create NAME --scope read (or --anonymous-read)",
        )
    from registry_cli.httpapp import serve
    from registry_cli.server.context import ServerContext

    ctx = ServerContext(
        reg.root,
        reg.config,
        anonymous_read=settings["anonymous_read"],
        max_upload_size=settings["max_upload_size"],
        token_cache_s=settings["token_cache_s"],
        drain_timeout_s=settings["drain_timeout_s"],
        log_format=settings["log_format"],
    )
    serve(
        ctx,
        settings["host"],
        settings["port"],
        tls_cert=settings["tls_cert"],
        tls_key=settings["tls_key"],
    )


token_app = typer.Typer(
    help="API tokens of the registry server (stored as hashes under .regctl/).",
    no_args_is_help=True,
)


def token_create(
    name: str = typer.Argument(..., help="Token name (one name segment), shown in the audit."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="read, publish, promote or admin; repeatable."
    ),
    expires_days: int | None = typer.Option(
        None, "--expires-days", help="Expire after N days (default: never)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Create a token and print its secret once (only a hash is kept)."""
    new = _tokens(open_local()).create(name, scope, expires_days)
    if as_json:
        print_json(new.to_json())
        return
    expiry = f", expires {new.token.expires_at}" if new.token.expires_at else ""
    common.note(f"token {name} (scopes: {', '.join(new.token.scopes)}{expiry}); shown once:")
    typer.echo(new.secret)


def token_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List tokens: name, scopes, created, by whom, expiry (never a secret)."""
    tokens = _tokens(open_local()).list_tokens()
    if as_json:
        print_json([t.to_json() for t in tokens])
        return
    if not tokens:
        typer.echo("no tokens (create one with: regctl token create NAME --scope read)")
        return
    for t in tokens:
        expiry = t.expires_at or "never"
        state = " (expired)" if t.expired() else ""
        typer.echo(
            f"{t.name}  scopes={','.join(t.scopes)}  created {t.created_at[:19]} by "
            f"{t.created_by}  expires {expiry}{state}"
        )


def token_revoke(name: str = typer.Argument(..., help="Token to revoke.")) -> None:
    """Revoke a token; the server refuses it from the next request on."""
    _tokens(open_local()).revoke(name)
    typer.echo(f"revoked token {name}")


def register(app: typer.Typer) -> None:
    app.command("serve-registry")(command(serve_registry))
    token_app.command("create")(command(token_create))
    token_app.command("list")(command(token_list))
    token_app.command("revoke")(command(token_revoke))
    app.add_typer(token_app, name="token")
