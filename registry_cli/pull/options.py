"""One way to set up a pull from flags and the ``pull:`` section, shared by
``regctl pull`` and the Python client (:mod:`registry_cli.client`).

    pull:                         # regctl pull and the Python client
      from: ftp://mlops@models.example:2121   # default --from (a folder: relative
                                              # to this file's folder)
      stage: release              # default: the last stage
      cache_dir: null             # default: $REGCTL_CACHE_DIR, else the torch hub dir
      password_env: REGCTL_FTP_PASSWORD       # or password_file: ... (ftp://USER@...)
      token_env: null             # https://: the bearer token's variable (else $REGCTL_TOKEN)
      ca_cert: null               # CA bundle for ftps:// and https:// with a private CA
      timeout_s: 30

The table is :data:`registry_cli.settings.PULL`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.core.config import Config
from registry_cli.errors import BadInput
from registry_cli.pull.cache import default_cache_root
from registry_cli.pull.puller import Puller
from registry_cli.pull.sources import Source, parse_source
from registry_cli.settings import PULL, password_from, token_from


@dataclass(frozen=True)
class PullSetup:
    """A ready puller and the stage to pull from when none is named."""

    puller: Puller
    stage: str


def configure(
    config: Config,
    flags: Mapping[str, Any] | None = None,
    *,
    source: Source | None = None,
    password: str | None = None,
    prompt: Callable[[str], str] | None = None,
    env: Mapping[str, str] | None = None,
) -> PullSetup:
    """Merge ``flags`` (keys of the ``pull:`` section, None = not given), the
    environment and ``config``; ``source``/``password`` given as objects win.

    Without a password source for a named FTP user, ``prompt(where)`` is asked
    once, when the server is really contacted; without ``prompt`` the login is
    tried without a password.
    """
    values = PULL.resolve(flags, config.section("pull"), env)
    if source is None:
        if not values["from"]:
            raise BadInput(
                "pull needs --from ftp://USER@HOST:PORT or --from PATH",
                hint="or set pull.from in registry.yaml",
            )
        from_config = values.source["from"] == "config" and config.path is not None
        source = parse_source(
            values["from"], relative_to=config.path.parent if from_config and config.path else None
        )
    secret: str | Callable[[], str] | None = password
    if secret is None and source.needs_password:
        secret = password_from(values, env)
        if secret is None and prompt is not None:
            where = source.display

            def secret() -> str:
                return prompt(where)

    token = token_from(values, env) if source.kind == "http" else None
    cache_dir = values["cache_dir"]
    trust = _trusted_keys(values, config)
    return PullSetup(
        puller=Puller(
            source,
            password=secret,
            token=token,
            cache_root=Path(cache_dir).absolute() if cache_dir else default_cache_root().absolute(),
            ca_cert=values["ca_cert"],
            timeout=values["timeout_s"],
            trust=trust,
        ),
        stage=values["stage"] or config.stages[-1],
    )


def _trusted_keys(values: Any, config: Config) -> list[Path]:
    """The public keys a ``require_signed`` pull trusts (config paths: relative to its
    folder); [] when signatures are not required."""
    if not values["require_signed"]:
        return []
    keys = list(values["trust"] or ())
    if not keys:
        raise BadInput(
            "--require-signed needs at least one --trust KEY (or pull.trust)",
            hint="name the public key(s) whose signature you accept",
        )
    if values.source["trust"] == "config" and config.path is not None:
        keys = [k if k.is_absolute() else config.path.parent / k for k in keys]
    from registry_cli.core.signing import key_file

    return [key_file(k, "public key") for k in keys]
