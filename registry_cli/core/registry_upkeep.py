"""The upkeep half of :class:`~registry_cli.core.registry.ModelRegistry`: rebuild the
served tree, verify, gc, retention and imported audit lines (see docs/operations.md).
Each method imports its module when called, so the CLI's start-up pays for none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry_cli.core.models import ModelStates
from registry_cli.core.versions import VersionReader
from registry_cli.storage.hashing import Progress
from registry_cli.storage.store import Store

if TYPE_CHECKING:
    from registry_cli.core.served.documents import DistReport
    from registry_cli.core.served.tree import ServedTree
    from registry_cli.core.types import GcReport, VerifyReport


class Upkeep:
    store: Store
    states: ModelStates
    versions: VersionReader
    actor: str

    @property
    def served(self) -> ServedTree:
        raise NotImplementedError

    @property
    def stages(self) -> tuple[str, ...]:
        raise NotImplementedError

    def import_audit(self, entries: list[dict[str, Any]]) -> None:
        """Append audit entries of a system regctl replaces, as they were (importers)."""
        self.states.require_root()
        for entry in entries:
            self.states.append_entry(entry)

    def rebuild_dist(self) -> DistReport:
        """Regenerate ``dist/`` from ``models/`` (each model under its lock)."""
        from registry_cli.core import upkeep

        return upkeep.rebuild_served(self.store, self.states, self.served)

    def verify(self, name: str | None = None, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every payload file and bundle; check state and dist/ against the folders."""
        from registry_cli.core import upkeep

        return upkeep.verify(self.store, self.states, self.versions, self.served, name, progress)

    def gc(
        self, *, grace_s: float = 3600.0, dry_run: bool = False, dedup: bool = False
    ) -> GcReport:
        """Remove what interrupted writers left and unreferenced blobs older than
        ``grace_s``; bring dist/ back in step; ``dedup``: move old payloads into blobs."""
        from registry_cli.core import upkeep

        return upkeep.gc(
            self.store, self.states, self.served, self.actor, versions=self.versions,
            grace_s=grace_s, dry_run=dry_run, dedup=dedup,
        )  # fmt: skip

    # ------------------------------------------------------------------ retention
    def retention(self) -> Any:
        """The parts ``core/retention.py`` and ``core/usage.py`` work on (purge, prune, du)."""
        from registry_cli.core.retention import Parts

        return Parts(self.store, self.states, self.versions, self.served, self.stages, self.actor)
