"""A tiny image classifier for `make demo`: the user's own architecture code.

`regctl publish ... --convert torch-standard --arch demo_models:TinyNet` imports
this module (from the current directory, like `python -m`) to load the weights
strictly and export a program that runs without it.
"""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """Conv → ReLU → global average pool → linear; takes [N, 3, 16, 16] images."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
