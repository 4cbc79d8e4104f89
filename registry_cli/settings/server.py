"""The ``server:`` section: ``regctl serve-registry``."""

from __future__ import annotations

from typing import Any

from registry_cli.settings.engine import (
    BOOL,
    PATH,
    PORT,
    SECONDS,
    SIZE,
    TEXT,
    Kind,
    Section,
    Setting,
)

LOG_FORMATS = ("text", "json")


def _log_format(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in LOG_FORMATS:
        raise ValueError(value)
    return value.strip().lower()


LOG_FORMAT = Kind("text or json", _log_format)

SERVER = Section(
    "server",
    (
        Setting("host", TEXT, "127.0.0.1", "--host", ("REGCTL_SERVER_HOST",)),
        Setting("port", PORT, 8008, "--port", ("REGCTL_SERVER_PORT",)),
        Setting("anonymous_read", BOOL, False, "--anonymous-read"),
        Setting("tls_cert", PATH, None, "--tls-cert"),
        Setting("tls_key", PATH, None, "--tls-key"),
        Setting("max_upload_size", SIZE, 50 * 1024**3, "--max-upload-size"),
        # see docs/operations.md: replicas, drain and logs
        Setting("token_cache_s", SECONDS, 5.0, None, ("REGCTL_TOKEN_CACHE_S",)),
        Setting("drain_timeout_s", SECONDS, 30.0, "--drain-timeout", ("REGCTL_DRAIN_TIMEOUT_S",)),
        Setting("log_format", LOG_FORMAT, "text", "--log-format", ("REGCTL_LOG_FORMAT",)),
    ),
)
