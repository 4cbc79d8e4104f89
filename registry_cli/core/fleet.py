"""The fleet of a registry: reports in, status out (docs/fleet.md).

``Fleet(reg).ingest(reports)`` validates every report first (one bad report
refuses the whole batch and stores nothing), then stores them through
:class:`~registry_cli.core.fleet_store.FleetStore`; ``status`` builds the
document of ``regctl fleet status --json``.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from registry_cli.core.fleet_reports import MAX_BATCH, format_time, validate_batch, validate_ring
from registry_cli.core.fleet_status import DEFAULT_STALE_S, model_status
from registry_cli.core.fleet_store import FleetStore
from registry_cli.core.names import validate_model_name
from registry_cli.errors import NotFound

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry


class Fleet:
    def __init__(self, reg: ModelRegistry) -> None:
        self.reg = reg
        self.store = FleetStore(reg.store)

    def ingest(self, raw: Any, *, limit: int | None = MAX_BATCH) -> dict[str, int]:
        """Store one report or a list of them (at most ``limit``: a request; None for a
        file); ``{"accepted", "duplicates"}``."""
        items = raw if isinstance(raw, list) else [raw]
        if limit is not None or len(items) <= MAX_BATCH:
            return self.store.record(validate_batch(raw))
        reports = []
        for start in range(0, len(items), MAX_BATCH):
            reports.extend(validate_batch(items[start : start + MAX_BATCH]))
        return self.store.record(reports)

    def status(
        self,
        name: str | None = None,
        *,
        ring: str | None = None,
        stale_s: float = DEFAULT_STALE_S,
    ) -> dict[str, Any]:
        from registry_cli.core.rollout import Rollouts

        if ring is not None:
            validate_ring(ring)
        now = _dt.datetime.now(_dt.timezone.utc)
        rollouts = Rollouts(self.reg)
        if name is not None:
            names = [validate_model_name(name)]
            self.reg.model_state(name)  # exit 3 for an unknown model
        else:
            self.reg.states.require_root()
            names = self.store.models()
        models = []
        for model in names:
            try:
                aliases = self.reg.model_state(model).aliases
            except NotFound:  # fleet state of a model that is gone
                continue
            rollout, _tag = rollouts.load(model)
            models.append(
                model_status(
                    model,
                    self.store.devices(model),
                    dict(aliases),
                    rollout,
                    now=now,
                    stale_s=stale_s,
                    ring=ring,
                )
            )
        return {"time": format_time(now), "stale_s": stale_s, "models": models}
