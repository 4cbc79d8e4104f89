"""``regctl serve`` settings: flag, else environment variable, else ``serve:`` in
registry.yaml, else the default. Pure Python (no HTTP stack), so the CLI can
validate settings before importing anything heavy."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from registry_cli.errors import BadInput, ConfigError


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``regctl serve`` needs besides the registry."""

    model: str
    alias: str = "champion"
    host: str = "127.0.0.1"
    port: int = 8000
    load_timeout_s: float = 60.0
    load_interval_s: float = 5.0
    max_body_bytes: int = 10 * 1024 * 1024
    callback_timeout_s: float = 5.0
    access_log: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _port(text: Any) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _nonneg_float(text: Any) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


def _pos_float(text: Any) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _pos_int(text: Any) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


# setting (also its key under serve:) → (environment variables, first wins; parser)
SETTINGS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "model": (("REGCTL_SERVE_MODEL", "REGISTERED_MODEL_NAME"), str),
    "alias": (("REGCTL_SERVE_ALIAS", "MODEL_ALIAS"), str),
    "host": (("REGCTL_SERVE_HOST",), str),
    "port": (("REGCTL_SERVE_PORT",), _port),
    "load_timeout_s": (("REGCTL_SERVE_LOAD_TIMEOUT",), _nonneg_float),
    "load_interval_s": (("REGCTL_SERVE_LOAD_INTERVAL",), _pos_float),
    "max_body_bytes": (("REGCTL_SERVE_MAX_BODY_BYTES",), _pos_int),
    "callback_timeout_s": (("REGCTL_SERVE_CALLBACK_TIMEOUT",), _pos_float),
    "access_log": (("REGCTL_SERVE_ACCESS_LOG",), _bool),
}
FLAG_NAMES = {
    "model": "NAME",
    "alias": "--alias",
    "host": "--host",
    "port": "--port",
    "load_timeout_s": "--load-timeout",
    "load_interval_s": "--load-interval",
    "max_body_bytes": "--max-body-bytes",
    "callback_timeout_s": "--callback-timeout",
    "access_log": "--access-log",
}


def resolve_settings(
    flags: Mapping[str, Any],
    section: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> ServeSettings:
    """Merge flags (``None`` = not given), environment and the ``serve:`` section."""
    env = os.environ if env is None else env
    unknown = sorted(set(section) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"serve: unknown key {unknown[0]!r}", hint=f"serve keys: {', '.join(SETTINGS)}"
        )
    values: dict[str, Any] = {}
    for key, (env_names, parse) in SETTINGS.items():
        raw, where = flags.get(key), FLAG_NAMES[key]
        if raw is None:
            for var in env_names:
                if env.get(var):
                    raw, where = env[var], f"${var}"
                    break
        if raw is None and section.get(key) is not None:
            raw, where = section[key], f"serve.{key} in registry.yaml"
        if raw is None:
            continue
        try:
            values[key] = parse(raw)
        except (TypeError, ValueError):
            raise BadInput(f"invalid {where}: {raw!r}") from None
    if not values.get("model"):
        raise BadInput(
            "which model to serve?", hint="regctl serve NAME (or $REGCTL_SERVE_MODEL, serve.model)"
        )
    from registry_cli.core.names import validate_alias, validate_model_name

    validate_model_name(values["model"])
    if "alias" in values:
        validate_alias(values["alias"])
    return ServeSettings(**values)
