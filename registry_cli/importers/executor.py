"""Carry out a plan: publish each version, then settle each model's lifecycle and audit.

Per model:

1. every version to import, in number order: fetch its files into a scratch
   folder (verified there: nothing of a bad version is written), then
   ``publish`` it with its old number, time, author and source. Fetches run
   ahead on helper threads where the source allows (MLflow); up to
   ``PUBLISHERS`` publishes run at once. A version that fails its checks
   (:class:`IntegrityError`) is reported and the others go on;
2. settle the lifecycle: promotions in the order the source had them
   (``force`` with the reason ``imported from ...``, so a gate does not
   refuse history), stage LATEST, champion, user aliases, then archive;
3. append the old audit entries not appended yet.

Each step reads the registry's state first and does only what is missing, so
a run killed anywhere and run again ends where an uninterrupted run would.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_cli.core.names import format_version
from registry_cli.core.publishing import Produced
from registry_cli.core.registry import ModelRegistry
from registry_cli.errors import IntegrityError, NotFound
from registry_cli.importers.planner import ModelPlan, Plan, PlanRow
from registry_cli.importers.source import (
    AuditRecord,
    Fetched,
    SourceRegistry,
    SourceVersion,
    Unfetchable,
)

Failed = IntegrityError | Unfetchable

Notify = Callable[[str], None]
PUBLISHERS = 3


@dataclass
class ImportReport:
    rows: list[PlanRow]
    imported: int = 0
    bad: int = 0  # versions that failed their checks (exit 5)
    audit_appended: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 5 if self.bad else 0


class Importer:
    def __init__(self, reg: ModelRegistry, plan: Plan, notify: Notify | None = None) -> None:
        self.reg = reg
        self.plan = plan
        self.source: SourceRegistry = plan.source
        self.reason = f"imported from {self.source.display}"
        self.notify = notify or (lambda _m: None)
        self.report = ImportReport(rows=[])
        self._audit_ids: set[str] | None = None

    def run(self) -> ImportReport:
        for mplan in self.plan.models:
            self._import_model(mplan)
        if self.source.finish is not None:
            self.source.finish(self.reg, self.plan)
        self.report.notes.extend(self.source.notes)
        return self.report

    # ------------------------------------------------------------ versions
    def _import_model(self, mplan: ModelPlan) -> None:
        rows = {row.source: row for row in mplan.rows}
        if mplan.to_import:
            with self.reg.scratch("import") as work:
                self._publish_all(mplan, rows, work)
        if mplan.numbers:
            self._settle(mplan)
            self._append_audit(mplan)
        self.report.rows.extend(mplan.rows)

    def _publish_all(self, mplan: ModelPlan, rows: dict[str, PlanRow], work: Path) -> None:
        """Publish fetched versions, up to ``PUBLISHERS`` at once (each keeps its own
        number, so the order they commit in does not matter; most of a publish is
        waiting for the disk). On an error no new publish starts, the running ones
        end complete, and the error is raised."""
        inflight: list[tuple[SourceVersion, cf.Future[None]]] = []

        def finish() -> None:
            version, future = inflight.pop(0)
            future.result()
            rows[version.identity].action = "imported"
            self.report.imported += 1
            number = format_version(mplan.numbers[version.label])
            self.notify(f"imported {mplan.model.name}:{number} from {version.identity}")

        with cf.ThreadPoolExecutor(max_workers=PUBLISHERS) as pool:
            try:
                for version, fetched in self._fetched(mplan.to_import, work):
                    if isinstance(fetched, (IntegrityError, Unfetchable)):
                        row = rows[version.identity]
                        row.action, row.reason, row.version = "report", fetched.message, None
                        mplan.numbers.pop(version.label, None)
                        if isinstance(fetched, IntegrityError):
                            self.report.bad += 1
                        self.notify(f"{mplan.model.name} {version.label}: {fetched.message}")
                        continue
                    inflight.append((version, pool.submit(self._publish, mplan, version, fetched)))
                    if len(inflight) >= PUBLISHERS:
                        finish()
                while inflight:
                    finish()
            finally:
                for _version, future in inflight:
                    future.cancel()  # not started yet: never started; running: ends complete

    def _fetched(
        self, versions: list[SourceVersion], work: Path
    ) -> Iterator[tuple[SourceVersion, Fetched | Failed]]:
        """Fetch results in order; up to ``parallel_fetches`` run ahead."""

        def fetch(i: int, version: SourceVersion) -> Fetched | Failed:
            folder = work / f"v{i}"
            folder.mkdir()
            assert version.fetch is not None
            try:
                return version.fetch(folder)
            except (IntegrityError, Unfetchable) as exc:
                return exc

        workers = max(1, self.source.parallel_fetches)
        if workers == 1:
            for i, version in enumerate(versions):
                yield version, fetch(i, version)
            return
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            pending: list[tuple[SourceVersion, cf.Future[Fetched | Failed]]] = []
            ahead = iter(enumerate(versions))
            try:
                for i, version in ahead:
                    pending.append((version, pool.submit(fetch, i, version)))
                    if len(pending) >= 2 * workers:
                        break
                while pending:
                    version, future = pending.pop(0)
                    result = future.result()
                    nxt = next(ahead, None)
                    if nxt is not None:
                        pending.append((nxt[1], pool.submit(fetch, nxt[0], nxt[1])))
                    yield version, result
            finally:
                for _v, future in pending:
                    future.cancel()

    def _publish(self, mplan: ModelPlan, version: SourceVersion, fetched: Fetched) -> None:
        model = mplan.model
        number = mplan.numbers[version.label]
        source = dict(fetched.source or version.source)
        if not self.source.keep_source:
            source["uri"] = version.identity
        if model.explicit_candidate:
            set_alias = version.label == model.candidate
        else:
            set_alias = True
        set_latest = version.label == model.first_latest if model.keep_first_latest else True
        metrics = dict(version.metrics)
        metrics.update(fetched.metrics or {})
        params = dict(version.params)
        params.update(fetched.params or {})
        tags = dict(version.tags)
        tags.update(fetched.tags or {})
        self.reg.publish(
            model.name,
            [],
            metrics=metrics,
            params=params,
            tags=tags,
            description=fetched.description or version.description,
            set_latest=set_latest,
            set_alias=set_alias,
            signature=fetched.signature,
            facts=fetched.facts,
            produced=Produced(
                files=tuple(fetched.files),
                move=fetched.move,
                standard_artifacts=dict(fetched.standard_artifacts),
                source=source,
                version=number,
                created_at=fetched.created_at or version.created_at,
                created_by=fetched.created_by or version.created_by,
            ),
        )

    # ------------------------------------------------------------ lifecycle
    def _settle(self, mplan: ModelPlan) -> None:
        name = mplan.model.name
        stages = self.reg.stages
        num = mplan.numbers
        for stage in stages[1:]:
            order = [num[label] for label in mplan.model.promotions.get(stage, []) if label in num]
            if not order:
                continue
            for number in order:
                state = self.reg.model_state(name)
                if number in state.archived or state.in_stage(number, stage, stages[0]):
                    continue
                self.reg.promote(name, version=number, to=stage, force=True, reason=self.reason)
            state = self.reg.model_state(name)
            target = order[-1]
            if target in state.archived:
                continue
            if stage == stages[-1]:
                done = state.aliases.get("champion") == target
            else:
                done = state.latest.get(stage) == target
            if not done:
                self.reg.promote(name, version=target, to=stage, force=True, reason=self.reason)
        state = self.reg.model_state(name)
        for alias, label in sorted(mplan.model.aliases.items()):
            pointed = num.get(label)
            if pointed is None or pointed in state.archived:
                continue
            if state.aliases.get(alias) != pointed:
                self.reg.set_alias(name, alias, pointed)
        for version in mplan.model.versions:
            found = num.get(version.label)
            if not version.archived or found is None:
                continue
            number = found
            state = self.reg.model_state(name)
            if number in state.archived:
                continue
            if state.aliases.get("champion") == number:
                self.report.notes.append(
                    f"{name}:{format_version(number)} is archived in the source but is the "
                    "champion here; left active"
                )
                continue
            self.reg.archive(name, number, reason=self.reason)

    # ------------------------------------------------------------ audit
    def _known_audit_ids(self) -> set[str]:
        if self._audit_ids is None:
            self._audit_ids = set()
            try:
                entries = self.reg.audit().entries
            except NotFound:
                entries = []
            for entry in entries:
                details = entry.get("details")
                if isinstance(details, dict) and isinstance(details.get("imported_from"), str):
                    self._audit_ids.add(details["imported_from"])
        return self._audit_ids

    def _append_audit(self, mplan: ModelPlan) -> None:
        if not mplan.model.audit:
            return
        known = self._known_audit_ids()
        fresh = [r for r in mplan.model.audit if r.identity not in known]
        if not fresh:
            return
        self.reg.import_audit([self._entry(mplan, r) for r in fresh])
        known.update(r.identity for r in fresh)
        self.report.audit_appended += len(fresh)

    def _entry(self, mplan: ModelPlan, record: AuditRecord) -> dict[str, Any]:
        number = mplan.numbers.get(record.version_label) if record.version_label else None
        details = dict(record.details)
        details["imported_from"] = record.identity
        if record.version_label is not None:
            details.setdefault("source_version", record.version_label)
        return {
            "time": record.time,
            "actor": record.actor,
            "action": record.action,
            "model": mplan.model.name,
            "version": format_version(number) if number else None,
            "details": details,
        }


def execute(reg: ModelRegistry, plan: Plan, notify: Notify | None = None) -> ImportReport:
    return Importer(reg, plan, notify).run()
