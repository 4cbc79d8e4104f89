"""One settings engine for every section of ``registry.yaml`` (``ftp:``, ``pull:``,
``serve:``, ``mlflow:``), used by the CLI and the library alike.

Each section is a table of :class:`Setting` rows: its key under the section,
its command-line flag, its environment variables, its default and its parser.
A value comes from the flag, else the first non-empty environment variable,
else the config file, else the default. Every error names where the bad value
came from: ``--port``, ``$REGCTL_SERVE_PORT``, or ``registry.yaml:12`` (the
file and line of the key).

The config file is checked when it is loaded (:meth:`Section.load`, called by
``core/config.py``): unknown keys, plaintext passwords and bad values fail
there, whatever the command. Paths in the config are relative to the config
file's folder and are resolved here, once. Password sources (an environment
variable or a file, never the command line or the config) are read by
:func:`password_from`, the only place that does.

Pure: imports only the standard library and :mod:`registry_cli.errors`.

Longer than 400 lines because the table of every section lives here, in one
place, beside the engine: ``core/config.py`` checks them all at load and the
README's environment table is read off them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput, ConfigError


# ---------------------------------------------------------------- value kinds
@dataclass(frozen=True)
class Kind:
    """How a raw value (YAML scalar, environment string, flag) becomes a setting."""

    expected: str
    parse: Callable[[Any], Any]
    is_path: bool = False  # relative values are relative to the config file's folder


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    return value


def _int_between(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError(value)
        number = int(value)
        if not lo <= number <= hi:
            raise ValueError(value)
        return number

    return parse


def _float_at_least(lo: float, *, strict: bool = False) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not (number > lo if strict else number >= lo):
            raise ValueError(value)
        return number

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


def _port_range(value: Any) -> tuple[int, int]:
    """``"60000-60099"`` or ``[60000, 60099]`` → ``(60000, 60099)``."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = value
    else:
        lo, sep, hi = str(value).partition("-")
        if not sep:
            raise ValueError(value)
    if isinstance(lo, bool) or isinstance(hi, bool):
        raise ValueError(value)
    a, b = int(lo), int(hi)
    if not 1024 <= a <= b <= 65535:
        raise ValueError(value)
    return a, b


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(_text(value)))


TEXT = Kind("a non-empty string", _text)
PORT = Kind("a port number 0-65535", _int_between(0, 65535))
COUNT = Kind("a whole number 1-65535", _int_between(1, 65535))
POSITIVE_INT = Kind("a whole number of at least 1", _int_between(1, 2**63))
SECONDS = Kind("a number of seconds, 0 or more", _float_at_least(0.0))
POSITIVE_SECONDS = Kind("a number of seconds above 0", _float_at_least(0.0, strict=True))
TIMEOUT = Kind("a number of seconds, at least 0.1", _float_at_least(0.1))
BOOL = Kind("true or false", _bool)
PORT_RANGE = Kind("a range like 60000-60099 within 1024-65535", _port_range)
PATH = Kind("a path", _path, is_path=True)


_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
    "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def _size(value: Any) -> int:
    """``50GiB``, ``500MB``, ``1048576`` → a number of bytes (at least 1)."""
    if isinstance(value, bool):
        raise ValueError(value)
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(value)
    size = int(float(number) * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(value)
    return size


SIZE = Kind("a size like 50GiB, 500MB or a number of bytes", _size)


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class Setting:
    """One row: ``key`` under the section, its flag, environment variables and default."""

    key: str
    kind: Kind
    default: Any = None
    flag: str | None = None
    env: tuple[str, ...] = ()


class Loaded(Mapping[str, Any]):
    """A section's values from the config file, parsed, with where each came from."""

    def __init__(self, name: str, values: dict[str, Any], origins: dict[str, str]) -> None:
        self.name = name
        self._values = values
        self.origins = origins

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Loaded({self.name!r}, {self._values!r})"


class Resolved(dict[str, Any]):
    """Every setting of a section with its final value; ``where[key]`` tells its source."""

    def __init__(self) -> None:
        super().__init__()
        self.where: dict[str, str] = {}  # "--port", "$REGCTL_SERVE_PORT", "registry.yaml:3"
        self.source: dict[str, str] = {}  # "flag" | "env" | "config" | "default"

    def from_flag(self, key: str) -> bool:
        return self.source.get(key) == "flag"


Locate = Callable[[str], "int | None"]  # line of a key ("" for the section itself)


@dataclass(frozen=True)
class Section:
    """A ``registry.yaml`` section described by its settings."""

    name: str
    settings: tuple[Setting, ...]
    refused: Mapping[str, str] = field(default_factory=dict)  # key -> hint

    def __getitem__(self, key: str) -> Setting:
        for setting in self.settings:
            if setting.key == key:
                return setting
        raise KeyError(key)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.settings)

    def load(self, raw: Any, file: Path | None = None, locate: Locate | None = None) -> Loaded:
        """Check the section as written in the config file; paths become absolute."""

        def where(key: str = "") -> str:
            line = locate(key) if locate is not None else None
            name = str(file) if file is not None else "registry.yaml"
            return f"{name}:{line}" if line else name

        if raw is None:
            return Loaded(self.name, {}, {})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where()}: {self.name} must be a mapping")
        for key, hint in self.refused.items():
            if key in raw:
                raise ConfigError(f"{where(key)}: {self.name}.{key} {hint}")
        for key in raw:
            if key not in self.keys:
                raise ConfigError(
                    f"{where(str(key))}: {self.name}: unknown key {key!r}",
                    hint=f"{self.name} keys: {', '.join(self.keys)}",
                )
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for setting in self.settings:
            value = raw.get(setting.key)
            if value is None:
                continue
            origin = where(setting.key)
            try:
                parsed = setting.kind.parse(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{origin}: invalid {self.name}.{setting.key}: {value!r} "
                    f"(expected {setting.kind.expected})"
                ) from None
            if setting.kind.is_path and file is not None and not parsed.is_absolute():
                parsed = file.parent / parsed
            values[setting.key] = parsed
            origins[setting.key] = origin
        return Loaded(self.name, values, origins)

    def resolve(
        self,
        flags: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Resolved:
        """Flag (``None`` = not given), else environment, else config, else default."""
        env = os.environ if env is None else env
        flags = flags or {}
        loaded = config if isinstance(config, Loaded) else self.load(config or None)
        out = Resolved()
        for setting in self.settings:
            raw, where, source = flags.get(setting.key), setting.flag or setting.key, "flag"
            if raw is None:
                for var in setting.env:
                    if env.get(var):
                        raw, where, source = env[var], f"${var}", "env"
                        break
            if raw is None:
                if setting.key in loaded:
                    out[setting.key] = loaded[setting.key]
                    out.where[setting.key] = loaded.origins.get(setting.key, "registry.yaml")
                    out.source[setting.key] = "config"
                else:
                    out[setting.key] = setting.default
                    out.where[setting.key] = out.source[setting.key] = "default"
                continue
            try:
                out[setting.key] = setting.kind.parse(raw)
            except (TypeError, ValueError):
                raise BadInput(
                    f"invalid {where}: {raw!r} (expected {setting.kind.expected})"
                ) from None
            out.where[setting.key] = where
            out.source[setting.key] = source
        return out


# ---------------------------------------------------------------- password sources
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


# ---------------------------------------------------------------- the sections
FTP = Section(
    "ftp",
    (
        Setting("host", TEXT, "127.0.0.1", "--host"),
        Setting("port", PORT, 2121, "--port"),
        Setting("user", TEXT, None, "--user"),
        Setting("password_env", TEXT, None, "--password-env"),
        Setting("password_file", PATH, None, "--password-file"),
        Setting("anonymous", BOOL, False, "--anonymous"),
        Setting("passive_ports", PORT_RANGE, None, "--passive-ports"),
        Setting("masquerade_address", TEXT, None, "--masquerade-address"),
        Setting("max_cons", COUNT, 256, "--max-cons"),
        Setting("max_cons_per_ip", COUNT, 32, "--max-cons-per-ip"),
        Setting("login_delay_s", SECONDS, 2.0, "--login-delay"),
        Setting("idle_timeout_s", SECONDS, 300.0),
        Setting("tls_cert", PATH, None, "--tls-cert"),
        Setting("tls_key", PATH, None, "--tls-key"),
        Setting("log_file", PATH, None, "--log-file"),
    ),
    NO_PLAINTEXT,
)

SOURCE = Kind("ftp://USER@HOST:PORT, ftps://..., https://... or a folder", _text)


def _paths(value: Any) -> tuple[Path, ...]:
    items = [value] if isinstance(value, (str, Path)) else list(value)
    return tuple(_path(v) for v in items)


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

SERVE = Section(
    "serve",
    (
        Setting("model", TEXT, None, "NAME", ("REGCTL_SERVE_MODEL", "REGISTERED_MODEL_NAME")),
        Setting("alias", TEXT, "champion", "--alias", ("REGCTL_SERVE_ALIAS", "MODEL_ALIAS")),
        Setting("host", TEXT, "127.0.0.1", "--host", ("REGCTL_SERVE_HOST",)),
        Setting("port", PORT, 8000, "--port", ("REGCTL_SERVE_PORT",)),
        Setting("load_timeout_s", SECONDS, 60.0, "--load-timeout", ("REGCTL_SERVE_LOAD_TIMEOUT",)),
        Setting(
            "load_interval_s",
            POSITIVE_SECONDS,
            5.0,
            "--load-interval",
            ("REGCTL_SERVE_LOAD_INTERVAL",),
        ),
        Setting(
            "max_body_bytes",
            POSITIVE_INT,
            10 * 1024 * 1024,
            "--max-body-bytes",
            ("REGCTL_SERVE_MAX_BODY_BYTES",),
        ),
        Setting(
            "callback_timeout_s",
            POSITIVE_SECONDS,
            5.0,
            "--callback-timeout",
            ("REGCTL_SERVE_CALLBACK_TIMEOUT",),
        ),
        Setting("access_log", BOOL, False, "--access-log", ("REGCTL_SERVE_ACCESS_LOG",)),
        Setting("follow", BOOL, False, "--follow", ("REGCTL_SERVE_FOLLOW",)),
        Setting(
            "poll_interval_s",
            POSITIVE_SECONDS,
            5.0,
            "--poll-interval",
            ("REGCTL_SERVE_POLL_INTERVAL",),
        ),
    ),
)

MLFLOW = Section(
    "mlflow",
    (Setting("tracking_uri", TEXT, None, "--tracking-uri", ("MLFLOW_TRACKING_URI",)),),
)

SERVER = Section(
    "server",
    (
        Setting("host", TEXT, "127.0.0.1", "--host", ("REGCTL_SERVER_HOST",)),
        Setting("port", PORT, 8008, "--port", ("REGCTL_SERVER_PORT",)),
        Setting("anonymous_read", BOOL, False, "--anonymous-read"),
        Setting("tls_cert", PATH, None, "--tls-cert"),
        Setting("tls_key", PATH, None, "--tls-key"),
        Setting("max_upload_size", SIZE, 50 * 1024**3, "--max-upload-size"),
    ),
)

REMOTE = Section(
    "remote",
    (
        Setting("url", TEXT, None, "--remote", ("REGCTL_URL",)),
        Setting("token_file", PATH, None, "--token-file"),
        Setting("ca_cert", PATH, None),
        Setting("timeout_s", TIMEOUT, 300.0),
    ),
    {"token": "is not allowed (no plaintext tokens); use token_file or $REGCTL_TOKEN"},
)

S3 = Section(
    "s3",
    (
        Setting("endpoint_url", TEXT, None, None, ("REGCTL_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")),
        Setting("region", TEXT, None, None, ("AWS_REGION", "AWS_DEFAULT_REGION")),
        Setting("unsafe_single_writer", BOOL, False, None, ("REGCTL_S3_UNSAFE_SINGLE_WRITER",)),
    ),
    {
        "aws_secret_access_key": "is not allowed (no secrets in the config); "
        "use the AWS environment variables or a profile",
        "aws_access_key_id": "is not allowed; use the AWS environment variables or a profile",
    },
)

SECTIONS: dict[str, Section] = {s.name: s for s in (FTP, PULL, SERVE, MLFLOW, SERVER, REMOTE, S3)}
