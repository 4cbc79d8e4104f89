"""Find and load what is runnable in a version folder or a pulled bundle folder.

Both hold ``manifest.json`` and ``payload/``. In order (see docs/predictions.md):

1. the manifest's ``standard_artifacts`` ``exported_program`` / ``torchscript``
   (written by ``publish --convert torch-standard --arch``);
2. an MLflow model directory (a ``MLmodel`` file) → ``mlflow.pyfunc``;
3. the preferred weight, then any payload file, that is a ``torch.export``
   program (``.pt2``) or a TorchScript archive (recognised by its zip members,
   without unpickling anything).

``model-standard.pt`` alone is weights, not a program: nothing runnable is
exit 4. The signature comes from the manifest, else from ``MLmodel``, else
from the exported program itself.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput, IntegrityError, RegctlError, RuleViolation
from registry_cli.predict import inputs as model_inputs
from registry_cli.storage.layout import inside

KINDS = ("exported_program", "torchscript", "mlflow")
_MLFLOW_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
}


class PredictionFailed(RegctlError):
    """The model raised on an input that passed the signature check. Exit code 1."""


@dataclass(frozen=True)
class Runnable:
    """Where the runnable artifact of a version is and what kind it is."""

    kind: str  # one of KINDS
    path: Path  # a file, or the MLflow model directory
    relpath: str  # relative to the version folder, for messages and JSON


@dataclass
class LoadedModel:
    """A model ready to run, with the facts a reply reports. Immutable once loaded."""

    name: str
    version: str  # "vN"
    runnable: Runnable
    signature: dict[str, Any] | None
    run: Callable[[Any], Any] = field(repr=False)
    alias: str | None = None

    def predict(self, x: Any) -> Any:
        """Check ``x`` against the signature, run the model, return a JSON-ready value."""
        prepared = model_inputs.prepare(x, self.signature)
        try:
            output = self.run(prepared.array)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            if model_inputs.single_input_spec(self.signature) is None:
                # Nothing was checked up front, so the input is the likely culprit.
                raise BadInput(
                    f"{self.name}:{self.version} rejected the input: {reason}",
                    hint="this version records no input signature; "
                    "publish with --example-shape to have inputs checked first",
                ) from exc
            raise PredictionFailed(f"{self.name}:{self.version} failed: {reason}") from exc
        if prepared.single:
            output = model_inputs.unbatch(output)
        return model_inputs.to_jsonable(output)


# --------------------------------------------------------------------- finding
def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _is_exported_program(path: Path) -> bool:
    if not path.name.endswith(".pt2"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("archive_format") or "/models/" in n for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def find_runnable(folder: Path, manifest: dict[str, Any]) -> Runnable:
    """The runnable artifact of a version folder, or :class:`RuleViolation` (exit 4)."""
    label = f"{manifest.get('name')}:{manifest.get('version')}"
    standard = manifest.get("standard_artifacts") or {}
    for kind in ("exported_program", "torchscript"):
        rel = standard.get(kind)
        if isinstance(rel, str):
            path = inside(folder, rel)
            if not path.is_file():
                raise IntegrityError(
                    f"{label}: {rel} is in the manifest but missing on disk",
                    hint="check the version with: regctl verify",
                )
            return Runnable(kind, path, rel)
    paths: list[str] = sorted(
        str(f["path"]) for f in manifest.get("files") or [] if isinstance(f, dict)
    )
    mlmodels = [p for p in paths if p.rsplit("/", 1)[-1] == "MLmodel"]
    if mlmodels:
        rel = min(mlmodels, key=lambda p: (p.count("/"), p)).rsplit("/", 1)[0]
        return Runnable("mlflow", inside(folder, rel), rel)
    preferred = str(manifest.get("preferred_weight"))
    ordered = ([preferred] if preferred in paths else []) + [p for p in paths if p != preferred]
    for rel in ordered:
        path = inside(folder, rel)
        if _is_exported_program(path):
            return Runnable("exported_program", path, rel)
        if rel.lower().endswith((".pt", ".pth", ".ts", ".jit", ".zip")) and _is_torchscript(path):
            return Runnable("torchscript", path, rel)
    held = ", ".join(p.removeprefix("payload/") for p in paths[:5]) or "nothing"
    raise RuleViolation(
        f"nothing runnable in {label} (payload holds {held}{', ...' if len(paths) > 5 else ''})",
        hint="predict needs an MLflow model directory, a torch.export .pt2 or TorchScript; "
        "publish with --convert torch-standard --arch module:factory to add one",
    )


# ------------------------------------------------------------------ signatures
def signature_from_mlmodel(model_dir: Path) -> dict[str, Any] | None:
    """Translate an ``MLmodel`` input schema into regctl's signature shape.

    Tensor specs keep their shape (``-1`` → ``None``); a column schema becomes
    ``[None, n_columns]`` with the column names, so ``X`` rows are checked by width.
    """
    import yaml

    try:
        doc = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
        raw = ((doc or {}).get("signature") or {}).get("inputs")
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(specs, list) or not specs:
        return None
    if all(isinstance(s, dict) and s.get("type") == "tensor" for s in specs):
        out = []
        for s in specs:
            tspec = s.get("tensor-spec") or {}
            shape = [None if d is None or d < 0 else int(d) for d in tspec.get("shape") or []]
            out.append(
                {
                    "shape": shape,
                    "dtype": tspec.get("dtype"),
                    **({"name": s["name"]} if s.get("name") else {}),
                }
            )
        return {"inputs": out, "batch_dim": 0, "source": "MLmodel"}
    columns = [s.get("name") for s in specs if isinstance(s, dict)]
    dtypes = {_MLFLOW_DTYPES.get(str(s.get("type"))) for s in specs if isinstance(s, dict)}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    if dtype is None and dtypes <= {"float64", "float32", "int64", "int32"}:
        dtype = "float64"
    return {
        "inputs": [{"shape": [None, len(columns)], "dtype": dtype, "columns": columns}],
        "batch_dim": 0,
        "source": "MLmodel",
    }


def _signature_from_program(program: Any) -> dict[str, Any] | None:
    """Shapes of an ExportedProgram's user inputs as exported (symbolic dims → ``None``)."""
    try:
        wanted = list(program.graph_signature.user_inputs)
        nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        out = []
        for name in wanted:
            val = nodes[name].meta.get("val")
            shape = [d if isinstance(d, int) else None for d in val.shape]
            out.append({"shape": shape, "dtype": str(val.dtype).removeprefix("torch.")})
    except Exception:  # an odd program: run it unchecked rather than refuse it
        return None
    return {"inputs": out, "batch_dim": 0, "source": "exported_program"} if out else None


# --------------------------------------------------------------------- loading
def _need(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BadInput(
            f"running this model needs {module}, which is not installed",
            hint=f"pip install 'regctl[{extra}]'",
        ) from None


def _torch_runner(module: Any, signature: dict[str, Any] | None) -> Callable[[Any], Any]:
    import torch

    spec = model_inputs.single_input_spec(signature) if signature else None
    cast = torch.bfloat16 if spec and spec.get("dtype") == "bfloat16" else None

    def run(arr: Any) -> Any:
        tensor = torch.from_numpy(arr)
        if cast is not None:
            tensor = tensor.to(cast)
        elif spec is None and tensor.dtype == torch.float64:
            tensor = tensor.float()  # unchecked JSON numbers: torch's default dtype
        with torch.no_grad():
            return module(tensor)

    return run


def _mlflow_runner(model: Any, signature: dict[str, Any] | None) -> Callable[[Any], Any]:
    spec = model_inputs.single_input_spec(signature) if signature else None
    columns = spec.get("columns") if spec else None

    def run(arr: Any) -> Any:
        if columns and arr.ndim == 2:
            import pandas as pd

            return model.predict(pd.DataFrame(arr, columns=columns))
        return model.predict(arr)

    return run


def load_runnable(
    runnable: Runnable, signature: dict[str, Any] | None
) -> tuple[Callable[[Any], Any], dict[str, Any] | None]:
    """Load the artifact; return ``(run(batch_array) -> raw output, signature)``."""
    try:
        if runnable.kind == "mlflow":
            _need("mlflow", "mlflow")
            import mlflow.pyfunc

            signature = signature or signature_from_mlmodel(runnable.path)
            model = mlflow.pyfunc.load_model(str(runnable.path))
            return _mlflow_runner(model, signature), signature
        torch = _need("torch", "torch")
        if runnable.kind == "exported_program":
            program = torch.export.load(str(runnable.path))
            signature = signature or _signature_from_program(program)
            return _torch_runner(program.module(), signature), signature
        module = torch.jit.load(str(runnable.path), map_location="cpu")
        module.eval()
        return _torch_runner(module, signature), signature
    except RegctlError:
        raise
    except Exception as exc:
        raise RegctlError(
            f"cannot load {runnable.relpath} ({runnable.kind}): {type(exc).__name__}: {exc}",
            hint="was it saved with a compatible torch/mlflow version?",
        ) from exc


def read_folder_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a version or pulled-bundle folder (validated)."""
    from registry_cli.core.documents import ManifestFormatError, read_manifest

    try:
        return read_manifest(folder / "manifest.json")
    except FileNotFoundError:
        raise BadInput(
            f"{folder} has no manifest.json",
            hint="pass a registry reference or a pulled bundle folder",
        ) from None
    except ManifestFormatError as exc:
        raise IntegrityError(str(exc)) from None


def load_folder(
    folder: Path, manifest: dict[str, Any] | None = None, *, alias: str | None = None
) -> LoadedModel:
    """Load the runnable model of a version folder or a pulled bundle folder."""
    folder = Path(os.path.abspath(folder))
    manifest = manifest if manifest is not None else read_folder_manifest(folder)
    runnable = find_runnable(folder, manifest)
    run, signature = load_runnable(runnable, manifest.get("signature"))
    return LoadedModel(
        name=str(manifest.get("name")),
        version=str(manifest.get("version")),
        runnable=runnable,
        signature=signature,
        run=run,
        alias=alias,
    )
