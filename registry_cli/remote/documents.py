"""Documents of the registry server turned back into the core's results (see docs/server.md)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from registry_cli.core.types import ChangeResult, VersionInfo
from registry_cli.error_codes import ERRORS
from registry_cli.errors import BadInput, RegctlError, RemoteError


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
    cls = ERRORS.get(str(error.get("code")))
    if cls is None:
        return RemoteError(f"the registry server failed: {message}", hint=hint)
    return cls(message, hint=hint)
