"""``regctl serve`` settings: flag, else environment variable, else ``serve:`` in
registry.yaml, else the default (the table is :data:`registry_cli.settings.SERVE`).
Pure Python (no HTTP stack), so the CLI can validate settings before importing
anything heavy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from registry_cli.core.names import validate_alias, validate_model_name
from registry_cli.errors import BadInput
from registry_cli.settings import SERVE


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``regctl serve`` needs besides the registry."""

    model: str
    alias: str = SERVE["alias"].default
    host: str = SERVE["host"].default
    port: int = SERVE["port"].default
    load_timeout_s: float = SERVE["load_timeout_s"].default
    load_interval_s: float = SERVE["load_interval_s"].default
    max_body_bytes: int = SERVE["max_body_bytes"].default
    callback_timeout_s: float = SERVE["callback_timeout_s"].default
    access_log: bool = SERVE["access_log"].default
    follow: bool = SERVE["follow"].default
    poll_interval_s: float = SERVE["poll_interval_s"].default

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_settings(
    flags: Mapping[str, Any],
    section: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> ServeSettings:
    """Merge flags (``None`` = not given), environment and the ``serve:`` section."""
    values = SERVE.resolve(flags, section, env)
    if not values["model"]:
        raise BadInput(
            "which model to serve?", hint="regctl serve NAME (or $REGCTL_SERVE_MODEL, serve.model)"
        )
    validate_model_name(values["model"])
    validate_alias(values["alias"])
    return ServeSettings(**values)
