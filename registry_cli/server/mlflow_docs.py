"""regctl facts as MLflow Model Registry documents, and regctl errors as MLflow errors.

Pure functions of the documents the core returns (``show --json`` dicts), so
the MLflow routes answer with the JSON shapes of MLflow's REST API
(``ModelVersion``, ``RegisteredModel``, ``{"error_code", "message"}``).
See docs/mlflow.md for what maps to what.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from registry_cli.errors import (
    BadInput,
    IntegrityError,
    MachineFault,
    NotFound,
    RegctlError,
    RemoteError,
    RuleViolation,
)

STAGES = ("None", "Staging", "Production", "Archived")

# (core error, HTTP status, MLflow error code), a subclass before its base
ERRORS: tuple[tuple[type[RegctlError], int, str], ...] = (
    (MachineFault, 507, "INTERNAL_ERROR"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (BadInput, 400, "INVALID_PARAMETER_VALUE"),
    (RuleViolation, 400, "INVALID_STATE"),
    (IntegrityError, 500, "INTERNAL_ERROR"),
    (RemoteError, 502, "TEMPORARILY_UNAVAILABLE"),
)
HTTP_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "INVALID_PARAMETER_VALUE",
}


def error_doc(code: str, message: str, hint: str | None = None) -> dict[str, str]:
    """MLflow's error document; regctl's hint rides in the message."""
    return {"error_code": code, "message": f"{message} (hint: {hint})" if hint else message}


def error_of(exc: RegctlError) -> tuple[int, dict[str, str]]:
    """The status and MLflow error document for a core error."""
    for cls, status, code in ERRORS:
        if isinstance(exc, cls):
            return status, error_doc(code, exc.message, exc.hint)
    return 500, error_doc("INTERNAL_ERROR", exc.message, exc.hint)


def millis(iso: str | None) -> int:
    """An ISO 8601 time (UTC) as milliseconds since the epoch; 0 when unknown."""
    if not iso:
        return 0
    try:
        when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1000)


def number_of(version: str | int) -> int:
    """``v3``/``3`` -> 3."""
    text = str(version)
    return int(text[1:] if text.startswith("v") else text)


def current_stage(status: str, in_stages: list[str], stages: tuple[str, ...]) -> str:
    """MLflow's stage of a regctl version: ``Archived``; ``Production`` once in the last
    stage; ``Staging`` while only in the first stage; ``None`` in a stage between."""
    if status == "archived":
        return "Archived"
    if len(stages) > 1 and stages[-1] in in_stages:
        return "Production"
    if list(in_stages) == [stages[0]]:
        return "Staging"
    return "None"


def canonical_stage(stage: str) -> str:
    """MLflow's stage names are case-insensitive; anything else is refused."""
    for known in STAGES:
        if stage.lower() == known.lower():
            return known
    raise BadInput(f"invalid model version stage {stage!r}", hint=f"one of {', '.join(STAGES)}")


def source_uri(doc: dict[str, Any]) -> str:
    """The source string of a version: the MLflow URI it came from, else a models:/ URI."""
    source = doc.get("source") or {}
    if source.get("type") == "mlflow" and source.get("uri"):
        return str(source["uri"])
    return f"models:/{doc['name']}/{number_of(doc['version'])}"


def model_version(doc: dict[str, Any], stages: tuple[str, ...]) -> dict[str, Any]:
    """A ``show --json`` document as MLflow's ``ModelVersion``."""
    created = millis(doc.get("created_at"))
    source = doc.get("source") or {}
    return {
        "name": doc["name"],
        "version": str(number_of(doc["version"])),
        "creation_timestamp": created,
        "last_updated_timestamp": created,
        "user_id": doc.get("created_by") or "",
        "current_stage": current_stage(doc["status"], doc.get("stages") or [], stages),
        "description": doc.get("description") or "",
        "source": source_uri(doc),
        "run_id": source.get("run_id") or "",
        "status": "READY",
        "tags": [{"key": k, "value": str(v)} for k, v in sorted((doc.get("tags") or {}).items())],
        "aliases": sorted(doc.get("aliases") or []),
    }


def latest_versions(
    versions: list[dict[str, Any]],
    wanted: list[str] | None,
    production: int | None,
) -> list[dict[str, Any]]:
    """MLflow ``latest_versions``: per wanted stage (default all), the newest version in it.
    Production is the version the last stage's LATEST names (the champion)."""
    out = []
    for stage in [canonical_stage(s) for s in wanted] if wanted else list(STAGES):
        found = [v for v in versions if v["current_stage"] == stage]
        if stage == "Production" and production is not None:
            found = [v for v in found if int(v["version"]) == production] or found
        if found:
            out.append(max(found, key=lambda v: int(v["version"])))
    return out


def registered_model(
    name: str,
    versions: list[dict[str, Any]],
    aliases: dict[str, int],
    description: str | None,
    production: int | None,
) -> dict[str, Any]:
    """MLflow's ``RegisteredModel`` from the model's versions (as ``ModelVersion`` docs)."""
    created = [v["creation_timestamp"] for v in versions]
    return {
        "name": name,
        "creation_timestamp": min(created) if created else 0,
        "last_updated_timestamp": max(created) if created else 0,
        "description": description or "",
        "latest_versions": latest_versions(versions, None, production),
        "tags": [],
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())],
    }


def page(items: list[Any], max_results: int, token: str | None) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token of the next (an opaque offset)."""
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise BadInput(f"invalid page_token {token!r}") from None
        if start < 0:
            raise BadInput(f"invalid page_token {token!r}")
    chunk = items[start : start + max_results]
    end = start + len(chunk)
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return chunk, following
