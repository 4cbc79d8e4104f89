"""Password and token sources: an environment variable or a file, never the command
line or the config. :func:`password_from` and :func:`token_from` are the only places
that read them; :data:`NO_PLAINTEXT` is the refusal a section lists for ``password``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from registry_cli.errors import BadInput
from registry_cli.settings.engine import Resolved

NO_PLAINTEXT = {
    "password": "is not allowed (no plaintext passwords in the config); "
    "use password_env or password_file"
}


def password_from(settings: Resolved, env: Mapping[str, str] | None = None) -> str | None:
    """The password named by ``password_env``/``password_file`` (a flag beats the
    config); None when no source is named."""
    env_var, file = settings.get("password_env"), settings.get("password_file")
    if settings.from_flag("password_env") and settings.from_flag("password_file"):
        raise BadInput("give --password-env or --password-file, not both")
    if file and settings.from_flag("password_file"):
        return read_password_file(file)
    if env_var:
        return read_password_env(env_var, env)
    if file:
        return read_password_file(file)
    return None


def token_from(settings: Resolved, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the variable named by ``token_env`` (it must be set), else
    ``$REGCTL_TOKEN``; None when neither is there."""
    env = os.environ if env is None else env
    var = settings.get("token_env")
    if var:
        value = env.get(var)
        if not value:
            raise BadInput(
                f"environment variable {var} is not set or empty",
                hint=f"export {var}=... (the token) before running",
            )
        return value
    return env.get("REGCTL_TOKEN") or None


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The first line of a file (trailing newline stripped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"password file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise BadInput(f"password file {path} is empty")
    return password


def read_password_env(var: str, env: Mapping[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(var)
    if not value:
        raise BadInput(
            f"environment variable {var} is not set or empty",
            hint=f"export {var}=... before running, or use --password-file",
        )
    return value
