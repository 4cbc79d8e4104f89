"""Stage gates (see docs/concepts.md): conditions a version must meet to enter a stage.

A lifecycle rule, kept beside the others in the core; ``core/config.py`` only
parses the ``gates:`` section into these values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

GATE_RE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+|[-+]?inf)\s*\Z")


def parse_condition(metric: str, expr: str) -> MetricCondition:
    """``accuracy``, ``">= 0.9"`` -> a condition; ValueError when ``expr`` is not OP NUMBER."""
    m = GATE_RE.match(expr)
    if not m:
        raise ValueError(expr)
    return MetricCondition(metric, m.group(1), float(m.group(2)))


@dataclass(frozen=True)
class MetricCondition:
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return {
            ">=": value >= self.threshold,
            ">": value > self.threshold,
            "<=": value <= self.threshold,
            "<": value < self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class StageGate:
    """Conditions a version must meet to enter a stage."""

    metrics: tuple[MetricCondition, ...] = ()
    tags: tuple[str, ...] = ()
    signed_by: tuple[str, ...] = ()  # public key files: a valid signature by one is required

    def failures(
        self,
        metrics: dict[str, float],
        tags: dict[str, str],
        signers: Sequence[str] = (),
        unsigned_why: str = "",
    ) -> list[str]:
        """``signers``: who signed the version validly with a ``signed_by`` key."""
        out: list[str] = []
        if self.signed_by and not signers:
            why = f" ({unsigned_why})" if unsigned_why else ""
            out.append(f"a valid signature by a signed_by key is required{why}")
        for cond in self.metrics:
            if cond.metric not in metrics:
                out.append(f"{cond} (metric {cond.metric!r} is missing)")
            elif not cond.holds(float(metrics[cond.metric])):
                out.append(f"{cond} (got {metrics[cond.metric]:g})")
        for tag in self.tags:
            if tag not in tags:
                out.append(f"tag {tag!r} is required")
        return out
