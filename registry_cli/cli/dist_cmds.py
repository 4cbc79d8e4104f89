"""Distribution commands: ``dist rebuild``, ``serve-ftp`` and ``pull``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, open_registry, print_json
from registry_cli.errors import BadInput

dist_app = typer.Typer(
    help="The served tree dist/ (what serve-ftp and pull --from PATH read).", no_args_is_help=True
)


def dist_rebuild(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Regenerate dist/ from models/: index.json, LATEST files and version links."""
    report = open_registry().rebuild_dist()
    if as_json:
        print_json(report.to_json())
        return
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
    from registry_cli.ftp.settings import (
        ServerSettings,
        ftp_config,
        parse_port_range,
        password_from,
    )

    root, cfg = _load_config()
    conf = ftp_config(cfg)
    if not (root / "models").is_dir() and not (root / "dist").is_dir():
        from registry_cli.errors import NotFound

        raise NotFound(
            f"no registry at {root}",
            hint="point --root / REGCTL_ROOT at it, or create one with: regctl init",
        )
    password = password_from(password_env, password_file, conf)
    for name, value in (
        ("--port", port),
        ("--max-cons", max_cons),
        ("--max-cons-per-ip", max_cons_per_ip),
    ):
        if value is not None and (value < (0 if name == "--port" else 1) or value > 65535):
            raise BadInput(f"{name} {value} is out of range")
    if login_delay is not None and login_delay < 0:
        raise BadInput("--login-delay must be zero or more")
    dist = root / "dist"
    dist.mkdir(parents=True, exist_ok=True)

    def pick(flag: Any, key: str, default: Any) -> Any:
        return flag if flag is not None else conf.get(key, default)

    settings = ServerSettings(
        dist=dist,
        host=pick(host, "host", "127.0.0.1"),
        port=pick(port, "port", 2121),
        user=pick(user, "user", None),
        password=password,
        anonymous=anonymous or bool(conf.get("anonymous", False)),
        passive_ports=parse_port_range(passive_ports)
        if passive_ports
        else conf.get("passive_ports"),
        masquerade_address=pick(masquerade_address, "masquerade_address", None),
        max_cons=pick(max_cons, "max_cons", 256),
        max_cons_per_ip=pick(max_cons_per_ip, "max_cons_per_ip", 32),
        login_delay_s=pick(login_delay, "login_delay_s", 2.0),
        idle_timeout_s=conf.get("idle_timeout_s", 300.0),
        tls_cert=pick(tls_cert, "tls_cert", None),
        tls_key=pick(tls_key, "tls_key", None),
        log_file=pick(log_file, "log_file", None),
    )
    from registry_cli.ftp.server import check_settings, serve

    check_settings(settings)
    try:
        import pyftpdlib  # noqa: F401

        if settings.tls_cert:
            import OpenSSL  # noqa: F401
    except ImportError as exc:
        raise BadInput(
            f"serve-ftp needs {exc.name}", hint='install the extra: pip install "regctl[ftp]"'
        ) from None
    serve(settings)


def pull(
    name: str = typer.Argument(..., help="Model name."),
    source: str | None = typer.Option(
        None,
        "--from",
        metavar="URL|PATH",
        help="ftp://USER@HOST:PORT (ftps:// for TLS; port defaults to 2121), or a folder: a "
        "registry root or a served tree (else pull.from in the config).",
    ),
    stage: str | None = typer.Option(
        None, "--stage", help="Stage to pull from (default: pull.stage, else the last stage)."
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
    ca_cert: Path | None = typer.Option(
        None, "--ca-cert", metavar="FILE", help="CA certificate(s) for an ftps:// server."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Network timeout in seconds (default 30)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Download, verify and unpack a version into the local cache; print its paths."""
    from registry_cli.ftp.pull import Puller, parse_source, resolve_cache_root
    from registry_cli.ftp.settings import password_from, pull_config

    _root, cfg = _load_config()
    conf = pull_config(cfg)
    raw_source = source or conf.get("from")
    if not raw_source:
        raise BadInput(
            "pull needs --from ftp://USER@HOST:PORT or --from PATH",
            hint="or set pull.from in registry.yaml",
        )
    if not source and "://" not in raw_source and cfg.path is not None:
        raw_source = str(cfg.path.parent / os.path.expanduser(raw_source))
    src = parse_source(raw_source)
    password: Any = None
    if src.kind == "ftp" and src.user:
        password = password_from(password_env, password_file, conf)
        if password is None:  # asked only if the server is really contacted (not for a cached vN)

            def password() -> str:
                return _prompt_password(src.display)

    puller = Puller(
        src,
        password=password,
        cache_root=resolve_cache_root(cache_dir, conf.get("cache_dir")),
        ca_cert=ca_cert or conf.get("ca_cert"),
        timeout=timeout if timeout is not None else conf.get("timeout_s", 30.0),
    )
    chosen_stage = stage or conf.get("stage") or cfg.stages[-1]
    progress = None if as_json else common.progress_factory(f"{name} ")
    try:
        result = puller.pull(
            name, stage=chosen_stage, version=version, offline=offline, progress=progress
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
