"""Library entry points for publishing from other sources and formats.

``publish_with_conversion`` turns a ``.pt``/``.pth`` checkpoint into
``payload/model-standard.pt`` (plus a runnable program with ``arch`` and an
example shape) beside the untouched original; ``publish_from_mlflow`` imports a
run artifact or a registered model version. The two combine: an MLflow artifact
that is a checkpoint can be converted too.

Converters write into :meth:`ModelRegistry.scratch` (a private folder under
``<root>/.regctl/tmp/`` on the registry's filesystem, removed afterwards; a
crash leaves only what ``regctl gc`` removes) and hand the results to
:meth:`ModelRegistry.publish` as :class:`Produced` files, which are renamed into
the version. Nothing reaches ``models/`` unless the whole publish succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core.names import validate_model_name
from registry_cli.core.publishing import Produced
from registry_cli.errors import BadInput, NotFound

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.core.types import VersionInfo

CONVERTERS = ("torch-standard",)


@dataclass(frozen=True)
class ConversionOptions:
    """``--convert torch-standard`` and its flags."""

    task: str | None = None
    num_classes: int | None = None
    arch: str | None = None
    trust_pickle: bool = False
    target: str = "torch-standard"

    def validate(self) -> ConversionOptions:
        from registry_cli.formats.torch_program import split_arch
        from registry_cli.formats.torch_standard import validate_task

        if self.target not in CONVERTERS:
            raise BadInput(
                f"unknown --convert target {self.target!r}",
                hint=f"supported: {', '.join(CONVERTERS)}",
            )
        validate_task(self.task)
        if self.num_classes is not None and self.num_classes < 1:
            raise BadInput(f"--num-classes must be 1 or more, not {self.num_classes}")
        if self.arch is not None:
            split_arch(self.arch)
        return self


def publish_with_conversion(
    registry: ModelRegistry,
    name: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    options: ConversionOptions | None = None,
    signature: dict[str, Any] | None = None,
    **publish_kwargs: Any,
) -> VersionInfo:
    """Publish ``paths`` plus ``payload/model-standard.pt`` made from the checkpoint among them.

    ``signature`` (from ``--example-shape``) is also the example input for the
    runnable program written when ``options.arch`` is set. Other keyword
    arguments go to :meth:`ModelRegistry.publish`.
    """
    validate_model_name(name)
    options = (options or ConversionOptions()).validate()
    sources = [Path(p) for p in paths]
    converted = _load_for_conversion(sources, options)  # every refusal happens before a write
    with registry.scratch("convert") as folder:
        return _write_and_publish(
            registry, name, sources, folder, converted, signature=signature, **publish_kwargs
        )


@dataclass
class _Converted:
    """A loaded checkpoint, its standard document and (with ``arch``) the loaded model."""

    doc: dict[str, Any]
    model: Any | None


def _load_for_conversion(sources: list[Path], options: ConversionOptions) -> _Converted:
    from registry_cli.formats import torch_program, torch_standard

    for src in sources:
        if not os.path.lexists(src):
            raise NotFound(f"source path {src} does not exist")
    checkpoint = torch_standard.find_checkpoint(sources)
    # import the architecture first: a typo fails before the (possibly long) load
    model = torch_program.build_model(options.arch, options.num_classes) if options.arch else None
    loaded = torch_standard.load_checkpoint(checkpoint, trust_pickle=options.trust_pickle)
    if model is not None:
        torch_program.load_strict(model, loaded.state_dict, options.arch or "")
    doc = torch_standard.standard_document(
        loaded, task=options.task, num_classes=options.num_classes, arch=options.arch
    )
    return _Converted(doc, model)


def _write_and_publish(
    registry: ModelRegistry,
    name: str,
    sources: list[Path],
    folder: Path,
    converted: _Converted,
    *,
    signature: dict[str, Any] | None,
    source: dict[str, Any] | None = None,
    **publish_kwargs: Any,
) -> VersionInfo:
    """Write the standard file (and program) into ``folder`` and publish them with ``sources``."""
    from registry_cli.formats import torch_program, torch_standard

    out = folder / "out"
    out.mkdir()
    torch_standard.save_standard(converted.doc, out / torch_standard.STANDARD_FILE)
    extra: list[tuple[Path, str]] = [
        (out / torch_standard.STANDARD_FILE, torch_standard.STANDARD_FILE)
    ]
    standard = {"pytorch": f"payload/{torch_standard.STANDARD_FILE}"}
    if converted.model is not None and signature is not None:
        program = torch_program.write_program(converted.model, signature, out)
        extra.append((out / program.filename, program.filename))
        standard[program.kind] = f"payload/{program.filename}"
        signature = program.signature
    converted.doc.clear()  # release the mapped checkpoint before the copy
    converted.model = None
    return registry.publish(
        name,
        list[str | os.PathLike[str]](sources),
        signature=signature,
        # our own outputs, on the registry's filesystem: renamed in, not copied
        produced=Produced(
            files=tuple(extra), move=True, standard_artifacts=standard, source=source
        ),
        **publish_kwargs,
    )


def publish_from_mlflow(
    registry: ModelRegistry,
    name: str,
    uri: str,
    *,
    tracking_uri: str | None = None,
    artifact_path: str | None = None,
    convert: ConversionOptions | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    signature: dict[str, Any] | None = None,
    **publish_kwargs: Any,
) -> VersionInfo:
    """Publish an MLflow run artifact or registered model version as the next version.

    The run's metrics and params are imported; ``metrics``/``params`` given here
    win key by key. ``signature`` defaults to the one in the model's ``MLmodel``.
    """
    from registry_cli.formats import mlflow_source

    validate_model_name(name)
    ref = mlflow_source.parse_source(uri, artifact_path)
    if convert is not None:
        convert.validate()
    tracking = mlflow_source.resolve_tracking_uri(tracking_uri, registry.config)
    found = mlflow_source.lookup(ref, tracking)  # exit 6 / 3 here, before any write
    with registry.scratch("mlflow") as folder:
        fetched = mlflow_source.download(found, tracking, folder)
        kwargs: dict[str, Any] = dict(
            metrics={**fetched.metrics, **(metrics or {})},
            params={**fetched.params, **(params or {})},
            signature=signature or fetched.signature or program_signature([fetched.local_path]),
            **publish_kwargs,
        )
        if convert is not None:
            converted = _load_for_conversion([fetched.local_path], convert)
            return _write_and_publish(
                registry,
                name,
                [fetched.local_path],
                folder,
                converted,
                source=fetched.source,
                **kwargs,
            )
        return registry.publish(
            name, [fetched.local_path], produced=Produced(source=fetched.source), **kwargs
        )


def program_signature(paths: list[str | os.PathLike[str]]) -> dict[str, Any] | None:
    """The input signature of the ``torch.export`` program among ``paths``, or None.

    As docs/predictions.md says: an exported program's signature is recorded as the program has it,
    read from the archive without importing torch. Only when that program is what
    predict will run: exactly one ``.pt2`` archive, no MLflow model (``MLmodel``)
    and no TorchScript archive beside it. Never raises: a source it cannot read is
    left for ``publish`` itself to report.
    """
    programs: list[Path] = []
    maybe_torchscript: list[Path] = []
    for file in _walk_files(paths):
        if file.name == "MLmodel":
            return None
        if file.name.endswith(".pt2"):
            programs.append(file)
        elif file.name.lower().endswith((".pt", ".pth", ".ts", ".jit", ".zip")):
            maybe_torchscript.append(file)
    if len(programs) != 1:
        return None
    import zipfile  # only with a .pt2 among the files

    from registry_cli.formats.torch_program import read_program_signature

    for file in maybe_torchscript:
        try:
            with zipfile.ZipFile(file) as zf:
                members = zf.namelist()
        except (OSError, zipfile.BadZipFile):
            continue
        if any(m.endswith("/constants.pkl") for m in members) and any(
            "/code/" in m for m in members
        ):
            return None
    return read_program_signature(programs[0])


def _walk_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    files = []
    for source in paths:
        path = Path(source)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for folder, _dirs, names in os.walk(path):
                files.extend(Path(folder) / n for n in names)
    return files
