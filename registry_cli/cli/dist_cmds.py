"""Distribution commands: ``dist rebuild``, ``serve-ftp`` and ``pull``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.common import JSON_HELP, command, open_local, print_json
from registry_cli.errors import BadInput

dist_app = typer.Typer(
    help="The served tree dist/ (what serve-ftp and pull --from PATH read).", no_args_is_help=True
)


def dist_rebuild(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    bundles: bool = typer.Option(
        False,
        "--bundles",
        help="Also write bundle.tar.gz files for versions whose bundle is assembled "
        "when read (for a plain static server of dist/).",
    ),
) -> None:
    """Regenerate dist/ from models/: index.json, LATEST files and version links."""
    reg = open_local()
    report = reg.rebuild_dist()
    written: list[str] = []
    if bundles:
        from registry_cli.core.served.bundle_files import write_bundles

        written = write_bundles(reg.store, reg.states, reg.served)
    if as_json:
        print_json({**report.to_json(), **({"bundles": written} if bundles else {})})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    for path in report.removed:
        typer.echo(f"removed {path}")
    for path in report.repaired:
        typer.echo(f"repaired {path}")
    typer.echo(
        f"dist rebuilt: {report.models} model(s), {report.stages} stage folder(s), "
        f"{len(report.linked)} version folder(s) created, {len(report.repaired)} "
        f"file(s) repaired, {len(report.removed)} stale entr(ies) removed"
    )


def _load_config() -> Any:
    from registry_cli.core.config import resolve_root_and_config

    return resolve_root_and_config(common.STATE.root, common.STATE.config)


def serve_ftp(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all)."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Control port (default 2121; 0 picks a free one)."
    ),
    user: str | None = typer.Option(None, "--user", help="The read-only login."),
    password_env: str | None = typer.Option(
        None, "--password-env", metavar="VAR", help="Read the password from this variable."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="FILE", help="Read the password from this file."
    ),
    anonymous: bool = typer.Option(
        False, "--anonymous", help="Also allow anonymous logins (read-only too)."
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", metavar="FILE", help="Certificate (PEM): FTPS, TLS required."
    ),
    tls_key: Path | None = typer.Option(
        None, "--tls-key", metavar="FILE", help="Private key (PEM) for --tls-cert."
    ),
    passive_ports: str | None = typer.Option(
        None, "--passive-ports", metavar="A-B", help="Passive data port range, e.g. 60000-60099."
    ),
    masquerade_address: str | None = typer.Option(
        None, "--masquerade-address", help="Address to announce in PASV replies (behind NAT)."
    ),
    max_cons: int | None = typer.Option(
        None, "--max-cons", help="Maximum connections in total (default 256)."
    ),
    max_cons_per_ip: int | None = typer.Option(
        None, "--max-cons-per-ip", help="Maximum connections per client address (default 32)."
    ),
    login_delay: float | None = typer.Option(
        None, "--login-delay", help="Seconds before answering a failed login (default 2)."
    ),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Append the connection log here instead of stderr."
    ),
) -> None:
    """Serve dist/ read-only over FTP (FTPS with --tls-cert/--tls-key) until SIGTERM or Ctrl-C."""
    from registry_cli.ftp.server import serve
    from registry_cli.ftp.settings import server_settings

    root, cfg = _load_config()
    if isinstance(root, str):  # an s3://BUCKET/PREFIX root (see docs/object-storage.md)
        from registry_cli.errors import BadInput

        raise BadInput(
            f"serve-ftp serves a folder; {root} is in object storage",
            hint="serve it with: regctl serve-registry (or any static server of its dist/)",
        )
    flags = {
        "host": host,
        "port": port,
        "user": user,
        "password_env": password_env,
        "password_file": password_file and str(password_file),
        "anonymous": anonymous or None,
        "passive_ports": passive_ports,
        "masquerade_address": masquerade_address,
        "max_cons": max_cons,
        "max_cons_per_ip": max_cons_per_ip,
        "login_delay_s": login_delay,
        "tls_cert": tls_cert and str(tls_cert),
        "tls_key": tls_key and str(tls_key),
        "log_file": log_file and str(log_file),
    }
    serve(server_settings(root, cfg, flags))


def pull(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    source: str | None = typer.Option(
        None,
        "--from",
        metavar="URL|PATH",
        help="ftp://USER@HOST:PORT (ftps:// for TLS; port defaults to 2121), "
        "http(s)://HOST[:PORT][/BASE] (a serve-registry root or a static server of dist/), "
        "or a folder: a registry root or a served tree (else pull.from in the config).",
    ),
    stage: str | None = typer.Option(
        None,
        "--stage",
        help="Stage to pull from (default: pull.stage, else the last stage).",
        autocompletion=completion.stages,
    ),
    version: str = typer.Option("latest", "--version", help="latest or vN."),
    password_env: str | None = typer.Option(
        None, "--password-env", metavar="VAR", help="Read the FTP password from this variable."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="FILE", help="Read the FTP password from this file."
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        metavar="DIR",
        help="Cache root (else $REGCTL_CACHE_DIR, pull.cache_dir, the torch hub dir).",
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Do not contact the server: use the newest cached version."
    ),
    token_env: str | None = typer.Option(
        None,
        "--token-env",
        metavar="VAR",
        help="Read the bearer token for an http(s):// source from this variable "
        "(default: $REGCTL_TOKEN when set).",
    ),
    ca_cert: Path | None = typer.Option(
        None,
        "--ca-cert",
        metavar="FILE",
        help="CA certificate(s) for an ftps:// or https:// server.",
    ),
    bundle: bool = typer.Option(
        False,
        "--bundle",
        help="Download the bundle and unpack it, even where the tree allows a per-file pull.",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Network timeout in seconds (default 30)."
    ),
    alias: str | None = typer.Option(
        None, "--alias", help="Follow this alias (aliases.json of the stage), e.g. ring-canary."
    ),
    report: bool = typer.Option(
        False, "--report", help="Report the pull to the registry server (fleet.report_url)."
    ),
    report_file: Path | None = typer.Option(
        None, "--report-file", metavar="FILE", help="Append the report to FILE instead."
    ),
    device: str | None = typer.Option(
        None, "--device", help="This device's id in reports (default: the host name)."
    ),
    ring: str | None = typer.Option(None, "--ring", help="This device's ring (default: default)."),
    require_signed: bool | None = typer.Option(
        None,
        "--require-signed",
        help="Refuse a version without a valid signature by a --trust key, before it "
        "enters the cache (exit 5; else pull.require_signed).",
    ),
    trust: list[str] | None = typer.Option(
        None, "--trust", metavar="KEY", help="A trusted public key (PEM), repeatable."
    ),
    plain_http: bool = typer.Option(
        False, "--plain-http", help="An oci:// source speaks plain http (docs/oci.md)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Download and verify a version into the local cache (file by file, resumable, or
    its bundle); print its paths."""
    from registry_cli.pull import configure

    _root, cfg = _load_config()
    flags = {
        "from": source,
        "stage": stage,
        "password_env": password_env,
        "password_file": password_file and str(password_file),
        "cache_dir": cache_dir and str(cache_dir),
        "token_env": token_env,
        "ca_cert": ca_cert and str(ca_cert),
        "timeout_s": timeout,
        "require_signed": require_signed or None,
        "trust": tuple(trust) if trust else None,
    }
    setup = configure(cfg, flags, prompt=_prompt_password)
    if plain_http:
        if setup.puller.source.kind != "oci":
            raise BadInput("--plain-http applies to an oci:// source only")
        import dataclasses

        setup.puller.source = dataclasses.replace(setup.puller.source, tls=False)
    if offline and setup.puller.trust:
        raise BadInput("--require-signed cannot check signatures with --offline")

    from registry_cli.cli.fleet_cmds import pull_reporter  # off the start-up path

    reporter = pull_reporter(cfg, setup, report, report_file, device, ring, alias, version)
    progress = None if as_json else common.progress_factory(f"{name} ")
    try:
        from registry_cli.pull.fleet import pull_and_report

        result = pull_and_report(
            setup.puller,
            reporter,
            name,
            stage=setup.stage,
            version=version,
            alias=alias,
            offline=offline,
            progress=progress,
            bundle=bundle,
        )
    finally:
        common.stop_progress(progress)
    if as_json:
        print_json(result.to_json())
        return
    how = "cached" if result.cached else f"pulled from {result.source}"
    if result.offline:
        how = "offline: newest cached version"
    typer.echo(f"{result.name}:{result.version} ({result.stage}) {how}")
    typer.echo(f"path: {result.path}")
    typer.echo(f"preferred weight: {result.preferred_weight_path}")


def _prompt_password(where: str) -> str:
    if not sys.stdin.isatty():
        raise BadInput(
            f"no password for {where}",
            hint="give --password-env VAR or --password-file FILE (no terminal to prompt on)",
        )
    import getpass

    return getpass.getpass(f"password for {where}: ")


def register(app: typer.Typer) -> None:
    dist_app.command("rebuild")(command(dist_rebuild))
    app.add_typer(dist_app, name="dist")
    app.command("serve-ftp")(command(serve_ftp))
    app.command("pull")(command(pull))
