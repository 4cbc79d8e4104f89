"""Prediction commands: ``predict`` (one-shot) and ``serve`` (the HTTP server).

Nothing heavy is imported here at module level: torch, mlflow, numpy and the
HTTP stack load inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from registry_cli.cli import completion
from registry_cli.cli.common import command, open_local, print_json
from registry_cli.errors import BadInput, NotFound


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"input file {source} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read input {source}: {exc.strerror or exc}") from None


def predict(
    ref: str = typer.Argument(
        ...,
        help="NAME, NAME:vN, NAME:latest, NAME@alias, or a pulled bundle folder.",
        autocompletion=completion.references,
    ),
    input_: str = typer.Option(
        ...,
        "--input",
        "-i",
        metavar="FILE|-",
        help='JSON ({"X": ...} or a bare array) or .npy; - reads stdin.',
    ),
    stage: str | None = typer.Option(
        None,
        "--stage",
        help="Make 'latest' mean this stage's LATEST.",
        autocompletion=completion.stages,
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Accepted for uniformity: predict always prints one JSON document."
    ),
) -> None:
    """Run a version's model (MLflow pyfunc, torch.export or TorchScript) on one input."""
    import warnings

    from registry_cli.cli.common import debug_enabled
    from registry_cli.predict.service import load_reference, predict_bytes

    data = _read_input(input_)
    with warnings.catch_warnings():
        if not debug_enabled():  # library chatter (mlflow, torch) would bury the output
            warnings.simplefilter("ignore")
        model = load_reference(ref, open_local, stage=stage)
        result = predict_bytes(model, data, source="stdin" if input_ == "-" else input_)
    print_json(result)


def serve(
    name: str | None = typer.Argument(
        None,
        help="Model to serve (else $REGCTL_SERVE_MODEL or serve.model).",
        autocompletion=completion.model_names,
    ),
    alias: str | None = typer.Option(
        None,
        "--alias",
        help="Alias to load (default champion; $REGCTL_SERVE_ALIAS, $MODEL_ALIAS, serve.alias).",
        autocompletion=completion.aliases,
    ),
    host: str | None = typer.Option(
        None, "--host", help="Interface to bind (default 127.0.0.1; $REGCTL_SERVE_HOST)."
    ),
    port: int | None = typer.Option(
        None, "--port", help="TCP port (default 8000; $REGCTL_SERVE_PORT)."
    ),
    load_timeout: float | None = typer.Option(
        None,
        "--load-timeout",
        metavar="SECONDS",
        help="Keep retrying the first load this long (default 60; serve.load_timeout_s).",
    ),
    load_interval: float | None = typer.Option(
        None,
        "--load-interval",
        metavar="SECONDS",
        help="Pause between load attempts (default 5; serve.load_interval_s).",
    ),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", help="Larger request bodies get 413 (default 10 MiB)."
    ),
    callback_timeout: float | None = typer.Option(
        None,
        "--callback-timeout",
        metavar="SECONDS",
        help="Timeout of the callback POST (default 5).",
    ),
    access_log: bool | None = typer.Option(
        None, "--access-log/--no-access-log", help="Log every request (default off)."
    ),
    follow: bool | None = typer.Option(
        None,
        "--follow/--no-follow",
        help="Watch the alias and hot-swap to the version it moves to (promote, rollback, "
        "alias set); default off ($REGCTL_SERVE_FOLLOW, serve.follow).",
    ),
    poll_interval: float | None = typer.Option(
        None,
        "--poll-interval",
        metavar="SECONDS",
        help="With --follow: how often to read the alias (default 5; serve.poll_interval_s).",
    ),
    report: bool = typer.Option(
        False, "--report", help="Report what runs to the registry server (fleet.report_url)."
    ),
    report_file: Path | None = typer.Option(
        None, "--report-file", metavar="FILE", help="Append the reports to FILE instead."
    ),
    report_interval: float | None = typer.Option(
        None, "--report-interval", metavar="SECONDS", help="Health report period (default 60)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="This device's id in reports (default: the host name)."
    ),
    ring: str | None = typer.Option(None, "--ring", help="This device's ring (default: default)."),
) -> None:
    """Serve NAME@alias over HTTP: GET /health, POST /reload, POST /predict, docs at /docs."""
    from registry_cli.predict.settings import resolve_settings

    reg = open_local()
    settings = resolve_settings(
        {
            "model": name,
            "alias": alias,
            "host": host,
            "port": port,
            "load_timeout_s": load_timeout,
            "load_interval_s": load_interval,
            "max_body_bytes": max_body_bytes,
            "callback_timeout_s": callback_timeout,
            "access_log": access_log,
            "follow": follow,
            "poll_interval_s": poll_interval,
        },
        reg.config.section("serve"),
    )
    try:
        from registry_cli.predict import server
    except ImportError as exc:
        raise BadInput(
            f"regctl serve needs the HTTP stack ({exc.name} is missing)",
            hint="pip install 'regctl[serve]'",
        ) from None
    from registry_cli.predict.service import alias_version, load_alias

    reporter, interval = None, 60.0
    if report or report_file:
        from registry_cli.cli.fleet_cmds import serve_reporter

        reporter, interval = serve_reporter(reg, report_file, device, ring, report_interval)
    server.run(
        settings,
        lambda a: load_alias(reg, settings.model, a),
        resolve=lambda a: alias_version(reg, settings.model, a),
        reporter=reporter,
        report_interval_s=interval,
    )


def register(app: typer.Typer) -> None:
    app.command("predict")(command(predict))
    app.command("serve")(command(serve))
