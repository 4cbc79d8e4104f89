"""Tiny real models for the prediction tests: a torch sequence model saved as a
``torch.export`` program and as TorchScript, and an MLflow pyfunc sequence model.

Both take ``[N, 12, 18]`` float32 and have outputs a test can compute by hand:
torch → ``[mean(x), mean(x) + 1]`` per example; MLflow → ``sum(x)`` per example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

T, F = 12, 18


def torch_model():
    import torch

    class TinySeq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(F, 2)
            with torch.no_grad():
                self.lin.weight.fill_(1.0 / F)
                self.lin.bias.copy_(torch.tensor([0.0, 1.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.mean(dim=1))

    return TinySeq().eval()


def expected_torch(x: np.ndarray) -> np.ndarray:
    """What the torch model answers for a batch ``x``."""
    m = x.astype(np.float64).mean(axis=(1, 2))
    return np.stack([m, m + 1.0], axis=1)


def save_exported(path: Path) -> Path:
    import torch

    example = torch.randn(2, T, F)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(torch_model(), (example,), dynamic_shapes={"x": {0: batch}})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def save_torchscript(path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(torch_model()), str(path))
    return path


MLFLOW_CODE = '''
import os

import mlflow
import numpy as np


class SeqModel(mlflow.pyfunc.PythonModel):
    """Sum over time and features; logs each call when SEQ_MODEL_CALLS names a file."""

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        calls = os.environ.get("SEQ_MODEL_CALLS")
        if calls:
            with open(calls, "a") as fh:
                fh.write("call\\n")
        x = np.asarray(model_input, dtype=np.float32)
        return x.sum(axis=(1, 2))


mlflow.models.set_model(SeqModel())
'''


def mlflow_signature():
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, T, F))]))


def save_mlflow_seq(folder: Path) -> Path:
    """An MLflow pyfunc model directory (models-from-code, so no pickled test class)."""
    import mlflow.pyfunc

    code = folder.parent / "seq_model_code.py"
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text(MLFLOW_CODE)
    mlflow.pyfunc.save_model(str(folder), python_model=str(code), signature=mlflow_signature())
    return folder


def example(seed: int = 0, batch: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (T, F) if batch is None else (batch, T, F)
    return rng.standard_normal(shape).astype(np.float32)
