"""``gc``'s part for blobs: remove the ones no version references (docs/operations.md,
"Retention, gc and du").

A blob goes only when, checked again right before its delete, it is still
unreferenced (model states re-read, manifests of new versions read), no live pending
marker lists it, and it is older than the grace period. A publish on another machine
announces its blobs in a pending marker before it looks for them, and a blob it
writes is young: either keeps its bytes. When any model state or manifest cannot be
read, no blob is removed (its references are unknown).
"""

from __future__ import annotations

from registry_cli.core.blob_refs import References, blob_info, list_blobs, pending_blobs
from registry_cli.core.models import ModelStates
from registry_cli.core.types import GcReport
from registry_cli.core.versions import VersionReader
from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.atomic import is_temp_sibling, temp_sibling_abandoned
from registry_cli.storage.store import Store

DEFAULT_GRACE_S = 3600.0


def parse_grace(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d``, ``0s`` -> seconds; ValueError otherwise."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = 1
    if value and value[-1] in units:
        scale, value = units[value[-1]], value[:-1]
    number = float(value)
    if number < 0 or number != number:
        raise ValueError(text)
    return number * scale


def collect_blobs(
    store: Store,
    states: ModelStates,
    versions: VersionReader,
    report: GcReport,
    *,
    grace_s: float,
    dry_run: bool,
) -> None:
    refs = References(states, versions).scan()
    if refs.unreadable:
        raise IntegrityError(
            f"gc removes no blob while references are unknown: {refs.unreadable[0]}",
            hint="run: regctl verify, fix what it reports, then gc again",
        )
    _remove_abandoned_temps(store, report, dry_run)
    pending = pending_blobs(store, grace_s)
    candidates = sorted(sha for sha in list_blobs(store) if sha not in refs.by_sha)
    for sha in candidates:
        if sha in pending:
            report.kept_pending += 1
            continue
        info = blob_info(store, sha)
        if info is None:
            continue
        if info.age_s < grace_s:
            report.kept_young += 1
            continue
        key = layout.blob_key(sha)
        if dry_run:
            report.removed.append(f"{store.location}/{key}")
            report.blobs_removed += 1
            report.bytes_freed += info.size
            continue
        # the re-check right before the delete: a publish may have committed meanwhile
        if sha in refs.scan().by_sha or sha in pending_blobs(store, grace_s):
            report.kept_pending += 1
            continue
        info = blob_info(store, sha)
        if info is None or info.age_s < grace_s:
            continue
        if store.delete(key):
            report.removed.append(f"{store.location}/{key}")
            report.blobs_removed += 1
            report.bytes_freed += info.size


def _remove_abandoned_temps(store: Store, report: GcReport, dry_run: bool) -> None:
    """Temporary blobs of writers killed before their rename, gone and over an hour old
    (a writer on another machine sharing the folder may still rename a younger one)."""
    root = getattr(store, "root", None) if hasattr(store, "path") else None
    if root is None:
        return
    base = root / layout.BLOBS
    for fan in sorted(base.iterdir()) if base.is_dir() else []:
        for path in sorted(fan.iterdir()) if fan.is_dir() else []:
            if is_temp_sibling(path.name) and temp_sibling_abandoned(path):
                if not dry_run:
                    path.unlink(missing_ok=True)
                report.removed.append(str(path))
