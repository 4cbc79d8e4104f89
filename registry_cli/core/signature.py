"""Input signatures: what shape and dtype a model takes (see docs/predictions.md#signatures)."""

from __future__ import annotations

from typing import Any

from registry_cli.errors import BadInput

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool")


def signature_from_shape(shape: str, dtype: str = "float32") -> dict[str, Any]:
    """``"1,12,18"`` → ``{"inputs": [{"shape": [None, 12, 18], "dtype": "float32"}]}``.

    The first dimension is the batch and recorded as dynamic (``None``).
    """
    try:
        dims = [int(d) for d in shape.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise BadInput(f"invalid --example-shape {shape!r}", hint="e.g. 1,3,32,32") from None
    if not dims or any(d < 1 for d in dims):
        raise BadInput(f"invalid --example-shape {shape!r}", hint="positive integers, e.g. 1,12,18")
    if dtype not in DTYPES:
        raise BadInput(f"unsupported dtype {dtype!r}", hint=f"one of: {', '.join(DTYPES)}")
    return {"inputs": [{"shape": [None, *dims[1:]], "dtype": dtype}], "batch_dim": 0}
