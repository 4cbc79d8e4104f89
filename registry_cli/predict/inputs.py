"""Prediction inputs and outputs: parse, check against the signature, make JSON.

The check runs *before* the model (see docs/predictions.md): input ``X`` of the signature's
rank is a batch; ``X`` one rank lower is one example, batched automatically
when the batch dimension is dynamic (``None``) and unbatched in the reply.
Shape or dtype mismatches raise :class:`BadInput` naming expected vs got.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

from registry_cli.errors import BadInput

NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class PreparedInput:
    """A checked model input: the batch array and whether the reply is unbatched."""

    array: Any  # numpy.ndarray, always batched when the signature has a batch dim
    single: bool


def load_input_bytes(data: bytes, *, source: str = "input") -> Any:
    """Parse ``.npy`` bytes or JSON (``{"X": ...}`` or a bare array) into a value.

    Returns a numpy array for ``.npy`` and the decoded ``X`` (nested lists) for JSON.
    """
    if data.startswith(NPY_MAGIC):
        import numpy as np

        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BadInput(f"{source}: not a readable .npy array ({exc})") from None
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(
            f"{source}: neither JSON nor .npy ({exc})",
            hint='pass {"X": [[...]]}, a bare JSON array, or a .npy file',
        ) from None
    return extract_x(doc, source=source)


def extract_x(doc: Any, *, source: str = "input") -> Any:
    """``{"X": ...}`` → its value; a bare list → itself; anything else is refused."""
    if isinstance(doc, dict):
        if "X" not in doc:
            raise BadInput(f"{source}: JSON object has no 'X'", hint='use {"X": [[...]]}')
        return doc["X"]
    if isinstance(doc, list):
        return doc
    raise BadInput(
        f"{source}: expected a JSON array or an object with 'X', got {type(doc).__name__}"
    )


def _as_array(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if not isinstance(value, list):
        raise BadInput(f"X must be an array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except ValueError:
        raise BadInput("X is ragged: every row must have the same length") from None
    if arr.dtype == object:
        raise BadInput("X is ragged or holds non-numbers: every row must have the same length")
    if arr.dtype.kind not in "biuf":
        raise BadInput(
            f"X holds {arr.dtype.kind == 'U' and 'strings' or arr.dtype}, expected numbers"
        )
    return arr


def _fmt_shape(shape: list[int | None] | tuple[int, ...]) -> str:
    return "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"


def _dims_match(want: list[int | None], got: tuple[int, ...]) -> bool:
    return len(want) == len(got) and all(
        w is None or w == g for w, g in zip(want, got, strict=False)
    )


def single_input_spec(signature: dict[str, Any] | None) -> dict[str, Any] | None:
    """The one input spec of a signature (None when the signature says nothing)."""
    if not signature:
        return None
    inputs = signature.get("inputs") or []
    if not inputs:
        return None
    if len(inputs) > 1:
        raise BadInput(f"the model takes {len(inputs)} inputs; regctl feeds a single 'X'")
    spec = inputs[0]
    return spec if isinstance(spec, dict) else None


def prepare(value: Any, signature: dict[str, Any] | None) -> PreparedInput:
    """Turn ``X`` into a batch array checked against ``signature``.

    Without a signature the array is passed as given (nothing to check against).
    """
    import numpy as np

    arr = _as_array(value)
    spec = single_input_spec(signature)
    if spec is None:
        return PreparedInput(arr, single=False)
    dtype_name = spec.get("dtype")
    # numpy has no bfloat16: such models take float32 and the runner casts.
    want_dtype = np.dtype("float32" if dtype_name == "bfloat16" else dtype_name or arr.dtype)
    if not np.can_cast(arr.dtype, want_dtype, casting="same_kind"):
        raise BadInput(
            f"X has dtype {arr.dtype}, expected {want_dtype} "
            f"(no safe conversion from {arr.dtype} to {want_dtype})"
        )
    shape = spec.get("shape")
    single = False
    if isinstance(shape, list) and shape:
        want = [None if d is None or (isinstance(d, int) and d < 0) else int(d) for d in shape]
        batch_dim = (signature or {}).get("batch_dim", 0)
        if _dims_match(want, arr.shape):
            pass
        elif batch_dim == 0 and want[0] is None and _dims_match(want[1:], arr.shape):
            arr = arr[np.newaxis, ...]
            single = True
        else:
            one = f" or {_fmt_shape(want[1:])} (one example)" if want[0] is None else ""
            raise BadInput(
                f"X has shape {_fmt_shape(arr.shape)}, expected {_fmt_shape(want)} (a batch){one}",
            )
    return PreparedInput(np.ascontiguousarray(arr, dtype=want_dtype), single=single)


def to_jsonable(obj: Any) -> Any:
    """Model output (tensor, ndarray, DataFrame, tuple, dict, scalar) → JSON-ready value.

    Non-finite floats become ``null``: JSON has no NaN/Infinity.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    mod = type(obj).__module__
    if mod.startswith("torch"):
        return to_jsonable(obj.detach().cpu().numpy())
    if mod.startswith("pandas"):
        if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
            return to_jsonable(obj.to_dict(orient="records"))
        return to_jsonable(obj.tolist())
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        import numpy as np

        arr = np.asarray(obj)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            return to_jsonable(arr.astype(object).tolist())
        return arr.tolist()
    return str(obj)


def unbatch(output: Any) -> Any:
    """The first item of a raw batched output (a single example batched by us)."""
    if isinstance(output, dict):
        return {k: unbatch(v) for k, v in output.items()}
    if isinstance(output, tuple):
        return tuple(unbatch(v) for v in output)
    if type(output).__module__.startswith("pandas"):
        rows = to_jsonable(output)
        return rows[0] if isinstance(rows, list) and rows else rows
    try:
        return output[0] if len(output) else output
    except TypeError:  # a scalar: nothing to unbatch
        return output
