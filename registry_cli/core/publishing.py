"""Publishing a version (see docs/concepts.md#lifecycle-rules), crash-safe and concurrent.

1. validate every input, before anything is written;
2. hash the payload as it is copied into the root's blobs (each distinct file
   once; a folder root's staged ``payload/`` is made of hard links to them, an
   object store uploads the missing blobs), and stage manifest and
   ``version.yaml`` in a scratch folder of the store (no lock held, so
   publishers copy in parallel). The bundle's sha256 and size come from the
   same reads; its file is written only when compressed (``bundle:
   {compression: 1..9}``), a level-0 bundle is assembled from the blobs when
   read. A pending marker names the blobs meanwhile, so ``gc`` spares them;
3. reserve the number: a committed change of ``next_version`` (it only grows,
   so a number is never handed out twice, even after a crash);
4. under the model's lock, ``install_folder`` makes the staged folder
   ``models/<name>/vN`` (never over an existing one) and the state that lists
   it is committed (the commit point); then the audit line and the served tree.

A writer killed anywhere leaves at most a scratch folder or an unlisted
``vN``; ``gc`` removes both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry_cli.core import lifecycle
from registry_cli.core.config import Config
from registry_cli.core.documents import build_manifest, manifest_bytes, version_yaml
from registry_cli.core.models import ModelStates, utc_now
from registry_cli.core.names import validate_key, validate_model_name
from registry_cli.core.publish_objects import ObjectUpload
from registry_cli.core.state import ModelState
from registry_cli.errors import BadInput, RegctlError, RuleViolation
from registry_cli.storage import faults, layout, payload
from registry_cli.storage.atomic import write_durable
from registry_cli.storage.bundle_receipt import ReceivedBundle, matches, place_received
from registry_cli.storage.hashing import Progress
from registry_cli.storage.payload import FileRecord, PlannedFile
from registry_cli.storage.payload_copy import write_payload_and_bundle
from registry_cli.storage.store import AlreadyExists, Store

if TYPE_CHECKING:
    from registry_cli.storage.fs_prehash import Prehash

WRITE_LEVEL0_BUNDLES = False  # True: keep writing bundle.tar.gz files for level 0 too

PublishProgress = Callable[[str, int], "Progress | None"]
"""Called with a phase name ("publish") and the byte total; returns a per-chunk
callback or None."""


@dataclass(frozen=True)
class PublishOptions:
    """What the user says about a new version (the flags of ``regctl publish``)."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    stage: str | None = None
    set_latest: bool = True
    set_alias: bool = True
    derived_from: str | None = None  # a resolved "name:vN"
    signature: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # license, card, ci (core/provenance.py)

    def validated(self) -> PublishOptions:
        return PublishOptions(
            metrics={validate_key(k, "metric"): float(v) for k, v in self.metrics.items()},
            params={validate_key(k, "param"): str(v) for k, v in self.params.items()},
            tags={validate_key(k, "tag"): str(v) for k, v in self.tags.items()},
            description=self.description,
            stage=self.stage,
            set_latest=self.set_latest,
            set_alias=self.set_alias,
            derived_from=self.derived_from,
            signature=self.signature,
            facts=dict(self.facts),
        )


@dataclass(frozen=True)
class Produced:
    """What a converter or importer hands over besides the user's files.

    ``files`` are ``(file, path inside payload/)`` pairs. With ``move`` the
    caller gives them up and they are renamed into the payload (they must sit
    in a scratch folder of the registry's filesystem); else they are copied.
    ``sha256`` names the digest of a moved file the caller computed as it wrote
    it (an upload hashed as received), so it is not hashed again. ``bundle`` is
    the level-0 bundle framed from those files as they were received: used (the
    files are then not read at all) only when it covers exactly the planned files.
    ``source`` replaces the recorded origin; ``version``, ``created_at`` and
    ``created_by`` keep an imported version's number, time and author.
    """

    files: tuple[tuple[Path, str], ...] = ()
    move: bool = False
    sha256: dict[str, str] = field(default_factory=dict)  # path -> sha256 of a moved file
    bundle: ReceivedBundle | None = None
    standard_artifacts: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    version: int | None = None  # an importer keeping the old number (refused if taken)
    created_at: str | None = None  # an importer keeping the original time and author
    created_by: str | None = None
    prehash: Prehash | None = None  # the bundle hashed since the command began (CLI)


@dataclass
class Published:
    state: ModelState
    number: int
    entry: dict[str, Any]


class _Pending:
    """``.regctl/pending/<pid>-<hex8>.json``: the blobs a publish in progress will
    reference, written before each blob is looked for, so a ``gc`` running meanwhile
    spares them; removed when the publish ends, committed or not.

    ``lazy`` (object stores): written once, only when a blob is missing and before it
    is uploaded; when every blob exists there is no marker at all, and a blob a ``gc``
    removed before the commit is uploaded again by the check after it."""

    def __init__(self, store: Store, *, lazy: bool = False) -> None:
        self.store = store
        self.lazy = lazy
        self.key = f"{layout.PENDING}/{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.created = utc_now()
        self.blobs: list[str] = []
        self.tag: str | None = None

    def __enter__(self) -> _Pending:
        if not self.lazy:
            self._write()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.tag is None and self.lazy:
            return  # never written
        with contextlib.suppress(OSError, RegctlError):
            self.store.delete(self.key)

    def add(self, *sha256: str) -> None:
        new = [s for s in dict.fromkeys(sha256) if s not in self.blobs]
        if new:
            self.blobs.extend(new)
            self._write()

    def _write(self) -> None:
        data = json.dumps({"created": self.created, "blobs": self.blobs}).encode()
        if self.tag is None:
            self.tag = self.store.create(self.key, data)
        else:  # only this publish writes its marker
            self.tag = self.store.replace(self.key, data, if_match=self.tag)


class Publisher:
    def __init__(self, store: Store, states: ModelStates, config: Config, actor: str) -> None:
        self.store = store
        self.states = states
        self.config = config
        self.actor = actor

    def plan(
        self, name: str, paths: list[Path], options: PublishOptions, produced: Produced
    ) -> tuple[list[PlannedFile], PublishOptions, dict[str, Any]]:
        """Every refusal, before any write."""
        validate_model_name(name)
        stages = self.config.stages
        if options.stage is not None:
            if lifecycle.require_stage(options.stage, stages) != 0:
                raise RuleViolation(
                    f"a new version enters {stages[0]!r} first, not {options.stage!r}",
                    hint=f"publish, then: regctl promote {name} --to {options.stage}",
                )
        options = options.validated()
        planned = payload.plan_payload(paths, list(produced.files), move_extra=produced.move)
        if produced.move and produced.sha256:
            planned = [
                dataclasses.replace(p, sha256=produced.sha256.get(p.relpath)) if p.move else p
                for p in planned
            ]
        have = {p.relpath for p in planned}
        for artifact in produced.standard_artifacts.values():
            if artifact.removeprefix("payload/") not in have:
                raise BadInput(f"standard artifact {artifact} is not in the payload")
        source = produced.source or {"type": "local", "paths": [str(p.absolute()) for p in paths]}
        if options.facts.get("ci"):
            source = {**source, "ci": options.facts["ci"]}
        return planned, options, source

    def publish(
        self,
        name: str,
        paths: list[Path],
        options: PublishOptions,
        produced: Produced,
        progress: PublishProgress | None,
        after_commit: Callable[[ModelState, list[str]], None],
    ) -> Published:
        planned, options, source = self.plan(name, paths, options, produced)
        total = sum(p.size for p in planned)
        blobs_root = self.store.blobs_root()
        # a level-0 bundle is assembled from the blobs when read, so no file is written
        stored_bundle = self.config.bundle_level > 0 or WRITE_LEVEL0_BUNDLES
        # new bytes go once into blobs (a folder root) or nowhere local (object stores)
        needed = (0 if blobs_root is None else total) + (total if stored_bundle else 0)
        faults.check_free_space(self.store.local_path(""), needed, "publish", name, what="payload")
        # an object store: the sources are hashed on a thread from here on
        objects = ObjectUpload(self.store, planned) if blobs_root is None else None
        try:
            self.states.create(name)
        except BaseException:
            if objects is not None:
                objects.close()
            raise
        with (
            objects or contextlib.nullcontext(),
            self.store.scratch("publish") as staging,
            _Pending(self.store, lazy=objects is not None) as pending,
        ):
            vdir = staging / "version"
            vdir.mkdir()
            _state, number = self.states.change(name, self._reserve(name, produced.version))
            facts: dict[str, Any] = {}
            manifest_sha: list[str] = []

            def make_manifest(records: list[FileRecord]) -> bytes:
                facts.update(
                    build_manifest(
                        name=name,
                        version=number,
                        created_at=produced.created_at or utc_now(),
                        created_by=produced.created_by or self.actor,
                        source=source,
                        files=[f.to_doc() for f in records],
                        metrics=options.metrics,
                        params=options.params,
                        tags=options.tags,
                        description=options.description,
                        derived_from=options.derived_from,
                        standard_artifacts=dict(produced.standard_artifacts),
                        signature=options.signature,
                        extra={k: v for k, v in options.facts.items() if k != "ci"},
                    )
                )
                data = manifest_bytes(facts)
                manifest_sha.append(hashlib.sha256(data).hexdigest())
                return data

            mtime = produced.prehash.mtime if produced.prehash else int(time.time())
            received = produced.bundle
            if blobs_root is None or stored_bundle or (received and not matches(received, planned)):
                received = None
            uploading: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
            if objects is not None:  # upload the blobs while the bundle pass reads again
                planned = objects.hashed()
                every = [str(p.sha256) for p in planned]
                # the marker names every blob (those found too) once one is to go up
                uploading = objects.uploading(planned, announce=lambda _m: pending.add(*every))
            if received is not None and blobs_root is not None:
                mtime = received.mtime  # framed on receipt: no payload byte is read again
                files, (bsize, bsha), _copies = place_received(
                    planned,
                    vdir,
                    make_manifest,
                    received,
                    blobs_root=blobs_root,
                    fsync=self.config.publish_fsync,
                    on_blob=pending.add,
                )
            else:
                with uploading:
                    files, (bsize, bsha), _copies = write_payload_and_bundle(
                        planned,
                        vdir,
                        make_manifest,
                        level=self.config.bundle_level,
                        mtime=mtime,
                        fsync=self.config.publish_fsync,
                        progress=progress("publish", total) if progress else None,
                        blobs_root=blobs_root,
                        copy=False,
                        store_bundle=stored_bundle,
                        # a folder root looks for each blob as soon as it is hashed; an object
                        # store looks for them all at once below, so one marker write does
                        on_blob=pending.add if blobs_root is not None else None,
                        prehash=produced.prehash,
                    )
            bundle: dict[str, Any] = {
                "path": "bundle.tar.gz",
                "size": bsize,
                "sha256": bsha,
                "compression": f"gzip-{self.config.bundle_level}",
                "mtime": mtime,
            }
            if not stored_bundle:
                bundle["stored"] = False
            # the served tree lists it so clients can trust a manifest before its bundle
            recorded = {**facts, "manifest_sha256": manifest_sha[0]}
            write_durable(vdir / "version.yaml", version_yaml(recorded, bundle).encode())
            with open(vdir / "manifest.json", "rb") as fh:
                os.fsync(fh.fileno())
            target = layout.version_key(name, number)
            installed: list[bool] = []

            def install() -> None:
                # under the writer lock, with the commit that lists the folder: gc, which
                # takes the same lock, never sees an installed folder its writer still owns
                if installed:
                    return  # a retry after a conflicting commit (object stores)
                try:
                    self.store.install_folder(vdir, target)
                except AlreadyExists:  # only where locks do not work: never overwrite
                    raise RegctlError(
                        f"{self.store.location}/{target} appeared while publishing; "
                        "not overwriting",
                        hint="another writer took the number; rerun the publish",
                    ) from None
                installed.append(True)

            entry: dict[str, Any] = {}
            first = self.config.stages[0]

            def commit(state: ModelState) -> None:
                install()
                changes = lifecycle.add_published(
                    state,
                    number,
                    first,
                    set_latest=options.set_latest,
                    set_alias=options.set_alias,
                )
                changes.update(files=len(files), size=total, source=source.get("type"))
                entry["changes"] = changes

            def then(state: ModelState, _result: None) -> None:
                entry.update(
                    self.states.audit(self.actor, "publish", name, number, entry.pop("changes"))
                )
                after_commit(state, [first])

            state, _ = self.states.change(name, commit, then=then)
            if objects is not None:  # a gc elsewhere may have raced the upload: check again
                self.store.put_blobs(objects.uploads)
        return Published(state, number, entry)

    def _reserve(self, name: str, wanted: int | None) -> Callable[[ModelState], int]:
        def reserve(state: ModelState) -> int:
            if wanted is not None:
                # A number below next_version that no version holds was reserved by a
                # publish that died before its commit (an importer's rerun asks for it
                # again). Its folder, if any, is garbage: folders are installed under
                # this lock together with the commit that lists them.
                if wanted in state.versions:
                    raise RuleViolation(
                        f"{name}:v{wanted} is taken (numbers are never reused)",
                        hint=f"the next free number is v{state.next_version}",
                    )
                self.store.remove_tree(layout.version_key(name, wanted))
                state.next_version = max(state.next_version, wanted + 1)
                return wanted
            number = state.next_version
            while self.store.kind(layout.version_key(name, number)) is not None:
                number += 1  # a folder the state never recorded: skip past it
            state.next_version = number + 1
            return number

        return reserve
