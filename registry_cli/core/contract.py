"""``Registry``: the one contract of a model registry, whatever is behind it.

:class:`~registry_cli.core.registry.ModelRegistry` (a folder or an ``s3://`` root)
and :class:`~registry_cli.remote.registry.RemoteRegistry` (a registry server) both
implement it with the same signatures, results and exceptions; the CLI and the web
UI see only this type. Each module that defines an implementation checks it at
import time for mypy (``_conforms: type[Registry] = ...``), so a drift fails ``mypy``;
``tests/test_contract.py`` runs the same tests against every backend.

Errors are the classes of ``registry_cli/errors.py`` on every backend: bad input
(exit 2), not found (3), a rule refusing (4), integrity (5), remote failures (6).

Pure typing: it imports only the result types, so it costs nothing at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from registry_cli.core.types import AuditLog, ChangeResult, ModelSummary, VersionInfo

PublishProgress = Callable[[str, int], "Callable[[int], None] | None"]
"""Called with a phase name ("publish", "upload") and its byte total; returns a
per-chunk callback taking a byte count, or None."""


class Registry(Protocol):
    """The operations of a registry: publish, read, resolve and the lifecycle."""

    @property
    def root(self) -> Path | str:
        """Where the registry is, for messages: a folder, an s3:// URL, a server URL."""

    @property
    def remote(self) -> bool:
        """True for a registry server (paths in results are on the server's machine)."""

    @property
    def stages(self) -> tuple[str, ...]:
        """The lifecycle stages, first (where versions enter) to last (the champion's)."""

    # ---------------------------------------------------------------- publish
    def publish(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        stage: str | None = None,
        set_latest: bool = True,
        set_alias: bool = True,
        derived_from: str | None = None,
        signature: dict[str, Any] | None = None,
        progress: PublishProgress | None = None,
    ) -> VersionInfo:
        """Copy files and folders into the next immutable version of ``name``."""
        ...

    # ---------------------------------------------------------------- reading
    def get(
        self,
        ref: str,
        *,
        stage: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        with_bundle: bool = True,
    ) -> VersionInfo:
        """The version ``NAME``, ``NAME:vN``, ``NAME:latest|best`` or ``NAME@alias`` means."""
        ...

    def resolve(
        self,
        ref: str,
        *,
        stage: str | None = None,
        metric: str | None = None,
        mode: str | None = None,
        with_bundle: bool = True,
    ) -> VersionInfo:
        """The same as :meth:`get`."""
        ...

    def list_models(self) -> list[ModelSummary]: ...

    def list_versions(self, name: str, *, stage: str | None = None) -> list[VersionInfo]: ...

    def audit(self, name: str | None = None, limit: int | None = None) -> AuditLog: ...

    # ---------------------------------------------------------------- lifecycle
    def promote(
        self,
        name: str,
        *,
        version: str | int | None = None,
        to: str | None = None,
        force: bool = False,
        reason: str | None = None,
        set_latest: bool = True,
    ) -> ChangeResult: ...

    def rollback(self, name: str, *, to: str | int | None = None) -> ChangeResult: ...

    def archive(
        self, name: str, version: str | int, *, reason: str | None = None
    ) -> ChangeResult: ...

    def set_alias(self, name: str, alias: str, version: str | int) -> ChangeResult: ...

    def remove_alias(self, name: str, alias: str) -> ChangeResult: ...

    def tag(
        self,
        name: str,
        version: str | int,
        set_tags: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> ChangeResult: ...
