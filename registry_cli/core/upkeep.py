"""Upkeep: ``verify`` (re-hash everything, check invariants and dist/), ``gc`` (remove
what interrupted writers left) and ``dist rebuild``. Functions of the registry's
parts, so they work on any :class:`Store`."""

from __future__ import annotations

from typing import Any

from registry_cli.core.models import ModelStates
from registry_cli.core.names import format_version, parse_version, validate_model_name
from registry_cli.core.served import check as served_check
from registry_cli.core.served.bundle_files import is_virtual, stream_digest, version_stream
from registry_cli.core.served.documents import DistReport
from registry_cli.core.served.tree import ServedTree
from registry_cli.core.state import ModelState
from registry_cli.core.types import GcReport, VerifyProblem, VerifyReport
from registry_cli.core.versions import VersionReader
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.hashing import Progress
from registry_cli.storage.store import Missing, Store


def verify(
    store: Store,
    states: ModelStates,
    versions: VersionReader,
    served: ServedTree,
    name: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Re-hash every payload file and bundle; check state against the version folders."""
    states.require_root()
    report = VerifyReport()
    names = [validate_model_name(name)] if name else states.names()
    if name:
        states.load(name)
    for model in names:
        try:
            state = states.load(model)
        except IntegrityError as exc:
            where = f"{store.location}/{layout.state_key(model)}"
            report.problems.append(VerifyProblem(model, None, where, str(exc)))
            continue
        for v in state.versions:
            _verify_version(store, versions, state, v, report, progress)
        _verify_invariants(store, served.stages, state, report)
        served_check.verify_model(served, state, report)
    if not name:
        served_check.verify_orphans(served, names, report)
    return report


def _verify_version(
    store: Store,
    versions: VersionReader,
    state: ModelState,
    v: int,
    report: VerifyReport,
    progress: Progress | None,
) -> None:
    vkey = layout.version_key(state.name, v)
    vname = format_version(v)

    def problem(key: str, text: str) -> None:
        report.problems.append(VerifyProblem(state.name, vname, f"{store.location}/{key}", text))

    if store.kind(vkey) != "dir":
        problem(vkey, "version folder is missing")
        return
    try:
        facts = versions.facts(state.name, v)
    except IntegrityError as exc:
        problem(f"{vkey}/manifest.json", str(exc))
        return
    listed = set()
    if v in state.purged:  # its payload is gone on purpose; its facts stay
        return
    blob_only = store.kind(f"{vkey}/payload") is None  # an object-store version in blobs
    for f in facts["files"]:
        key = store.payload_key(vkey, f["path"], f["sha256"])
        listed.add(f["path"])
        report.checked += 1
        if blob_only and layout.is_sha256(str(f.get("sha256"))):
            key = layout.blob_key(f["sha256"])
        try:
            size, digest = store.hash(key, progress)
        except Missing:
            problem(key, "file is missing")
            continue
        if size != f["size"]:
            problem(key, f"size {size} != recorded {f['size']}")
        elif digest != f["sha256"]:
            problem(key, f"sha256 {digest} != recorded {f['sha256']}")
    for rel in store.walk_files(f"{vkey}/payload"):
        if f"payload/{rel}" not in listed:
            problem(f"{vkey}/payload/{rel}", "file is not in the manifest")
    try:
        bundle = versions.bundle(state.name, v)
    except IntegrityError as exc:
        problem(f"{vkey}/version.yaml", str(exc))
        return
    report.checked += 1
    try:
        if is_virtual(bundle):  # assembled from the payload when read: hash that
            stream = version_stream(store, state.name, v)
            assert stream is not None
            size, digest = stream_digest(stream, progress)
        else:
            size, digest = store.hash(f"{vkey}/bundle.tar.gz", progress)
    except IntegrityError as exc:
        problem(f"{vkey}/bundle.tar.gz", str(exc))
        return
    except Missing:
        problem(f"{vkey}/bundle.tar.gz", "bundle is missing")
        return
    if size != bundle.get("size") or digest != bundle.get("sha256"):
        problem(
            f"{vkey}/bundle.tar.gz", f"bundle sha256 {digest} != recorded {bundle.get('sha256')}"
        )
    if facts.get("version") != vname or facts.get("name") != state.name:
        problem(f"{vkey}/manifest.json", "manifest names another model or version")


def _verify_invariants(
    store: Store, stages: tuple[str, ...], state: ModelState, report: VerifyReport
) -> None:
    where = f"{store.location}/{layout.state_key(state.name)}"

    def problem(text: str) -> None:
        report.problems.append(VerifyProblem(state.name, None, where, text))

    for alias, v in state.all_aliases().items():
        if v not in state.versions:
            problem(f"alias {alias!r} points at missing v{v}")
        elif v in state.archived:
            problem(f"alias {alias!r} points at archived v{v}")
    champion = state.aliases.get("champion")
    if champion is not None and not state.in_stage(champion, stages[-1], stages[0]):
        problem(f"champion v{champion} is not in {stages[-1]!r}")
    for stage, latest in state.latest.items():
        if latest is not None and not state.in_stage(latest, stage, stages[0]):
            problem(f"LATEST of {stage!r} is v{latest}, which is not in that stage")
    if state.versions and (state.versions.max() or 0) >= state.next_version:
        problem("next_version is not above every recorded version")


def gc(
    store: Store,
    states: ModelStates,
    served: ServedTree,
    actor: str,
    *,
    versions: VersionReader | None = None,
    grace_s: float = 3600.0,
    dry_run: bool = False,
    dedup: bool = False,
) -> GcReport:
    """Remove what interrupted publishes left: scratch folders and unrecorded ``vN``;
    repair ``dist/`` after a writer killed between its commit and the served-tree update;
    finish killed purges; remove unreferenced blobs older than ``grace_s``
    (core/blob_gc.py). ``dedup`` first moves old payload files into blobs
    (core/dedup.py). ``dry_run`` changes nothing and reports what would go."""
    from registry_cli.core import blob_gc
    from registry_cli.core import dedup as dedupe
    from registry_cli.core.retention import delete_payload

    states.require_root()
    versions = versions or VersionReader(store, served.stages)
    report = GcReport(dry_run=dry_run)
    for key, alive in store.leftover_scratch():
        if alive:
            report.kept_in_use.append(f"{store.location}/{key}")
        else:
            if not dry_run:
                store.remove_tree(key)
            report.removed.append(f"{store.location}/{key}")
    for name in states.names():
        report.removed.extend(_collect_model(store, states, served, name, dry_run))
        state = states.load(name)
        for v in state.purged:
            vkey = layout.version_key(name, v)
            if dry_run:
                report.removed.extend(
                    f"{store.location}/{vkey}/{rel}"
                    for rel in ("payload", "bundle.tar.gz")
                    if store.kind(f"{vkey}/{rel}") is not None
                )
            else:
                report.removed.extend(delete_payload(store, name, v))
    if dedup:
        dedupe.dedup(store, states, versions, served.stages, report, dry_run=dry_run)
        if report.deduped and not dry_run and not hasattr(store, "path"):
            # an object store's versions now hold no payload objects: their served
            # tree points at the blobs instead of keeping copies (docs/object-storage.md)
            rebuild_served(store, states, served)
    blob_gc.collect_blobs(store, states, versions, report, grace_s=grace_s, dry_run=dry_run)
    if (report.removed or report.deduped) and not dry_run:
        details: dict[str, Any] = {"removed": len(report.removed)}
        if report.blobs_removed:
            details["blobs"] = report.blobs_removed
            details["bytes"] = report.bytes_freed
        if report.deduped:
            details["deduped"] = report.deduped
        states.audit(actor, "gc", None, None, details)
    return report


def _collect_model(
    store: Store, states: ModelStates, served: ServedTree, name: str, dry_run: bool = False
) -> list[str]:
    """Remove ``vN`` folders the state does not list; repair the model's ``dist/``."""
    mkey = layout.model_key(name)
    removed: list[str] = []
    if dry_run:
        state = states.load(name)
        return [
            f"{store.location}/{mkey}/{entry}"
            for entry in store.children(mkey)
            if (number := _version_folder(entry)) is not None
            and number not in state.versions
            and store.kind(f"{mkey}/{entry}") == "dir"
        ]

    def drop_unrecorded(state: ModelState) -> None:
        for entry in store.children(mkey):
            number = _version_folder(entry)
            if number is None or number in state.versions:
                continue
            if store.kind(f"{mkey}/{entry}") != "dir":
                continue
            store.remove_tree(f"{mkey}/{entry}")
            removed.append(f"{store.location}/{mkey}/{entry}")
            if number >= state.next_version:  # never hand the number out again
                state.next_version = number + 1

    def repair(state: ModelState, _result: None) -> None:
        repaired = DistReport()
        served.rebuild_model(state, repaired)
        removed.extend(repaired.removed)

    states.change(name, drop_unrecorded, then=repair)
    return removed


def _version_folder(entry: str) -> int | None:
    if not entry.startswith("v"):
        return None
    try:
        return parse_version(entry)
    except BadInput:
        return None


def rebuild_served(store: Store, states: ModelStates, served: ServedTree) -> DistReport:
    """Regenerate ``dist/`` from ``models/`` (each model under its lock)."""
    states.require_root()
    report = DistReport()
    for model in states.names():
        states.change(model, lambda state: None, then=lambda s, _r: served.rebuild_model(s, report))
    with store.lock(layout.REGISTRY_LOCK, what="the registry"):
        served.remove_orphans(states.names(), report)
    return report
