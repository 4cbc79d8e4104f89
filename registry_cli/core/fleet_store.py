"""Where fleet state lives: one small document per (model, device), through the Store.

    fleet/models/<model>/-/devices/<device>.json   the device's last report, and more
    fleet/models/<model>/-/rollout.json            the model's rollout (core/rollout.py)

Why one object per device (docs/fleet.md): a report replaces one ~1 KiB object,
so 10,000 devices reporting once a minute is ~170 independent small writes per
second, with no shared hot document (a single fleet file would serialise every
writer on one compare-and-swap) and nothing to compact. Writers are made safe
the way model states are: read with a tag, change in memory, ``create`` or
``replace(if_match=tag)``, retry on a conflict. On a folder root a lock shard
(64 of them, by device) makes the conflicts rare; on S3 the conditional write
alone keeps two servers from losing a report.

A device document holds the newest report (by the device's time, never later
than when it arrived), when it arrived (``received_at``), since when the device
is in its current version (``version_since``) and state (``since``), and the ids of
its last :data:`SEEN` reports: a report whose id was seen changes nothing
(idempotent), and an older report arriving late (an outbox) is acknowledged
but does not overwrite a newer one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from registry_cli.core.fleet_reports import format_time, parse_time, utc_now
from registry_cli.errors import IntegrityError, NotFound, RuleViolation
from registry_cli.storage import layout
from registry_cli.storage.fs_store import FsStore
from registry_cli.storage.store import AlreadyExists, Conflict, Missing, Store

FLEET = "fleet/models"
FORMAT_VERSION = 1
SEEN = 32
LOCK_SHARDS = 64


def model_key(name: str) -> str:
    return f"{FLEET}/{name}/-"


def device_key(name: str, device: str) -> str:
    return f"{model_key(name)}/devices/{device}.json"


class FleetStore:
    """Reports in, device documents out, for one registry root."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known_models: set[str] = set()

    # -------------------------------------------------------------- writing
    def require_model(self, name: str) -> None:
        if name in self._known_models:
            return
        if self.store.kind(layout.state_key(name)) != "file":
            raise NotFound(f"no model named {name!r}", hint="check the name: regctl list")
        self._known_models.add(name)

    def record(self, reports: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Store validated reports; ``{"accepted", "duplicates"}``. Models must exist."""
        reports = list(reports)
        for report in reports:
            self.require_model(report["model"])
        accepted = duplicates = 0
        for report in reports:
            if self._record_one(report, utc_now()):
                accepted += 1
            else:
                duplicates += 1
        return {"accepted": accepted, "duplicates": duplicates}

    def _record_one(self, report: dict[str, Any], received_at: str) -> bool:
        key = device_key(report["model"], report["device"])
        shard = int(hashlib.sha256(report["device"].encode()).hexdigest()[:4], 16) % LOCK_SHARDS
        for _attempt in range(50):
            with self.store.lock(f"fleet/locks/{shard:02d}", what="the fleet reports"):
                try:
                    tagged = self.store.read_tagged(key)
                    old, tag = self._parse(tagged.data, key), tagged.tag
                except Missing:
                    old, tag = None, None
                doc = merge(old, report, received_at)
                if doc is None:
                    return False
                data = json.dumps(doc, separators=(",", ":")).encode()
                try:
                    if tag is None:
                        self.store.create(key, data)
                    else:
                        self.store.replace(key, data, if_match=tag)
                except (AlreadyExists, Conflict):
                    continue  # another writer stored a report first: merge into theirs
                return True
        raise RuleViolation("the fleet document keeps changing under us", hint="retry")

    def _parse(self, data: bytes, key: str) -> dict[str, Any]:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
                raise ValueError(key)
            return doc
        except ValueError:
            raise IntegrityError(
                f"{self.store.location}/{key} is damaged",
                hint="remove it; the device's next report writes it again",
            ) from None

    # -------------------------------------------------------------- reading
    def models(self) -> list[str]:
        """Every model that has fleet state (devices or a rollout)."""
        found = set()
        for rel in self.store.walk_files(FLEET):
            head, sep, _tail = rel.partition("/-/")
            if sep:
                found.add(head)
        return sorted(found)

    def devices(self, name: str) -> Iterator[dict[str, Any]]:
        """The device documents of a model (damaged ones are skipped)."""
        folder = f"{model_key(name)}/devices"
        if isinstance(self.store, FsStore):
            yield from self._local_devices(folder)
            return
        for entry in self.store.children(folder):
            if entry.startswith(".") or not entry.endswith(".json"):
                continue  # a writer's temp file
            try:
                data = self.store.read(f"{folder}/{entry}")
                yield self._parse(data, f"{folder}/{entry}")
            except (Missing, IntegrityError):
                continue

    def _local_devices(self, folder: str) -> Iterator[dict[str, Any]]:
        """On a folder root: the folder is checked once (it stays inside the root), then
        each entry is opened without following links; ~4x faster than a checked read
        per key at 10,000 devices."""
        base = str(self.store.local_path(folder))
        try:
            entries = os.listdir(base)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in sorted(entries):
            if entry.startswith(".") or not entry.endswith(".json"):
                continue
            try:
                fd = os.open(os.path.join(base, entry), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:  # gone meanwhile, or a link: not a device document
                continue
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
            try:
                yield self._parse(data, f"{folder}/{entry}")
            except IntegrityError:
                continue


def merge(old: dict[str, Any] | None, report: dict[str, Any], received_at: str) -> dict | None:
    """The device document after ``report``; None when the report was seen already."""
    seen = list(old.get("seen", [])) if old else []
    if report["report_id"] in seen:
        return None
    seen = (seen + [report["report_id"]])[-SEEN:]
    # the device's clock, but never later than the report arrived
    effective = format_time(min(parse_time(report["time"]), parse_time(received_at)))
    if old is not None and parse_time(old["time"]) > parse_time(effective):
        late = int(old.get("late", 0)) + 1  # an outbox's, or a writer that lost the race
        return {**old, "seen": seen, "late": late, "reports": int(old.get("reports", 0)) + 1}
    same_version = old is not None and old.get("version") == report["version"]
    same_state = same_version and old is not None and old.get("state") == report["state"]
    return {
        "format_version": FORMAT_VERSION,
        "device": report["device"],
        "ring": report["ring"],
        "model": report["model"],
        "version": report["version"],
        "manifest_sha256": report["manifest_sha256"],
        "state": report["state"],
        "detail": report["detail"],
        "time": effective,
        "received_at": received_at,
        "version_since": old["version_since"] if same_version and old else effective,
        "since": old["since"] if same_state and old else effective,
        "first_seen": old.get("first_seen", effective) if old else effective,
        "reports": int(old.get("reports", 0)) + 1 if old else 1,
        "late": int(old.get("late", 0)) if old else 0,
        "seen": seen,
    }
