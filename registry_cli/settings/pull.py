"""The ``pull:`` section: ``regctl pull`` (where from, the cache, credentials)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry_cli.settings.engine import BOOL, PATH, TEXT, TIMEOUT, Kind, Section, Setting
from registry_cli.settings.secrets import NO_PLAINTEXT

SOURCE = Kind("ftp://USER@HOST:PORT, ftps://..., https://... or a folder", TEXT.parse)


def _paths(value: Any) -> tuple[Path, ...]:
    items = [value] if isinstance(value, (str, Path)) else list(value)
    return tuple(PATH.parse(v) for v in items)


# trusted public keys (docs/trust.md); made relative to the config file by pull/options.py
PATHS = Kind("a path or a list of paths", _paths)
PULL = Section(
    "pull",
    (
        Setting("from", SOURCE, None, "--from"),
        Setting("stage", TEXT, None, "--stage"),
        Setting("cache_dir", PATH, None, "--cache-dir", ("REGCTL_CACHE_DIR",)),
        Setting("password_env", TEXT, None, "--password-env"),
        Setting("password_file", PATH, None, "--password-file"),
        Setting("token_env", TEXT, None, "--token-env"),
        Setting("ca_cert", PATH, None, "--ca-cert"),
        Setting("timeout_s", TIMEOUT, 30.0, "--timeout"),
        Setting("require_signed", BOOL, False, "--require-signed"),
        Setting("trust", PATHS, None, "--trust"),
    ),
    {**NO_PLAINTEXT, "token": "is not allowed (no secrets in the config); use token_env"},
)
