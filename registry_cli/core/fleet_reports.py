"""Fleet reports: what a device says it runs (docs/fleet.md).

A report is ``{report_id, device, ring, model, version, manifest_sha256, state,
detail, time}``. :func:`validate_report` checks one as it arrives (from the API,
from ``regctl fleet ingest`` or from a device's outbox) and returns it in its
normal form; anything wrong is a :class:`BadInput` naming the key, and nothing
is stored. Pure: no storage, no network.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from registry_cli.core.names import SEGMENT_RE, format_version, parse_version
from registry_cli.core.names import validate_model_name as _model_name
from registry_cli.errors import BadInput

STATES = ("pulled", "failed", "running", "healthy", "unhealthy")
FAILURE_STATES = ("failed", "unhealthy")
KEYS = ("report_id", "device", "ring", "model", "version", "manifest_sha256", "state")
OPTIONAL = ("detail", "time")
MAX_DETAIL_BYTES = 4096
MAX_BATCH = 1000
DEFAULT_RING = "default"

REPORT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
RING_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,58}\Z")  # ring-<ring> is an alias
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")


def utc_now() -> str:
    return (
        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def parse_time(value: str) -> _dt.datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    when = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc)


def format_time(when: _dt.datetime) -> str:
    return (
        when.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def validate_device(device: Any) -> str:
    if not isinstance(device, str) or not SEGMENT_RE.match(device):
        raise BadInput(
            f"invalid device {device!r}",
            hint="a device id is 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (default: the host name)",
        )
    return device


def validate_ring(ring: Any) -> str:
    if not isinstance(ring, str) or not RING_RE.match(ring):
        raise BadInput(
            f"invalid ring {ring!r}",
            hint="a ring is 1-59 letters, digits, '_' or '-', starting with a letter or digit "
            "(its devices follow alias ring-<ring>)",
        )
    return ring


def default_device() -> str:
    """The host name, cut to a valid device id."""
    import socket

    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:64]
    return name if SEGMENT_RE.match(name or "") else "device"


def validate_report(raw: Any, *, received_at: str | None = None) -> dict[str, Any]:
    """The report in normal form; BadInput when anything is missing, unknown or wrong."""
    if not isinstance(raw, dict):
        raise BadInput("a report is a JSON object")
    unknown = sorted(str(k) for k in raw if k not in KEYS + OPTIONAL)
    if unknown:
        raise BadInput(
            f"unknown report key(s): {', '.join(unknown)}",
            hint=f"report keys: {', '.join(KEYS + OPTIONAL)}",
        )
    for key in ("report_id", "device", "model", "state"):
        if raw.get(key) in (None, ""):
            raise BadInput(f"report has no {key}")
    report_id = raw["report_id"]
    if not isinstance(report_id, str) or not REPORT_ID_RE.match(report_id):
        raise BadInput(f"invalid report_id {report_id!r}", hint="1-128 letters, digits, ._:-")
    state = raw["state"]
    if state not in STATES:
        raise BadInput(f"unknown state {state!r}", hint=f"states: {', '.join(STATES)}")
    if not isinstance(raw["model"], str):
        raise BadInput(f"invalid model {raw['model']!r}")
    version = raw.get("version")
    if version is not None:
        if not isinstance(version, (str, int)) or isinstance(version, bool):
            raise BadInput(f"invalid version {version!r}")
        version = format_version(parse_version(version))
    elif state != "failed":
        raise BadInput(f"a {state!r} report needs a version", hint="only 'failed' may omit it")
    sha = raw.get("manifest_sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.match(sha)):
        raise BadInput(f"invalid manifest_sha256 {sha!r}", hint="64 lowercase hex digits")
    detail = raw.get("detail")
    if detail is not None:
        if not isinstance(detail, (str, dict)):
            raise BadInput("detail is a string or a JSON object")
        size = len(json.dumps(detail, separators=(",", ":")).encode())
        if size > MAX_DETAIL_BYTES:
            raise BadInput(f"detail is {size} bytes; at most {MAX_DETAIL_BYTES}")
    received = received_at or utc_now()
    when = raw.get("time")
    if when is None:
        when = received
    elif not isinstance(when, str):
        raise BadInput(f"invalid time {when!r}", hint="ISO 8601, e.g. 2026-01-31T12:00:00Z")
    else:
        try:
            when = format_time(parse_time(when))
        except ValueError:
            raise BadInput(
                f"invalid time {when!r}", hint="ISO 8601, e.g. 2026-01-31T12:00:00Z"
            ) from None
    return {
        "report_id": report_id,
        "device": validate_device(raw["device"]),
        "ring": validate_ring(raw.get("ring") or DEFAULT_RING),
        "model": _model_name(raw["model"]),
        "version": version,
        "manifest_sha256": sha,
        "state": state,
        "detail": detail,
        "time": when,
    }


def validate_batch(raw: Any, *, received_at: str | None = None) -> list[dict[str, Any]]:
    """One report or a list of them (an outbox, a file); all valid, or BadInput."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise BadInput("no reports given")
    if len(items) > MAX_BATCH:
        raise BadInput(f"{len(items)} reports in one request; at most {MAX_BATCH}")
    out = []
    for index, item in enumerate(items):
        try:
            out.append(validate_report(item, received_at=received_at))
        except BadInput as exc:
            if len(items) == 1:
                raise
            raise BadInput(f"report {index + 1}: {exc.message}", hint=exc.hint) from None
    return out


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """``30m``, ``1h``, ``45s``, ``2d`` or a number of seconds → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    found = _DURATION_RE.match(str(value).strip().lower())
    if not found:
        raise BadInput(f"invalid {what} {value!r}", hint="e.g. 45s, 30m, 1h, 2d")
    return float(found.group(1)) * _UNITS[found.group(2)]
