"""Build a model from ``module:factory``, load weights strictly, write a runnable program.

With ``--arch`` the converter proves the weights fit the architecture (a strict
``load_state_dict``) and, given an example input shape, writes a program that
needs no user code to run: ``torch.export`` (``model.pt2``, batch dimension
dynamic when the model allows it) or, when export fails, TorchScript
(``model-torchscript.pt``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput

EXPORT_FILE = "model.pt2"
TORCHSCRIPT_FILE = "model-torchscript.pt"
DYNAMIC_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace a dynamic batch with 2
_MAX_KEYS_SHOWN = 8


@dataclass
class ProgramResult:
    kind: str  # "exported_program" | "torchscript"
    filename: str
    signature: dict[str, Any]
    notes: list[str]


@contextlib.contextmanager
def cwd_on_path() -> Iterator[None]:
    """Import like ``python -m``: the current directory first on ``sys.path``."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def split_arch(arch: str) -> tuple[str, str]:
    """``"pkg.models:Net"`` → ``("pkg.models", "Net")``; BadInput for anything else."""
    module_name, sep, attr = arch.partition(":")
    if not sep or not module_name or not attr:
        raise BadInput(
            f"invalid --arch {arch!r}",
            hint="write module:factory, e.g. torchvision.models:resnet18",
        )
    return module_name, attr


def load_factory(arch: str) -> Any:
    """Import ``module:factory`` (e.g. ``torchvision.models:resnet18``); BadInput if we cannot."""
    module_name, attr = split_arch(arch)
    with cwd_on_path():
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BadInput(
                f"--arch {arch}: cannot import module {module_name!r} ({exc})",
                hint="run from the folder that holds it, or add it to PYTHONPATH "
                "(torchvision.models:... needs torchvision installed)",
            ) from None
        except Exception as exc:
            raise BadInput(
                f"--arch {arch}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise BadInput(f"--arch {arch}: module {module_name!r} has no {attr!r}")
    if not callable(factory):
        raise BadInput(f"--arch {arch}: {attr!r} is not callable")
    return factory


def build_model(arch: str, num_classes: int | None) -> Any:
    """Call the factory (with ``num_classes=`` when given) and check it returns an nn.Module."""
    import torch

    factory = load_factory(arch)
    kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        accepts = _accepts_num_classes(factory)
        hint = (
            "the factory takes no num_classes argument; drop --num-classes"
            if num_classes is not None and accepts is False
            else None
        )
        raise BadInput(f"--arch {arch}: calling the factory failed: {exc}", hint=hint) from None
    except Exception as exc:
        raise BadInput(
            f"--arch {arch}: calling the factory failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise BadInput(
            f"--arch {arch}: the factory returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _accepts_num_classes(factory: Any) -> bool | None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    return "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    return shown + (
        f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else ""
    )


def load_strict(model: Any, state_dict: dict[str, Any], arch: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names every mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_show(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_show(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (checkpoint vs model): {_show(shapes)}")
    if problems:
        raise BadInput(
            f"the checkpoint does not fit --arch {arch}: " + "; ".join(problems),
            hint="check --arch and --num-classes match how the model was trained",
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except Exception as exc:
        raise BadInput(f"loading the weights into --arch {arch} failed: {exc}") from None


# torch._export.serde.schema.ScalarType → the dtype names signatures use (numpy's)
_SCALAR_TYPES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    12: "bool",
    13: "bfloat16",
}
_MAX_PROGRAM_JSON = 256 * 1024 * 1024


def read_program_signature(path: Path) -> dict[str, Any] | None:
    """The user inputs of a ``torch.export`` archive as the program has them, or None.

    Read from the archive's serialized program (``<archive>/models/<name>.json``,
    torch >= 2.6; ``serialized_exported_program.json`` before) without importing
    torch: each user input's dtype and sizes, a symbolic size (dynamic dimension)
    as ``None``. None for anything unexpected (not a zip, several models, an input
    that is not a tensor, an unknown dtype): the loader then reads the program itself.
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = [
                n
                for n in zf.namelist()
                if (n.count("/") == 2 and n.split("/")[1] == "models" and n.endswith(".json"))
                or n.endswith("serialized_exported_program.json")
            ]
            if len(names) != 1 or zf.getinfo(names[0]).file_size > _MAX_PROGRAM_JSON:
                return None
            doc = json.loads(zf.read(names[0]))
        graph_module = doc["graph_module"]
        tensors = graph_module["graph"]["tensor_values"]
        inputs = []
        for spec in graph_module["signature"]["input_specs"]:
            if "user_input" not in spec:
                continue  # parameters, buffers, constants: not fed by the caller
            tensor = tensors[spec["user_input"]["arg"]["as_tensor"]["name"]]
            dtype = _SCALAR_TYPES[tensor["dtype"]]
            shape = [
                size["as_int"] if isinstance(size.get("as_int"), int) else None
                for size in tensor["sizes"]
            ]
            inputs.append({"shape": shape, "dtype": dtype})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile):
        return None
    if not inputs:
        return None
    return {"inputs": inputs, "batch_dim": 0, "source": "exported_program"}


def write_program(model: Any, signature: dict[str, Any], folder: Path) -> ProgramResult:
    """Write ``model.pt2`` (dynamic batch if possible), else ``model-torchscript.pt``.

    ``signature`` is the one given by ``--example-shape`` (first dim dynamic); the
    result carries the program's own signature.
    """
    import torch

    spec = signature["inputs"][0]
    dtype = getattr(torch, spec["dtype"])
    model.eval()
    notes: list[str] = []
    for dynamic in (True, False):  # a static program takes one example at a time
        example = _example(DYNAMIC_BATCH if dynamic else 1, spec["shape"][1:], dtype)
        try:
            program = _export(model, example, dynamic=dynamic)
            torch.export.save(program, str(folder / EXPORT_FILE))
            return ProgramResult(
                "exported_program", EXPORT_FILE, _program_signature(program, spec["dtype"]), notes
            )
        except Exception as exc:
            notes.append(
                f"torch.export ({'dynamic' if dynamic else 'static'} batch) failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            )
    try:
        with torch.no_grad():
            try:
                # traced with a batch of 2 so batch-size constants do not slip in
                example = _example(DYNAMIC_BATCH, spec["shape"][1:], dtype)
                scripted = torch.jit.trace(model, example)
            except Exception:
                scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(folder / TORCHSCRIPT_FILE))
    except Exception as exc:
        raise BadInput(
            "could not write a runnable program: "
            + "; ".join(notes)
            + f"; TorchScript failed too: {type(exc).__name__}: {exc}",
            hint="check --example-shape matches the model's input, or drop --example-shape "
            "to publish only the standard file",
        ) from None
    return ProgramResult("torchscript", TORCHSCRIPT_FILE, dict(signature), notes)


def _example(batch: int, rest: list[Any], dtype: Any) -> Any:
    import torch

    shape = (batch, *rest)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


def _export(model: Any, example: Any, *, dynamic: bool) -> Any:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)


def _program_signature(program: Any, dtype: str) -> dict[str, Any]:
    """Input shapes as the exported program has them: a symbolic dimension is ``None``."""
    inputs = []
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        val = node.meta.get("val")
        # a torch.SymInt (dynamic dimension) is not an int
        shape = [d if isinstance(d, int) else None for d in getattr(val, "shape", [])]
        inputs.append({"shape": shape, "dtype": dtype})
    return {"inputs": inputs, "batch_dim": 0}
