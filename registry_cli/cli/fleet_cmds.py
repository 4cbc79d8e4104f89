"""``regctl fleet status|ingest`` and ``regctl rollout ...`` (docs/fleet.md).

Each works on the root, or on a registry server with ``--remote`` (else
``$REGCTL_URL``, else ``remote:`` in the config). The fleet modules are
imported by the commands, never at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.common import JSON_HELP, command, print_json
from registry_cli.errors import BadInput

fleet_app = typer.Typer(help="What runs where: device reports.", no_args_is_help=True)
rollout_app = typer.Typer(help="Roll a released version out ring by ring.", no_args_is_help=True)


def _remote() -> Any | None:
    """The RemoteRegistry named by --remote/$REGCTL_URL/remote:, or None (work locally)."""
    if common.STATE.remote:
        return common.open_remote(common.STATE.remote, None)
    from registry_cli.core.config import resolve_root_and_config

    section = resolve_root_and_config(common.STATE.root, common.STATE.config)[1].section("remote")
    if section.get("url"):
        return common.open_remote(section["url"], section)
    return None


def _local() -> Any:
    from registry_cli.core.registry import ModelRegistry

    return ModelRegistry(common.STATE.root, config=common.STATE.config, actor=common.STATE.actor)


def _fleet() -> Any:
    remote = _remote()
    if remote is not None:
        from registry_cli.remote.fleet import RemoteFleet

        return RemoteFleet(remote)
    from registry_cli.core.fleet import Fleet

    return Fleet(_local())


def _rollouts() -> Any:
    remote = _remote()
    if remote is not None:
        from registry_cli.remote.fleet import RemoteRollouts

        return RemoteRollouts(remote)
    from registry_cli.core.rollout import Rollouts

    return Rollouts(_local())


# ---------------------------------------------------------------- fleet
def fleet_status(
    name: str | None = typer.Argument(
        None, help="Model name (default: every model).", autocompletion=completion.model_names
    ),
    ring: str | None = typer.Option(None, "--ring", help="Only this ring."),
    stale: str = typer.Option(
        "1h", "--stale", help="Off target, or silent, for longer than this is a straggler."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Per model and ring: devices on each version, last seen, stragglers, failures."""
    from registry_cli.core.fleet_reports import parse_duration

    doc = _fleet().status(name, ring=ring, stale_s=parse_duration(stale, "--stale"))
    if as_json:
        print_json(doc)
        return
    if not doc["models"]:
        typer.echo("no device has reported yet")
    for model in doc["models"]:
        head = f"{model['name']}: {model['devices']} device(s), champion {model['champion']}"
        typer.echo(head)
        if model.get("rollout"):
            r = model["rollout"]
            typer.echo(
                f"  rollout of {r['version']}: {r['state']}, ring {r['ring']} "
                f"({r['ring_index'] + 1}/{len(r['rings'])}: {', '.join(r['rings'])})"
            )
        for e in model["rings"]:
            versions = " ".join(f"{v['version']}:{v['devices']}" for v in e["versions"]) or "-"
            typer.echo(
                f"  {e['ring']:<16} target {e['target'] or '-':<6} devices {e['devices']:<5} "
                f"on target {e['on_target']:<5} versions {versions}  stragglers "
                f"{e['stragglers']}  failures {e['failures']}  last seen {e['last_seen'] or '-'}"
            )
            for d in e["failed_devices"]:
                typer.echo(f"    failed: {d['device']} {d['version']} {d['state']}: {d['detail']}")
            for d in e["straggler_devices"]:
                typer.echo(f"    straggler ({d['reason']}): {d['device']} on {d['version']}")


def read_reports(path: Path) -> list[dict[str, Any]]:
    """A report file: JSON lines (what ``--report-file`` writes), or one JSON list."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"{path}: not valid JSON ({exc})") from None
        return list(items)
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise BadInput(f"{path}:{number}: not a JSON report") from None
    return out


def fleet_ingest(
    file: Path = typer.Argument(..., help="Reports a device wrote with --report-file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Load the reports of a device that has no uplink (every one valid, or none stored)."""
    from registry_cli.core.fleet_reports import validate_report

    raw = read_reports(file)
    if not raw:
        raise BadInput(f"{file} holds no reports")
    for index, item in enumerate(raw, 1):
        try:
            validate_report(item)
        except BadInput as exc:
            raise BadInput(f"{file}: report {index}: {exc.message}", hint=exc.hint) from None
    fleet = _fleet()
    done = fleet.ingest(raw) if hasattr(fleet, "remote") else fleet.ingest(raw, limit=None)
    if as_json:
        print_json(done)
        return
    typer.echo(f"{done['accepted']} report(s) stored, {done['duplicates']} already known")


def pull_reporter(
    cfg: Any,
    setup: Any,
    report: bool,
    report_file: Path | None,
    device: str | None,
    ring: str | None,
    alias: str | None,
    version: str,
) -> Any:
    """The reporter of ``regctl pull`` (None when it does not report)."""
    import os

    from registry_cli.core.names import validate_alias

    if alias is not None:
        validate_alias(alias)
        if version != "latest":
            raise BadInput("give --alias or --version, not both")
    configured = cfg.section("fleet").get("report_url") or os.environ.get("REGCTL_REPORT_URL")
    if not (report or report_file or configured):
        return None
    from registry_cli.pull.fleet import reporter_from

    puller = setup.puller
    return reporter_from(
        cfg,
        {"device": device, "ring": ring, "report_file": report_file},
        source=puller.source,
        cache_root=puller.cache_root,
        fallback_token=getattr(puller, "_token", None),
    )


def serve_reporter(
    reg: Any,
    report_file: Path | None,
    device: str | None,
    ring: str | None,
    interval: float | None,
) -> tuple[Any, float]:
    """The reporter of ``regctl serve --report`` and its health report period."""
    from registry_cli.pull.cache import default_cache_root
    from registry_cli.pull.fleet import reporter_from
    from registry_cli.settings import SECTIONS

    flags = {"device": device, "ring": ring, "report_interval_s": interval}
    period = SECTIONS["fleet"].resolve(flags, reg.config.section("fleet"))["report_interval_s"]
    section = reg.config.section("pull")
    cache = Path(section["cache_dir"]) if section.get("cache_dir") else default_cache_root()
    reporter = reporter_from(
        reg.config, {**flags, "report_file": report_file}, source=None, cache_root=cache
    )
    return reporter, period


# ---------------------------------------------------------------- rollout
def rollout_start(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    version: str = typer.Option(..., "--version", help="vN or @alias, in the last stage."),
    rings: str = typer.Option(..., "--rings", help="Comma-separated rings, in order."),
    min_healthy: float = typer.Option(0.95, "--min-healthy", help="Share of healthy devices."),
    soak: str = typer.Option("30m", "--soak", help="How long devices stay healthy first."),
    min_devices: int = typer.Option(1, "--min-devices", help="At least this many healthy."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Start rolling VERSION out: the first ring's alias ring-<ring> moves to it."""
    from registry_cli.core.fleet_reports import parse_duration

    ring_list = [r.strip() for r in rings.split(",") if r.strip()]
    _show(
        _rollouts().start(
            name,
            version,
            ring_list,
            min_healthy=min_healthy,
            soak_s=parse_duration(soak, "--soak"),
            min_devices=min_devices,
        ),
        as_json,
    )


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{result['name']}:{result['version']}: {result['message']}")


def _action(action: str) -> Any:
    def run(
        name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        _show(getattr(_rollouts(), action)(name), as_json)

    run.__doc__ = {
        "step": "Move the next ring's alias once the current ring is healthy for the soak.",
        "pause": "Stop stepping (aliases stay).",
        "resume": "Step again.",
        "abort": "Stop and move every ring alias back.",
    }[action]
    run.__name__ = f"rollout_{action}"
    return run


def rollout_status(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The rollout: version, rings, state, the current ring's last health check."""
    doc = _rollouts().status(name)
    if as_json:
        print_json(doc)
        return
    rings = doc["rings"]
    typer.echo(f"{doc['name']}:{doc['version']} rollout {doc['state']}")
    for i, ring in enumerate(rings):
        mark = "done" if i < doc["ring_index"] or doc["state"] == "completed" else "waiting"
        if i == doc["ring_index"] and doc["state"] != "completed":
            mark = "current"
        typer.echo(f"  {ring:<16} ring-{ring:<16} {mark}")
    check = doc.get("last_check")
    if check:
        typer.echo(f"  last check {check['time']}: {check['message']}")


def register(app: typer.Typer) -> None:
    fleet_app.command("status")(command(fleet_status))
    fleet_app.command("ingest")(command(fleet_ingest))
    rollout_app.command("start")(command(rollout_start))
    for action in ("step", "pause", "resume", "abort"):
        rollout_app.command(action)(command(_action(action)))
    rollout_app.command("status")(command(rollout_status))
    app.add_typer(fleet_app, name="fleet")
    app.add_typer(rollout_app, name="rollout")
