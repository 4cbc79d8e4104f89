"""The served tree ``dist/`` (docs/layout.md): what FTP/HTTP clients and ``pull --from PATH`` read.

    dist/<stage>/<name>/
      LATEST            "v5\\n"
      LATEST.json       {"format_version", "name", "stage", "version", "sha256", "size",
                         "published_at"}
      index.json        {"format_version", "kind", "name", "stage", "latest", "versions":
                         [{"version", "status", "sha256", "size", "published_at"}, ...]}
      aliases.json      {alias: "vN"} for the aliases on versions of this stage
                        (``pull --alias``; docs/fleet.md)
      versions/vN/      bundle.tar.gz, manifest.json, payload/...

``dist/`` is derived from ``models/`` and can always be regenerated
(``regctl dist rebuild``). Files under ``versions/vN/`` are copies the store
makes cheaply (hard links of the read-only version files on a folder root),
so the tree costs no extra space.

Consistency for readers: a new ``versions/vN/`` appears in one step
(``Store.copy_files``); ``index.json``, ``LATEST.json`` and ``LATEST`` are
replaced atomically and written in that order, so a client that reads
``LATEST`` always finds the version folder and reads either the old or the
new file, never a torn one. Writers hold the model's lock (the registry calls
:meth:`ServedTree.sync` right after a commit).

Cost: a model may have thousands of versions, all in the first stage. After a
change :meth:`ServedTree.sync` patches the existing ``index.json`` (reading
``version.yaml`` only for versions it does not list yet) and links only the
missing version folders. The full scan is for :meth:`ServedTree.rebuild_model`
and the drift check (``check.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from registry_cli.core.documents import ManifestFormatError, parse_version_yaml
from registry_cli.core.names import SEGMENT_RE, format_version, parse_version
from registry_cli.core.served.documents import (
    DistReport,
    IndexEntry,
    index_bytes,
    latest_bytes,
    parse_index,
)
from registry_cli.core.state import ModelState, StateFormatError, dump_state_text, load_state_text
from registry_cli.errors import BadInput, IntegrityError, RegctlError
from registry_cli.storage import layout
from registry_cli.storage.store import Missing, Store

MODEL_FILES = ("LATEST", "LATEST.json", "index.json", "aliases.json", "versions")
RESYNC_ROUNDS = 20  # sync again while later commits keep moving the state
ADDED_FOLDERS = ("signatures", "attestations")  # beside a version, after publish


class ServedTree:
    """Keeps ``dist/`` in step with ``models/``. Callers hold the model's lock."""

    def __init__(self, store: Store, stages: tuple[str, ...]) -> None:
        self.store = store
        self.stages = stages
        self._facts: dict[tuple[str, int], dict[str, Any]] = {}  # version.yaml, read once
        self._manifest_sha: dict[tuple[str, int], str] = {}  # manifest.json sha256, read once
        self._in_blobs: dict[tuple[str, int], bool] = {}

    def where(self, key: str) -> str:
        """How a key is named to users (an absolute path on a folder root)."""
        return f"{self.store.location}/{key}"

    # -- facts ---------------------------------------------------------
    def members(self, state: ModelState, stage: str) -> list[int]:
        """The versions served in ``stage``: a purged version has nothing left to serve."""
        if stage == self.stages[0]:
            return [v for v in state.versions if v not in state.purged]
        inside = state.stages.get(stage)
        return [
            v
            for v in state.versions
            if inside is not None and v in inside and v not in state.purged
        ]

    def version_facts(self, name: str, version: int) -> dict[str, Any]:
        """``version.yaml`` of a published version (created_at and bundle)."""
        cached = self._facts.get((name, version))
        if cached is not None:
            return cached
        key = f"{layout.version_key(name, version)}/version.yaml"
        where = f"{self.store.location}/{key}"
        try:
            doc = parse_version_yaml(self.store.read(key), where)
        except Missing:
            raise IntegrityError(
                f"{where} is missing", hint="run: regctl verify, then regctl dist rebuild"
            ) from None
        except ManifestFormatError as exc:
            raise IntegrityError(str(exc)) from None
        self._facts[(name, version)] = doc
        return doc

    def entry(self, state: ModelState, stage: str, version: int) -> IndexEntry:
        doc = self.version_facts(state.name, version)
        published = None
        if stage != self.stages[0]:
            published = state.stage_entered.get(stage, {}).get(version)
        return IndexEntry(
            version=version,
            status=state.status_of(version),
            sha256=doc["bundle"]["sha256"],
            size=int(doc["bundle"]["size"]),
            published_at=str(published or doc["created_at"]),
            manifest_sha256=self.manifest_sha256(state.name, version),
            blobs=blobs_pointer(state.name) if self.in_blobs(state.name, version) else None,
        )

    def in_blobs(self, name: str, version: int) -> bool:
        """True when the served tree points at the blobs for this version's payload
        instead of copying it (an object-store root: no copies per version or stage)."""
        cached = self._in_blobs.get((name, version))
        if cached is None:
            vkey = layout.version_key(name, version)
            files = json.loads(self.store.read(f"{vkey}/manifest.json")).get("files") or []
            cached = (
                bool(files)
                and self.store.payload_key(vkey, files[0]["path"], files[0]["sha256"])
                != f"{vkey}/{files[0]['path']}"
            )
            self._in_blobs[(name, version)] = cached
        return cached

    def manifest_sha256(self, name: str, version: int) -> str:
        """sha256 of the version's manifest.json: recorded in version.yaml at publish,
        computed from the file for versions published before regctl recorded it."""
        recorded = self.version_facts(name, version).get("manifest_sha256")
        if isinstance(recorded, str):
            return recorded
        key = (name, version)
        if key not in self._manifest_sha:
            data = self.store.read(f"{layout.version_key(name, version)}/manifest.json")
            self._manifest_sha[key] = hashlib.sha256(data).hexdigest()
        return self._manifest_sha[key]

    def expected(self, state: ModelState, stage: str) -> list[IndexEntry]:
        return [self.entry(state, stage, v) for v in self.members(state, stage)]

    def expected_files(self, name: str, version: int) -> list[str]:
        """Paths (relative to the version folder) that ``versions/vN/`` holds."""
        vkey = layout.version_key(name, version)
        manifest = json.loads(self.store.read(f"{vkey}/manifest.json"))
        added = [  # signatures and attestations added beside the version (docs/trust.md)
            f"{folder}/{entry}"
            for folder in ADDED_FOLDERS
            for entry in self.store.children(f"{vkey}/{folder}")
            if not entry.startswith(".")
        ]
        # a bundle assembled from the payload as it is read has no file to link
        # (docs/layout.md); `dist rebuild --bundles` writes one, which is then kept
        bundle = [] if self.bundle_is_virtual(name, version) else ["bundle.tar.gz"]
        payload = [] if self.in_blobs(name, version) else [f["path"] for f in manifest["files"]]
        return bundle + ["manifest.json"] + payload + added

    def bundle_is_virtual(self, name: str, version: int) -> bool:
        """True when the version recorded ``stored: false`` for its bundle."""
        bundle = self.version_facts(name, version).get("bundle")
        return isinstance(bundle, dict) and bundle.get("stored") is False

    def add_version_file(self, state: ModelState, version: int, rel: str) -> None:
        """Serve ``rel``, just added beside a published version, in every stage holding it."""
        src = f"{layout.version_key(state.name, version)}/{rel}"
        for stage in self.stages:
            if version in self.members(state, stage):
                target = f"{layout.dist_key(stage, state.name)}/versions/{format_version(version)}"
                if self.store.kind(target) == "dir":
                    self.store.copy_file(src, f"{target}/{rel}")

    def stage_documents(
        self, state: ModelState, stage: str, entries: list[IndexEntry]
    ) -> dict[str, bytes | None]:
        """What ``index.json``, ``LATEST.json`` and ``LATEST`` must hold (None: absent)."""
        latest = state.latest.get(stage)
        by_version = {e.version: e for e in entries}
        if latest not in by_version:
            latest = None
        aliases = {a: format_version(v) for a, v in state.all_aliases().items() if v in by_version}
        return {
            "aliases.json": (json.dumps(aliases, indent=2, sort_keys=True) + "\n").encode(),
            "index.json": index_bytes(state.name, stage, latest, entries),
            "LATEST.json": latest_bytes(state.name, stage, by_version[latest]) if latest else None,
            "LATEST": f"{format_version(latest)}\n".encode() if latest else None,
        }

    # -- sync after a change ------------------------------------------
    def sync(self, state: ModelState, stages: Iterable[str]) -> None:
        """Bring the given stages of one model up to date (incrementally).

        Where the store has no lock (object storage), two writers may sync one
        model from different states at once. After writing, the committed state
        is read again; if a later commit moved it, the same stages are synced
        again from that state. Whoever writes last has read the last committed
        state first, so ``dist/`` ends as the last commit says."""
        wanted = [s for s in dict.fromkeys(stages) if s in self.stages]
        for _ in range(RESYNC_ROUNDS):
            self._facts.clear()
            try:
                for stage in wanted:
                    self._sync_stage(state, stage, full=False, report=None)
            except OSError as exc:
                raise RegctlError(
                    f"the change to {state.name} is committed, but dist/ could not be "
                    f"updated: {exc}",
                    hint="fix the cause, then run: regctl dist rebuild",
                ) from None
            newer = self._moved_since(state)
            if newer is None:
                return
            state = newer

    def _moved_since(self, state: ModelState) -> ModelState | None:
        """The committed state when it is no longer ``state``; None when it still is."""
        try:
            data = self.store.read(layout.state_key(state.name))
        except Missing:
            return None
        if data == dump_state_text(state.to_doc()).encode():
            return None
        try:
            return ModelState.from_doc(load_state_text(data))
        except (ValueError, StateFormatError):
            return None  # verify reports an unreadable state

    def _read_index(self, mkey: str, seen: dict[str, bytes | None]) -> dict[int, IndexEntry] | None:
        """The stage's index by version (None: absent or bad); its bytes go in ``seen``."""
        try:
            data = seen["index.json"] = self.store.read(f"{mkey}/index.json")
            _doc, entries = parse_index(data, f"{mkey}/index.json")
        except Missing:
            seen["index.json"] = None
            return None
        except IntegrityError:
            return None
        return {e.version: e for e in entries}

    def _put_if_changed(self, key: str, data: bytes | None, seen: dict[str, bytes | None]) -> None:
        """Write (None: delete) unless the store holds ``data``, or ``seen`` says it does."""
        name = key.rsplit("/", 1)[-1]
        if name in seen:
            have = seen[name]
        else:
            try:
                have = self.store.read(key)
            except Missing:
                have = None
        if have == data:
            return
        if data is None:
            self.store.delete(key)
        else:
            self.store.put(key, data)

    def _sync_stage(
        self, state: ModelState, stage: str, *, full: bool, report: DistReport | None
    ) -> None:
        mkey = layout.dist_key(stage, state.name)
        members = self.members(state, stage)
        if not members:
            if self.store.kind(mkey) is not None:
                self.store.remove_tree(mkey)
                if report is not None:
                    report.removed.append(self.where(mkey))
            return
        seen: dict[str, bytes | None] = {}  # the index is read once, used twice
        old = None if full else self._read_index(mkey, seen)
        known = old or {}
        entries: list[IndexEntry] = []
        for v in members:
            entry = known.get(v)
            if entry is None or entry.manifest_sha256 is None:  # new, or an older index
                entry = self.entry(state, stage, v)
            if entry.status != state.status_of(v):
                entry = replace(entry, status=state.status_of(v))
            entries.append(entry)
            if full or old is None or v not in old:
                self._ensure_version(mkey, state.name, v, repair=full, report=report)
        member_set = set(members)
        stale = [f"v{v}" for v in known if v not in member_set]
        if full or old is None:
            stale = []
            for entry_name in self.store.children(f"{mkey}/versions"):
                if not is_version_name(entry_name, member_set):
                    stale.append(entry_name)
                    if report is not None:
                        report.removed.append(self.where(f"{mkey}/versions/{entry_name}"))
        for entry_name in stale:
            self.store.remove_tree(f"{mkey}/versions/{entry_name}")
        for fname, data in self.stage_documents(state, stage, entries).items():
            self._put_if_changed(f"{mkey}/{fname}", data, seen)
        if full:
            for entry_name in self.store.children(mkey):
                if entry_name not in MODEL_FILES:
                    self.store.remove_tree(f"{mkey}/{entry_name}")
                    if report is not None:
                        report.removed.append(self.where(f"{mkey}/{entry_name}"))

    def _ensure_version(
        self, mkey: str, name: str, version: int, *, repair: bool, report: DistReport | None
    ) -> None:
        """Create ``versions/vN`` if missing; with ``repair``, also fix a drifted one."""
        src = layout.version_key(name, version)
        target = f"{mkey}/versions/{format_version(version)}"
        if self.store.kind(target) not in (None, "dir"):
            self.store.remove_tree(target)
        if self.store.kind(target) == "dir":
            if repair:
                self._repair_version(src, target, self.expected_files(name, version), report)
            return
        try:
            self.store.copy_files(src, target, self.expected_files(name, version))
        except Missing as exc:
            raise IntegrityError(
                f"{self.store.location}/{exc} is missing; cannot serve {name}:v{version}",
                hint=f"check the registry with: regctl verify {name}",
            ) from None
        if report is not None:
            report.linked.append(self.where(target))

    def _repair_version(
        self, src: str, target: str, wanted: list[str], report: DistReport | None
    ) -> None:
        for rel in wanted:
            if not self.store.same_content(f"{src}/{rel}", f"{target}/{rel}"):
                self.store.copy_file(f"{src}/{rel}", f"{target}/{rel}")
                if report is not None:
                    report.repaired.append(self.where(f"{target}/{rel}"))
        wanted_set = set(wanted)
        if "bundle.tar.gz" not in wanted_set:  # a written-out virtual bundle stays
            wanted_set.add("bundle.tar.gz")
        for rel in list(self.store.walk_files(target)):
            if rel not in wanted_set:
                self.store.remove_tree(f"{target}/{rel}")
                if report is not None:
                    report.removed.append(self.where(f"{target}/{rel}"))

    # -- rebuild -------------------------------------------------------
    def rebuild_model(self, state: ModelState, report: DistReport) -> None:
        """Regenerate every stage of one model from ``models/`` (full scan)."""
        self._facts.clear()
        self._in_blobs.clear()  # gc --dedup may just have moved payloads into blobs
        report.models += 1
        for stage in self.stages:
            self._sync_stage(state, stage, full=True, report=report)
            if self.members(state, stage):
                report.stages += 1

    def remove_orphans(self, model_names: Iterable[str], report: DistReport) -> None:
        """Remove dist folders of unknown stages and of models that no longer exist."""
        for key, _problem in self.orphans(set(model_names)):
            self.store.remove_tree(key)
            report.removed.append(self.where(key))

    def orphans(self, names: set[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for entry in self.store.children(layout.DIST):
            key = f"{layout.DIST}/{entry}"
            if entry not in self.stages:
                out.append((key, f"{entry!r} is not a configured stage"))
            elif self.store.kind(key) != "dir":
                out.append((key, "not a stage folder"))
            else:
                self._walk_stage(key, "", names, out)
        return out

    def _walk_stage(
        self, key: str, prefix: str, names: set[str], out: list[tuple[str, str]]
    ) -> None:
        for entry in self.store.children(key):
            path = f"{key}/{entry}"
            name = f"{prefix}/{entry}" if prefix else entry
            if self.store.kind(path) != "dir" or not SEGMENT_RE.match(entry):
                out.append((path, "unexpected entry in dist/"))
            elif name in names:
                continue
            elif any(n.startswith(name + "/") for n in names):
                self._walk_stage(path, name, names, out)
            else:
                out.append((path, f"no model named {name!r} in models/"))


def blobs_pointer(name: str) -> str:
    """``blobs/sha256`` relative to ``dist/<stage>/<name>/`` (where the documents are)."""
    return "../" * (2 + name.count("/") + 1) + layout.BLOBS


def is_version_name(entry: str, members: set[int]) -> bool:
    try:
        number = parse_version(entry)
    except BadInput:
        return False
    return number in members and entry == f"v{number}"
