"""One rooted exception hierarchy; each class carries its exit code (see docs/concepts.md).

Every error also inherits the builtin it resembles, so library users can catch
``FileNotFoundError``/``ValueError``/... without knowing regctl's types.
"""

from __future__ import annotations


class RegctlError(Exception):
    """Base of every error regctl raises on purpose. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadInput(RegctlError, ValueError):
    """Bad usage or bad input: names, flags, files, config. Exit code 2."""

    exit_code = 2


class ConfigError(BadInput):
    """A malformed registry.yaml, named with file and line where known."""


class NotFound(RegctlError, LookupError):
    """A model, version, alias, root or source path that does not exist. Exit code 3."""

    exit_code = 3


class RuleViolation(RegctlError):
    """Refused by a lifecycle rule, a failed gate or a name conflict. Exit code 4."""

    exit_code = 4


class GateFailed(RuleViolation):
    """A promotion gate failed; ``failures`` lists every failed condition."""

    def __init__(self, message: str, failures: list[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures


class IntegrityError(RegctlError):
    """Checksum mismatch, corrupt or hostile bundle, drift in dist/. Exit code 5."""

    exit_code = 5


class RemoteError(RegctlError, ConnectionError):
    """A remote (FTP server, MLflow) unreachable or refusing us. Exit code 6."""

    exit_code = 6


class MachineFault(BadInput):
    """The machine said no: no space, quota, read-only filesystem, permission denied,
    too many open files, locks that do not work. The user must fix it. Exit code 2.

    ``errno`` is the operating system's error number where there was one.
    """

    def __init__(self, message: str, *, hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno
