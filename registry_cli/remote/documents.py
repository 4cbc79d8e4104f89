"""Documents of the registry server turned back into the core's results (see docs/server.md)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from registry_cli.core.types import ChangeResult, VersionInfo
from registry_cli.error_codes import ERRORS
from registry_cli.errors import BadInput, GateFailed, RegctlError, RemoteError


def quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(str(text), safe=safe)


def read_token_file(path: str | os.PathLike[str]) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"token file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read token file {path}: {exc.strerror}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise BadInput(f"token file {path} is empty")
    return token


def version_info(doc: dict[str, Any]) -> VersionInfo:
    """A ``show --json`` (or ``versions --json`` entry) document as a VersionInfo."""
    return VersionInfo(
        name=doc.get("name", ""),
        version=int(str(doc["version"]).lstrip("v")),
        status=doc.get("status", ""),
        stages=list(doc.get("stages") or []),
        aliases=list(doc.get("aliases") or []),
        tags=dict(doc.get("tags") or {}),
        metrics=dict(doc.get("metrics") or {}),
        params=dict(doc.get("params") or {}),
        description=doc.get("description"),
        created_at=doc.get("created_at", ""),
        created_by=doc.get("created_by", ""),
        source=dict(doc.get("source") or {}),
        files=list(doc.get("files") or []),
        derived_from=doc.get("derived_from"),
        path=Path(doc.get("path") or ""),
        preferred_weight=doc.get("preferred_weight", ""),
        bundle=dict(doc.get("bundle") or {}),
        standard_artifacts=dict(doc.get("standard_artifacts") or {}),
        signature=doc.get("signature"),
        manifest={},
    )


def change_result(doc: dict[str, Any]) -> ChangeResult:
    return ChangeResult(
        action=doc["action"],
        name=doc["name"],
        version=doc.get("version"),
        changed=doc.get("changed") or {},
        noop=bool(doc.get("noop")),
        message=doc.get("message") or "",
    )


def error_from(status: int, doc: Any, url: str) -> RegctlError:
    """The exception an error document of the server stands for (see docs/server.md)."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return RemoteError(f"the registry server {url} answered HTTP {status}")
    message = str(error.get("message") or f"HTTP {status}")
    hint = error.get("hint")
    if status in (401, 403):
        return RemoteError(
            f"the registry server refused the request: {message}",
            hint=hint or "check $REGCTL_TOKEN / --token-file",
        )
    failures = error.get("failures")
    if error.get("code") == "refused" and isinstance(failures, list):
        return GateFailed(message, [str(f) for f in failures], hint=hint)
    cls = ERRORS.get(str(error.get("code")))
    if cls is None:
        return RemoteError(f"the registry server failed: {message}", hint=hint)
    return cls(message, hint=hint)


PUBLISH_KEYS = frozenset(
    {"metrics", "params", "tags", "description", "stage", "set_latest", "set_alias",
     "derived_from", "signature"}
)  # fmt: skip


def publish_metadata(meta: dict[str, Any], convert: Any) -> dict[str, Any]:
    """The ``metadata`` document of a publish from :meth:`RemoteRegistry.publish`'s
    keyword arguments (and conversion options)."""
    unknown = set(meta) - PUBLISH_KEYS
    if unknown:
        raise TypeError(f"publish() got unexpected keyword argument(s) {sorted(unknown)}")
    doc: dict[str, Any] = {
        "metrics": dict(meta.get("metrics") or {}),
        "params": dict(meta.get("params") or {}),
        "tags": dict(meta.get("tags") or {}),
        "description": meta.get("description"),
        "derived_from": meta.get("derived_from"),
        "signature": meta.get("signature"),
        "stage": meta.get("stage"),
        "no_latest": not meta.get("set_latest", True),
        "no_alias": not meta.get("set_alias", True),
    }
    if convert is not None:
        doc["convert"] = convert.target
        doc["task"] = convert.task
        doc["num_classes"] = convert.num_classes
        if convert.arch is not None:
            doc["arch"] = convert.arch
        if convert.trust_pickle:
            doc["trust_pickle"] = True
    return {k: v for k, v in doc.items() if v is not None}
