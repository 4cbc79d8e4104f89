"""Metric charts across versions, laid out on the server (the template draws the SVG).

One chart per metric: x is the version number, y the value; one point per
version that has the metric, down-sampled evenly beyond ``MAX_POINTS`` (the
first, the last and the champion always kept). Coordinates are plain numbers
in a fixed viewBox; the browser scales the SVG to its width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_POINTS = 500
MAX_CHARTS = 12
WIDTH, HEIGHT = 480.0, 190.0
LEFT, RIGHT, TOP, BOTTOM = 52.0, 18.0, 22.0, 28.0


@dataclass
class Point:
    version: int
    value: float
    x: float
    y: float
    champion: bool = False
    archived: bool = False

    @property
    def label(self) -> str:
        return f"v{self.version}: {fmt(self.value)}" + (" (champion)" if self.champion else "")


@dataclass
class Chart:
    metric: str
    points: list[Point]
    total: int  # versions with this metric, before sampling
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    plot_bottom: float = HEIGHT - BOTTOM
    plot_right: float = WIDTH - RIGHT

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def sampled(self) -> bool:
        return len(self.points) < self.total

    @property
    def champion(self) -> Point | None:
        return next((p for p in self.points if p.champion), None)


def fmt(value: float) -> str:
    return f"{value:.4g}"


def _sample(items: list[tuple[int, float]], keep: set[int]) -> list[tuple[int, float]]:
    if len(items) <= MAX_POINTS:
        return items
    step = (len(items) - 1) / (MAX_POINTS - 1)
    chosen = {round(i * step) for i in range(MAX_POINTS)}
    chosen.update(i for i, (v, _) in enumerate(items) if v in keep)
    return [items[i] for i in sorted(chosen)]


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round values (steps of 1, 2 or 5 times a power of ten) between low and high."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    out = []
    value = first
    while value <= high + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out or [low]


def metric_charts(
    series: dict[int, dict[str, float]],
    *,
    champion: int | None = None,
    archived: frozenset[int] | set[int] = frozenset(),
) -> list[Chart]:
    """Charts for ``series`` (version number -> its metrics), one per metric name."""
    names = sorted({m for metrics in series.values() for m in metrics})[:MAX_CHARTS]
    charts = []
    for name in names:
        items = sorted(
            (v, float(metrics[name]))
            for v, metrics in series.items()
            if isinstance(metrics.get(name), (int, float))
            and not isinstance(metrics.get(name), bool)
            and math.isfinite(float(metrics[name]))
        )
        if not items:
            continue
        kept = _sample(items, {champion} if champion else set())
        charts.append(_layout(name, kept, len(items), champion, archived))
    return charts


def _layout(
    name: str,
    items: list[tuple[int, float]],
    total: int,
    champion: int | None,
    archived: frozenset[int] | set[int],
) -> Chart:
    chart = Chart(metric=name, points=[], total=total)
    x_low, x_high = items[0][0], items[-1][0]
    values = [v for _, v in items]
    y_low, y_high = min(values), max(values)
    pad = (y_high - y_low) * 0.08 or (abs(y_high) * 0.1 or 1.0)
    y_low, y_high = y_low - pad, y_high + pad
    span_x = (chart.plot_right - LEFT) or 1.0
    span_y = chart.plot_bottom - TOP

    def x_of(version: float) -> float:
        if x_high == x_low:
            return LEFT + span_x / 2
        return LEFT + (version - x_low) / (x_high - x_low) * span_x

    def y_of(value: float) -> float:
        return chart.plot_bottom - (value - y_low) / (y_high - y_low) * span_y

    chart.points = [
        Point(v, value, x_of(v), y_of(value), v == champion, v in archived) for v, value in items
    ]
    chart.y_ticks = [(y_of(t), fmt(t)) for t in _ticks(y_low + pad, y_high - pad)]
    xs = sorted({x_low, x_high, *[round(t) for t in _ticks(x_low, x_high, 5) if t == round(t)]})
    xs = [
        v
        for i, v in enumerate(xs)
        if i in (0, len(xs) - 1)
        or (v - xs[i - 1] >= (x_high - x_low) / 8 and x_high - v >= (x_high - x_low) / 8)
    ]
    chart.x_ticks = [(x_of(v), f"v{v}") for v in xs]
    return chart
