"""Operations commands: ``doctor`` (is this machine fit to hold the registry?), ``gc``,
and retention: ``purge``, ``prune``, ``du`` (docs/operations.md)."""

from __future__ import annotations

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.common import JSON_HELP, command, open_local, print_json


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


def _grace(text: str) -> float:
    from registry_cli.core.blob_gc import parse_grace
    from registry_cli.errors import BadInput

    try:
        return parse_grace(text)
    except ValueError:
        raise BadInput(
            f"--grace {text!r} is not a duration", hint="e.g. 0s, 90s, 30m, 2h, 1d"
        ) from None


def gc(
    grace: str = typer.Option(
        "1h", "--grace", help="Keep unreferenced blobs younger than this (0s, 30m, 2h, 1d)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Change nothing; list what would go."),
    dedup: bool = typer.Option(
        False, "--dedup", help="First move an old root's payload files into blobs (idempotent)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove leftovers of interrupted publishes (never a live one) and blobs no version
    references (never one younger than --grace or announced by a running publish)."""
    grace_s = _grace(grace)
    report = open_local().gc(grace_s=grace_s, dry_run=dry_run, dedup=dedup)
    if as_json:
        print_json(report.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.removed:
        typer.echo(f"{verb} {path}")
    parts = [f"gc: {verb} {len(report.removed)} leftover(s)"]
    if report.blobs_removed:
        parts.append(f"{report.blobs_removed} blob(s), {report.bytes_freed} bytes")
    if report.deduped:
        parts.append(
            f"{report.deduped} payload file(s) {'to move' if dry_run else 'moved'} into blobs"
        )
    if report.kept_young or report.kept_pending:
        parts.append(
            f"kept {report.kept_young} young and {report.kept_pending} pending unreferenced blob(s)"
        )
    if report.kept_in_use:
        parts.append(f"{len(report.kept_in_use)} publish(es) still running")
    typer.echo(", ".join(parts))


def purge(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    version: str = typer.Argument(
        ..., help="An archived version (vN).", autocompletion=completion.versions
    ),
    reason: str = typer.Option(None, "--reason", help="Why the payload may go (audited)."),
) -> None:
    """Delete an archived version's payload; its facts, number and audit lines stay."""
    from registry_cli.core import retention
    from registry_cli.core.names import parse_version

    reg = open_local()
    done = retention.purge(reg.retention(), name, version, reason=reason or "")
    vname = f"v{parse_version(version)}"
    if done["noop"]:
        typer.echo(f"{name}:{vname} is already purged (nothing changed)")
    else:
        typer.echo(f"purged {name}:{vname}")


def prune(
    name: str | None = typer.Argument(
        None, help="Only this model (default: every model).", autocompletion=completion.model_names
    ),
    keep_last: int | None = typer.Option(
        None, "--keep-last", metavar="N", help="Keep the newest N versions of each model."
    ),
    older_than: float | None = typer.Option(
        None, "--older-than", metavar="DAYS", help="Only versions published over DAYS ago."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Change nothing; list the plan."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Archive and purge old versions that no alias, stage LATEST or champion history needs
    (flags, else the config's retention: rules)."""
    from registry_cli.core import retention

    reg = open_local()
    parts = reg.retention()
    items = retention.plan(parts, name, keep_last, older_than, reg.config.retention)
    if not dry_run:
        why = f"prune --keep-last {keep_last}" if keep_last is not None else "prune (retention:)"
        if older_than is not None:
            why += f" --older-than {older_than:g}"
        items = retention.prune(parts, items, why)
    if as_json:
        print_json([i.to_json() for i in items])
        return
    verb = "would" if dry_run else "did"
    for i in items:
        typer.echo(f"{i.model}:v{i.version}  {i.action}  {i.bytes} bytes")
    total = sum(i.bytes for i in items)
    typer.echo(f"prune: {verb} retire {len(items)} version(s), {total} bytes")


def du(
    name: str | None = typer.Argument(
        None, help="Only this model.", autocompletion=completion.model_names
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Bytes per model: logical (its versions' files), stored (its blobs, a shared blob
    counted once overall) and reclaimable (what prune with the config would free)."""
    from registry_cli.core.usage import du as usage

    reg = open_local()
    found = usage(reg.retention(), name, reg.config.retention)
    if as_json:
        print_json(found.to_json())
        return
    width = max([len(m.name) for m in found.models] + [5])
    typer.echo(f"{'model':<{width}}  {'logical':>14}  {'stored':>14}  {'reclaimable':>14}")
    for m in found.models:
        typer.echo(f"{m.name:<{width}}  {m.logical:>14}  {m.stored:>14}  {m.reclaimable:>14}")
    t = found.total()
    typer.echo(f"{'total':<{width}}  {t['logical']:>14}  {t['stored']:>14}  {t['reclaimable']:>14}")
    if t["unreferenced"]:
        typer.echo(f"({t['unreferenced']} bytes in unreferenced blobs: regctl gc frees them)")


def register(app: typer.Typer) -> None:
    app.command("doctor")(command(doctor))
    app.command("gc")(command(gc))
    app.command("purge")(command(purge))
    app.command("prune")(command(prune))
    app.command("du")(command(du))
