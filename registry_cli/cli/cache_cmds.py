"""``regctl cache prune``: free space in the local pull cache (docs/pull.md, "The cache")."""

from __future__ import annotations

from pathlib import Path

import typer

from registry_cli.cli import common
from registry_cli.cli.common import JSON_HELP, command, print_json

cache_app = typer.Typer(help="The local pull cache (what regctl pull fills).", no_args_is_help=True)


def cache_prune(
    keep_last: int | None = typer.Option(
        None, "--keep-last", metavar="N", help="Keep the N highest cached versions of each model."
    ),
    max_size: str | None = typer.Option(
        None,
        "--max-size",
        metavar="SIZE",
        help="Then remove the versions used longest ago until the cache holds at most SIZE "
        "(500M, 2G, 1.5GiB: powers of 1024).",
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        metavar="DIR",
        help="Cache root (else $REGCTL_CACHE_DIR, pull.cache_dir, the torch hub dir).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove old cached versions and the files no cached version uses; a version another
    process is using stays."""
    from registry_cli.core.config import resolve_root_and_config
    from registry_cli.pull.cache import resolve_cache_root
    from registry_cli.pull.prune import parse_size, prune_cache
    from registry_cli.storage.faults import human_size

    limit = parse_size(max_size) if max_size is not None else None
    cfg = resolve_root_and_config(common.STATE.root, common.STATE.config)[1]
    root = resolve_cache_root(cache_dir, cfg.section("pull"))
    report = prune_cache(root, keep_last=keep_last, max_size=limit, dry_run=dry_run)
    if as_json:
        print_json({"cache": str(root), **report.to_json()})
        return
    verb = "would remove" if dry_run else "removed"
    for entry in report.removed:
        typer.echo(
            f"{verb} {entry['name']}:{entry['version']} ({entry['stage']}, {entry['source']})"
        )
    for path in report.in_use:
        typer.echo(f"in use, kept: {path}")
    freed = report.size_before - report.size_after
    typer.echo(
        f"{verb} {len(report.removed)} version(s) and {report.blobs_removed} unused file(s): "
        f"{human_size(freed)} freed, {human_size(report.size_after)} left in {root}"
    )
    if limit is not None and report.size_after > limit:
        typer.echo(f"still over --max-size {max_size}: the rest is in use or kept", err=True)


def register(app: typer.Typer) -> None:
    cache_app.command("prune")(command(cache_prune))
    app.add_typer(cache_app, name="cache")
