"""Old systems' facts in regctl's shapes: keys, metrics, tags and times.

Old systems allow keys regctl does not (spaces, ``@``); they are kept readable
by replacing each bad character with ``_``. Times become UTC ISO 8601 with a
``Z``, as regctl writes them.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from registry_cli.core.names import KEY_RE

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.:/-]")


def clean_key(key: Any) -> str:
    cleaned = _BAD_KEY_CHARS.sub("_", str(key))[:128] or "_"
    if not KEY_RE.match(cleaned):
        cleaned = ("_" + cleaned)[:128]
    return cleaned


def number(value: Any) -> float | None:
    """A finite float, or None (booleans and text are not metrics)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def metrics_of(values: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        found = number(value)
        if found is not None:
            out[clean_key(key)] = found
    return out


def strings_of(values: dict[str, Any]) -> dict[str, str]:
    return {clean_key(k): "" if v is None else str(v) for k, v in values.items()}


def tags_of(value: Any) -> dict[str, str]:
    """Tags as a mapping, or a list of bare labels (``[baseline]`` -> ``baseline=true``)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return strings_of(value)
    if isinstance(value, (list, tuple)):
        return {clean_key(t): "true" for t in value if t is not None and str(t)}
    if isinstance(value, str) and value.strip():
        return {clean_key(t.strip()): "true" for t in value.split(",") if t.strip()}
    raise ValueError(f"tags must be a mapping or a list, not {type(value).__name__}")


def iso_time(value: Any) -> str | None:
    """UTC ISO 8601 (``...Z``) from epoch milliseconds, a datetime or its text; None if unknown.

    Naive times are taken as UTC (SQLite and YAML rarely record a zone)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10**11 else value  # ms (MLflow) or seconds
        moment = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    elif isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip().replace(" ", "T", 1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
