"""Every section of ``registry.yaml`` (``ftp:``, ``pull:``, ``serve:``, ``mlflow:``,
``server:``, ``remote:``, ``s3:``, ``fleet:``, ``events:``), one module each, behind one engine
(:mod:`registry_cli.settings.engine`: value kinds, :class:`Setting` rows, and the
:class:`Section` that loads, checks and resolves them; :mod:`.secrets`: password and
token sources). This package is the one place to import them from; ``core/config.py``
checks every section of :data:`SECTIONS` at load, and the README's environment table
is read off them.

Pure: imports only the standard library and :mod:`registry_cli.errors`.
"""

from __future__ import annotations

from registry_cli.settings.engine import (
    BOOL,
    COUNT,
    PATH,
    PORT,
    PORT_RANGE,
    POSITIVE_INT,
    POSITIVE_SECONDS,
    SECONDS,
    SIZE,
    TEXT,
    TIMEOUT,
    Kind,
    Loaded,
    Resolved,
    Section,
    Setting,
)
from registry_cli.settings.events import EVENTS
from registry_cli.settings.fleet import FLEET
from registry_cli.settings.ftp import FTP
from registry_cli.settings.mlflow import MLFLOW
from registry_cli.settings.pull import PULL, SOURCE
from registry_cli.settings.remote import REMOTE
from registry_cli.settings.s3 import S3
from registry_cli.settings.secrets import (
    NO_PLAINTEXT,
    password_from,
    read_password_env,
    read_password_file,
    token_from,
)
from registry_cli.settings.serve import SERVE
from registry_cli.settings.server import SERVER

SECTIONS: dict[str, Section] = {
    s.name: s for s in (FTP, PULL, SERVE, MLFLOW, SERVER, REMOTE, S3, FLEET, EVENTS)
}

__all__ = [
    "BOOL",
    "COUNT",
    "EVENTS",
    "FLEET",
    "FTP",
    "MLFLOW",
    "NO_PLAINTEXT",
    "PATH",
    "PORT",
    "PORT_RANGE",
    "POSITIVE_INT",
    "POSITIVE_SECONDS",
    "PULL",
    "REMOTE",
    "S3",
    "SECONDS",
    "SECTIONS",
    "SERVE",
    "SERVER",
    "SIZE",
    "SOURCE",
    "TEXT",
    "TIMEOUT",
    "Kind",
    "Loaded",
    "Resolved",
    "Section",
    "Setting",
    "password_from",
    "read_password_env",
    "read_password_file",
    "token_from",
]
