"""Convert a PyTorch checkpoint to ``model-standard.pt`` (see docs/predictions.md).

The standard file is a plain ``torch.save`` dict that loads with
``torch.load(..., weights_only=True)``::

    {"format": "regctl.torch-standard", "format_version": 1, "state_dict": {...},
     "task": ..., "num_classes": ..., "arch": "module:factory" | None,
     "source": {"file": "best_checkpoint.pth", "sha256": "..."}, "torch_version": "2.x"}

A checkpoint is opened with ``weights_only=True``; anything that needs full
unpickling (a pickled ``nn.Module``, a global outside torch's allow-list) is
refused unless the caller passes ``trust_pickle=True``. Only this module and
:mod:`registry_cli.formats.torch_program` import torch.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput
from registry_cli.storage.hashing import hash_file

STANDARD_FORMAT = "regctl.torch-standard"
STANDARD_FORMAT_VERSION = 1
STANDARD_FILE = "model-standard.pt"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile
TASK_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}\Z")
TRUST_HINT = (
    "only if you trust where the file comes from, rerun with --trust-pickle "
    "(it runs code stored in the file)"
)
_UNSAFE_RE = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")


@dataclass
class LoadedCheckpoint:
    """A checkpoint's weights and what we learned about it."""

    path: Path
    sha256: str
    state_dict: dict[str, Any]  # wrapper prefixes ('module.', '_orig_mod.') removed
    meta: dict[str, Any]  # small scalars found beside the weights (epoch, num_classes, ...)


def validate_task(task: str | None) -> str | None:
    if task is not None and not TASK_RE.match(task):
        raise BadInput(
            f"invalid --task {task!r}",
            hint="a lower-case word such as classification, regression, detection, segmentation",
        )
    return task


def find_checkpoint(paths: list[Path]) -> Path:
    """The one ``.pt``/``.pth`` file among ``paths`` (files given, or inside folders given)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in CHECKPOINT_SUFFIXES
                    and f.name != STANDARD_FILE
                )
            )
        elif p.suffix.lower() in CHECKPOINT_SUFFIXES:
            found.append(p)
    if not found:
        raise BadInput(
            "--convert torch-standard needs a .pt, .pth or .ckpt checkpoint among the paths",
            hint="publish the checkpoint file itself, e.g. outputs/best_checkpoint.pth",
        )
    if len(found) > 1:
        names = ", ".join(str(f) for f in found[:5])
        raise BadInput(
            f"--convert torch-standard found {len(found)} checkpoints ({names})",
            hint="publish the one checkpoint to convert (other files can go in a second version "
            "or a folder without .pt/.pth files)",
        )
    return found[0]


def _needs_pickle(path: Path, message: str) -> str | None:
    """Why a weights-only load failed if full unpickling would be needed, else None (corrupt)."""
    import torch

    if "Weights only load failed" not in message:
        return None
    names = _UNSAFE_RE.findall(message)
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) or names
    except Exception:  # a legacy (non-zip) file: keep what the message named
        pass
    if names:
        return "it references " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    # "Unsupported operand": a valid pickle stream the weights-only unpickler cannot
    # follow (e.g. pickle protocol 4+ written by pickle.dump) still needs full unpickling.
    with open(path, "rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a plain pickle stream the weights-only loader cannot read"
    return None


def load_checkpoint(path: Path, *, trust_pickle: bool = False) -> LoadedCheckpoint:
    """Hash and load ``path`` and pull out its state dict; BadInput (exit 2) if we cannot.

    The file is hashed first, then memory-mapped by ``torch.load(mmap=True)``, so its
    bytes come from storage once and tensors are not copied until they are saved.
    """
    import torch

    _size, sha256 = hash_file(path)
    obj = _torch_load(path, trust_pickle=trust_pickle)
    state_dict, meta = _extract_state_dict(obj, path)
    state_dict = _strip_wrapper_prefix(state_dict)
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise BadInput(
                f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, "
                "not a tensor",
                hint="save the checkpoint with model.state_dict()",
            )
    return LoadedCheckpoint(path, sha256, state_dict, meta)


def _torch_load(path: Path, *, trust_pickle: bool) -> Any:
    import torch

    from registry_cli.formats.torch_program import cwd_on_path

    # a trusted pickle may name the user's own classes: import them like ``python -m``
    context = cwd_on_path() if trust_pickle else contextlib.nullcontext()
    try:
        with context, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol chatter
            try:
                return torch.load(
                    str(path), map_location="cpu", weights_only=not trust_pickle, mmap=True
                )
            except RuntimeError as exc:
                if "mmap can only be used" not in str(exc):
                    raise
                # a legacy (pre-zip) checkpoint cannot be mapped: read it normally
                return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        message = str(exc)
        why = None if trust_pickle else _needs_pickle(path, message)
        if why:
            raise BadInput(
                f"{path} needs full unpickling to load ({why}); "
                "refused because unpickling can run arbitrary code",
                hint=TRUST_HINT,
            ) from None
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        raise BadInput(
            f"{path} is not a readable PyTorch checkpoint ({first[:200]})",
            hint="check the file was saved with torch.save and copied completely",
        ) from None


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _extract_state_dict(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find the weights in the usual checkpoint shapes; also return the small scalars beside
    them (``epoch``, ``num_classes``, ...)."""
    import torch

    if isinstance(obj, torch.nn.Module):  # only reachable with trust_pickle
        return dict(obj.state_dict()), {}
    if _is_tensor_dict(obj):
        return dict(obj), {}
    if isinstance(obj, dict):
        meta = {
            k: v
            for k, v in obj.items()
            if isinstance(k, str) and isinstance(v, (int, float, str, bool))
        }
        for key in STATE_DICT_KEYS:
            inner: Any = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return dict(inner.state_dict()), meta
            if _is_tensor_dict(inner):
                return dict(inner), meta
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise BadInput(
            f"{path}: no state dict found (top-level keys: {keys})",
            hint="expected a state dict, or a dict holding one under "
            + ", ".join(repr(k) for k in STATE_DICT_KEYS),
        )
    raise BadInput(
        f"{path}: holds a {type(obj).__name__}, not a state dict or checkpoint dict",
        hint="save model.state_dict() (or a dict with 'model_state_dict')",
    )


def _strip_wrapper_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop ``module.`` (DataParallel) or ``_orig_mod.`` when every key carries it."""
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def standard_document(
    ckpt: LoadedCheckpoint, *, task: str | None, num_classes: int | None, arch: str | None
) -> dict[str, Any]:
    """The dict saved as ``model-standard.pt`` (its keys are listed in docs/predictions.md)."""
    import torch

    if num_classes is None and isinstance(ckpt.meta.get("num_classes"), int):
        num_classes = ckpt.meta["num_classes"]
    if task is None and isinstance(ckpt.meta.get("task"), str):
        task = ckpt.meta["task"] if TASK_RE.match(ckpt.meta["task"]) else None
    return {
        "format": STANDARD_FORMAT,
        "format_version": STANDARD_FORMAT_VERSION,
        "state_dict": ckpt.state_dict,
        "task": task,
        "num_classes": num_classes,
        "arch": arch,
        "source": {"file": ckpt.path.name, "sha256": ckpt.sha256},
        "torch_version": str(torch.__version__),
    }


def save_standard(doc: dict[str, Any], target: Path) -> None:
    """Write the standard file (a fresh file in the converter's private folder)."""
    import torch

    torch.save(doc, str(target))


def read_standard(path: Path) -> dict[str, Any]:
    """Load a ``model-standard.pt`` safely and check its format; for tests and consumers."""
    import torch

    doc = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(doc, dict) or doc.get("format") != STANDARD_FORMAT:
        raise BadInput(f"{path} is not a {STANDARD_FORMAT} file")
    if doc.get("format_version") != STANDARD_FORMAT_VERSION:
        raise BadInput(f"{path}: unsupported format_version {doc.get('format_version')!r}")
    return doc
