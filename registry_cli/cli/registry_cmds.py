"""Commands that create and read versions: init, publish, list, versions, show,
resolve, audit, verify (gc is in ops_cmds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from registry_cli.cli import common, completion
from registry_cli.cli.common import JSON_HELP, command, open_local, open_registry, print_json

STAGE_HELP = "Make 'latest' mean this stage's LATEST (and restrict 'best' to it)."
METRIC_HELP = "Metric for NAME:best (else best.metric in the config)."
MODE_HELP = "max or min, for NAME:best (else best.mode, else max)."
REF_HELP = "NAME, NAME:vN, NAME:latest, NAME:best or NAME@alias."


def init(
    directory: str | None = typer.Argument(
        None, help="Where to create the registry (default: the resolved root)."
    ),
) -> None:
    """Create a registry root with a commented registry.yaml."""
    if directory:
        common.STATE.root = directory
    root = open_local().init()
    typer.echo(f"registry ready at {root}")


def publish(
    name: str = typer.Argument(
        ..., help="Model name, e.g. team/project/task.", autocompletion=completion.model_names
    ),
    paths: list[str] | None = typer.Argument(
        None, help="Files and folders to copy into the new version (none with --from-mlflow)."
    ),
    metric: list[str] | None = typer.Option(None, "--metric", help="KEY=NUMBER, repeatable."),
    param: list[str] | None = typer.Option(None, "--param", help="KEY=VALUE, repeatable."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE, repeatable."),
    description: str | None = typer.Option(None, "--description", help="Free text."),
    stage: str | None = typer.Option(
        None,
        "--stage",
        help="Must be the first stage (versions enter there).",
        autocompletion=completion.stages,
    ),
    no_latest: bool = typer.Option(False, "--no-latest", help="Do not move the stage's LATEST."),
    no_alias: bool = typer.Option(False, "--no-alias", help="Do not set @candidate."),
    derived_from: str | None = typer.Option(
        None,
        "--derived-from",
        metavar="REF",
        help="Lineage: the version this one comes from.",
        autocompletion=completion.references,
    ),
    from_mlflow: str | None = typer.Option(
        None,
        "--from-mlflow",
        metavar="URI",
        help="Import from MLflow: runs:/RUN_ID/PATH, RUN_ID (with --artifact-path), "
        "models:/NAME@ALIAS or models:/NAME/N.",
    ),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking server (else $MLFLOW_TRACKING_URI, else mlflow.tracking_uri).",
    ),
    artifact_path: str | None = typer.Option(
        None,
        "--artifact-path",
        metavar="PATH",
        help="Artifact inside the run, for a bare run id (relative; no '..').",
    ),
    convert: str | None = typer.Option(
        None,
        "--convert",
        metavar="FORMAT",
        help="Also write a standard file; torch-standard: payload/model-standard.pt from the "
        ".pt/.pth checkpoint.",
    ),
    task: str | None = typer.Option(
        None, "--task", help="With --convert: classification, regression, detection, ..."
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", help="With --convert: number of classes (passed to --arch)."
    ),
    arch: str | None = typer.Option(
        None,
        "--arch",
        metavar="MODULE:FACTORY",
        help="With --convert: build the model (e.g. pkg.models:Net), load the weights strictly "
        "and, with --example-shape, write a runnable program.",
    ),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="With --convert: allow a checkpoint that needs full unpickling (runs code in the "
        "file; only for files you trust).",
    ),
    example_shape: str | None = typer.Option(
        None, "--example-shape", help="Input signature, e.g. 1,12,18 (first dim is the batch)."
    ),
    example_dtype: str = typer.Option(
        "float32", "--example-dtype", help="Input dtype for --example-shape."
    ),
    license: str | None = typer.Option(
        None, "--license", metavar="SPDX-EXPR", help="License, as an SPDX expression."
    ),
    card: str | None = typer.Option(None, "--card", metavar="FILE.md", help="Model card."),
    sign_key: str | None = typer.Option(
        None, "--sign-key", metavar="FILE", help="Sign the new version (as regctl sign --key)."
    ),
    attestation: str | None = typer.Option(
        None, "--attestation", metavar="FILE", help="An in-toto statement to keep beside it."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Copy files/folders (or an MLflow artifact) into the next immutable version of NAME."""
    prehash = None
    if paths and not (from_mlflow or convert or common.STATE.remote):
        from registry_cli.storage import fs_prehash

        # files the root holds already: their bundle is hashed while the rest starts up
        # (a daemon thread: a refusal below exits without waiting for it)
        def find_root() -> Path | None:  # on the thread: what open_registry will open
            from registry_cli.core.config import level0_folder_root

            return level0_folder_root(common.STATE.root, common.STATE.config)

        prehash = fs_prehash.start(paths, find_root)
    from registry_cli.cli import trust_cmds
    from registry_cli.core.names import parse_key_values, parse_metrics
    from registry_cli.core.signature import signature_from_shape
    from registry_cli.errors import BadInput

    if from_mlflow and paths:
        raise BadInput("give either PATH... or --from-mlflow, not both")
    if not from_mlflow and (tracking_uri or artifact_path):
        raise BadInput("--tracking-uri and --artifact-path need --from-mlflow")
    if not convert and (task or num_classes is not None or arch or trust_pickle):
        raise BadInput(
            "--task, --num-classes, --arch and --trust-pickle need --convert torch-standard"
        )
    kwargs: dict[str, Any] = dict(
        metrics=parse_metrics(metric),
        params=parse_key_values(param, "param"),
        tags=parse_key_values(tag, "tag"),
        description=description,
        stage=stage,
        set_latest=not no_latest,
        set_alias=not no_alias,
        derived_from=derived_from,
        signature=signature_from_shape(example_shape, example_dtype) if example_shape else None,
    )
    options = None
    if convert:
        from registry_cli.formats.publish_sources import ConversionOptions

        options = ConversionOptions(
            task=task, num_classes=num_classes, arch=arch, trust_pickle=trust_pickle, target=convert
        ).validate()
    if kwargs["signature"] is None and not from_mlflow and not convert:
        from registry_cli.formats.publish_sources import program_signature

        # a torch.export program brings its own (docs/predictions.md), read here without torch
        kwargs["signature"] = program_signature(list(paths or []))
    reg = open_registry()
    trust = trust_cmds.publish_extras(reg, kwargs, license, card, sign_key, attestation)
    progress = common.progress_factory(f"{name} ")
    try:
        if not from_mlflow and options is None:
            if prehash is not None and not reg.remote:
                import yaml  # noqa: F401  (version.yaml's writer, loaded while the bundle hashes)

                from registry_cli.core.publishing import Produced

                kwargs["produced"] = Produced(prehash=prehash)
            info = reg.publish(name, paths or [], progress=progress, **kwargs)
        elif reg.remote:  # a registry server imports and converts itself
            from registry_cli.remote.registry import RemoteRegistry

            assert isinstance(reg, RemoteRegistry)  # the only remote Registry
            if from_mlflow:
                info = reg.publish_from_mlflow(
                    name,
                    from_mlflow,
                    tracking_uri=tracking_uri,
                    artifact_path=artifact_path,
                    convert=options,
                    progress=progress,
                    **kwargs,
                )
            else:
                info = reg.publish_with_conversion(
                    name, paths or [], options=options, progress=progress, **kwargs
                )
        elif from_mlflow:
            from registry_cli.formats.publish_sources import publish_from_mlflow

            info = publish_from_mlflow(
                common.as_local(reg),
                name,
                from_mlflow,
                tracking_uri=tracking_uri,
                artifact_path=artifact_path,
                convert=options,
                progress=progress,
                **kwargs,
            )
        elif options is not None:
            from registry_cli.formats.publish_sources import publish_with_conversion

            info = publish_with_conversion(
                common.as_local(reg),
                name,
                paths or [],
                options=options,
                progress=progress,
                **kwargs,
            )
    finally:
        common.stop_progress(progress)
        if prehash is not None:
            prehash.cancel()  # unused (a server, a compressed bundle...): stop reading
    info = trust.after_publish(reg, info)
    if as_json:
        print_json(info.to_json())
    else:
        aliases = " ".join(f"@{a}" for a in info.aliases)
        typer.echo(f"published {info.name}:{info.vname} {aliases}".rstrip())
        typer.echo(f"  {len(info.files)} file(s), bundle sha256 {info.bundle.get('sha256')}")
        if info.standard_artifacts:
            typer.echo(
                "  standard: " + ", ".join(f"{k}={v}" for k, v in info.standard_artifacts.items())
            )
        typer.echo(f"  {info.path}")


def list_models(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List models with their latest version, stage LATEST pointers and aliases."""
    from registry_cli.cli import render

    reg = open_registry()
    models = reg.list_models()
    if as_json:
        print_json([m.to_json() for m in models])
    else:
        render.models_table(models, reg.stages)


def versions(
    name: str = typer.Argument(..., help="Model name.", autocompletion=completion.model_names),
    stage: str | None = typer.Option(
        None, "--stage", help="Only versions in this stage.", autocompletion=completion.stages
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the versions of a model with status, stages, aliases and metrics."""
    from registry_cli.cli import render

    items = open_registry().list_versions(name, stage=stage)
    if as_json:
        print_json({"name": name, "versions": [v.to_summary_json() for v in items]})
    else:
        render.versions_table(name, items)


def show(
    ref: str = typer.Argument(..., help=REF_HELP, autocompletion=completion.references),
    stage: str | None = typer.Option(
        None, "--stage", help=STAGE_HELP, autocompletion=completion.stages
    ),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help=MODE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one version: facts, current state, files and bundle."""
    from registry_cli.cli import render

    info = open_registry().get(ref, stage=stage, metric=metric, mode=mode)
    if as_json:
        print_json(info.to_json())
    else:
        render.version_details(info)


def resolve(
    ref: str = typer.Argument(..., help=REF_HELP, autocompletion=completion.references),
    path: bool = typer.Option(
        False, "--path", help="Print the absolute path of the preferred weight file instead."
    ),
    stage: str | None = typer.Option(
        None, "--stage", help=STAGE_HELP, autocompletion=completion.stages
    ),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help=MODE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print the version a reference means (vN), for scripts."""
    reg = open_registry()
    info = reg.get(ref, stage=stage, metric=metric, mode=mode, with_bundle=as_json)
    if info.status == "purged":
        from registry_cli.core.retention import require_payload

        require_payload(info.status, info.name, info.version)
    if as_json:
        print_json(info.to_json())
    elif path and reg.remote:  # the path on the registry's machine
        typer.echo(str(info.preferred_weight_path))
    elif path:
        from registry_cli.storage.layout import version_key
        from registry_cli.storage.open import local_version

        # on an s3 root the version is fetched into the cache (verified) first
        store = common.as_local(reg).store
        local = local_version(store, version_key(info.name, info.version))
        typer.echo(str(local / info.preferred_weight))
    else:
        typer.echo(info.vname)


def audit(
    name: str | None = typer.Argument(
        None, help="Only this model's entries.", autocompletion=completion.model_names
    ),
    limit: int | None = typer.Option(None, "--limit", help="Only the last N entries."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the audit log, newest last."""
    from registry_cli.cli import render

    log = open_registry().audit(name, limit)
    if log.damaged_lines:
        typer.echo(
            f"warning: audit.jsonl has {len(log.damaged_lines)} unreadable line(s) "
            f"(line {', '.join(map(str, log.damaged_lines))}), probably a crash mid-write; "
            "skipped",
            err=True,
        )
    if as_json:
        print_json(log.entries)
    else:
        render.audit_table(log.entries)


def verify(
    name: str | None = typer.Argument(
        None,
        help="Only this model (with --trust: this version, as a reference).",
        autocompletion=completion.model_names,
    ),
    trust: list[str] | None = typer.Option(
        None,
        "--trust",
        metavar="KEY",
        help="Check the version's signatures: a valid one by this public key (repeatable) "
        "is required (docs/trust.md).",
    ),
    trust_ca: list[str] | None = typer.Option(
        None, "--trust-ca", metavar="CA", help="Or a certificate signature chaining to this CA."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Re-hash every payload file and bundle and check the invariants. Exit 5 on problems."""
    from registry_cli.cli import render

    if trust or trust_ca:
        from registry_cli.cli.trust_cmds import verify_trusted
        from registry_cli.errors import BadInput

        if not name:
            raise BadInput("verify --trust needs a reference (NAME:vN)")
        return verify_trusted(name, list(trust or []), as_json, list(trust_ca or []))
    progress = None if as_json else common.progress_factory()
    try:
        report = open_local().verify(name, progress("hashing", 0) if progress else None)
    finally:
        common.stop_progress(progress)
    if as_json:
        print_json(report.to_json())
    else:
        render.verify_report(report)
    if not report.ok:
        for p in report.problems:
            typer.echo(f"error: {p.path}: {p.problem}", err=True)
        raise typer.Exit(5)


def register(app: typer.Typer) -> None:
    app.command("init")(command(init))
    app.command("publish")(command(publish))
    app.command("list")(command(list_models))
    app.command("versions")(command(versions))
    app.command("show")(command(show))
    app.command("resolve")(command(resolve))
    app.command("audit")(command(audit))
    app.command("verify")(command(verify))
