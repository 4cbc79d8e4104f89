"""The puller: resolve a version on a served tree, fetch it, verify it, install it.

A pull: resolve the version (``LATEST.json`` for ``latest``, ``index.json`` for ``vN``); if
``vN/`` is already cached and intact, done (no download, and for an explicit ``vN`` no
network at all). Where the tree records the manifest's sha256, fetch the version file by
file (:mod:`registry_cli.pull.files`: one write per byte, resumable, parallel; files the
cache's blobs hold are linked, not downloaded: a delta pull). Otherwise
(an older tree, or ``bundle=True``) download the bundle the same resumable way, check its
size and sha256 against the index, unpack it into a unique folder beside the target
(:mod:`registry_cli.storage.bundle_reader` refuses hostile members) and check every file
against ``manifest.json`` (exactly the listed files, each with its size and sha256). Then
rename the folder to ``vN`` (:func:`registry_cli.pull.cache.install`). An integrity failure
removes every temp file and folder; a cut transfer parks its work folder for the next run;
so the cache never holds a partial or unverified version outside hidden paths. Two processes
pulling the same version both succeed: the first rename wins and the other uses the winner's
folder. A lock file avoids the duplicate download where ``flock`` works, but correctness
never depends on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry_cli.core.documents import preferred_weight
from registry_cli.core.names import ALIAS_RE, format_version, parse_version, validate_model_name
from registry_cli.errors import BadInput, IntegrityError, NotFound
from registry_cli.pull.blobs import BlobCache
from registry_cli.pull.cache import (
    MARKER,
    best_effort_lock,
    hold_version,
    install,
    pull_marker,
    read_cached,
    read_only_files,
    remove_empty_parents,
    resolve_cache_root,
)
from registry_cli.pull.connect import open_transport
from registry_cli.pull.files import (
    claim_work_folder,
    fetch_files,
    fetch_one,
    park_work_folder,
    work_key,
)
from registry_cli.pull.remote import RemoteVersion, check_against_manifest, resolve_version
from registry_cli.pull.result import PullResult
from registry_cli.pull.signed import require_signed
from registry_cli.pull.sources import Source
from registry_cli.pull.transports import Transport
from registry_cli.storage.atomic import remove_tree
from registry_cli.storage.bundle_reader import unpack_bundle
from registry_cli.storage.hashing import Progress
from registry_cli.storage.layout import inside

PullProgress = Callable[[str, int], "Progress | None"]
"""Called with a phase ("download", "unpack") and its byte total; returns a per-chunk callback."""


class Puller:
    """Pulls versions from one source into one cache root.

    ``password`` may be a callable (e.g. a prompt): it is asked once, and only
    when the server is really contacted (not for a cached ``vN``).
    """

    def __init__(
        self,
        source: Source,
        *,
        password: str | Callable[[], str] | None = None,
        token: str | None = None,
        cache_root: Path | None = None,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
        trust: list[Path] | None = None,
    ) -> None:
        self.source = source
        self.trust = list(trust or [])  # --require-signed: pull/signed.py checks signatures
        self._password = password
        self._token = token
        self.cache_root = cache_root or resolve_cache_root()
        self.ca_cert = ca_cert
        self.timeout = timeout

    def model_cache(self, stage: str, name: str) -> Path:
        return inside(self.cache_root / "regctl", self.source.key, stage, *name.split("/"))

    def open_transport(self) -> Transport:
        """Connect (and log in) to the source; the caller closes the transport."""
        if callable(self._password):
            self._password = self._password()
        return open_transport(
            self.source,
            password=self._password,
            token=self._token,
            ca_cert=self.ca_cert,
            timeout=self.timeout,
        )

    def resolve(
        self, transport: Transport, stage: str, name: str, version: int | None
    ) -> RemoteVersion:
        """What the served tree says about ``name`` (``version=None``: its LATEST)."""
        return resolve_version(transport, stage, name, version)

    def download_bundle(
        self,
        transport: Transport,
        stage: str,
        name: str,
        remote: RemoteVersion,
        dest: Path,
        progress: Progress | None = None,
    ) -> None:
        """Download the bundle into the new file ``dest``, hashing it; refuse a size or
        sha256 that differs from ``remote`` (:class:`IntegrityError`)."""
        relpath = remote.bundle_path(stage, name)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size, digest, _validator, _start = transport.download(relpath, fd, progress)
        finally:
            os.close(fd)
        if size != remote.size:
            raise IntegrityError(
                f"{relpath} from {transport.description}: got {size} bytes, "
                f"index says {remote.size}",
                hint="the served bundle is damaged; run `regctl verify` on the server",
            )
        if digest != remote.sha256:
            raise IntegrityError(
                f"{relpath} from {transport.description}: sha256 {digest} != "
                f"{remote.sha256} recorded in the index",
                hint="the served bundle is damaged or tampered with; run `regctl verify` "
                "on the server",
            )

    # -- the cache -----------------------------------------------------
    def cached_versions(self, stage: str, name: str) -> list[int]:
        """Intact cached versions of a model, newest first."""
        mcache = self.model_cache(stage, name)
        found = []
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.listdir(mcache):
                if not entry.startswith("v"):
                    continue
                try:
                    number = parse_version(entry)
                except BadInput:
                    continue
                if entry == format_version(number) and read_cached(mcache / entry, name, number):
                    found.append(number)
        return sorted(found, reverse=True)

    def _result(
        self,
        stage: str,
        name: str,
        vdir: Path,
        marker: dict,
        manifest: dict,
        cached: bool,
        offline: bool = False,
    ) -> PullResult:
        paths = [f["path"] for f in manifest["files"]]
        pref = manifest.get("preferred_weight")
        if pref not in paths and pref != "payload":
            pref = preferred_weight(paths)
        return PullResult(
            name=name,
            stage=stage,
            version=manifest["version"],
            path=vdir,
            preferred_weight_path=vdir / str(pref),
            cached=cached,
            sha256=str(marker.get("sha256", "")),
            size=int(marker.get("size", 0)),
            source=str(marker.get("source", self.source.display)),
            manifest=manifest,
            offline=offline,
        )

    # -- pull ----------------------------------------------------------
    def pull(
        self,
        name: str,
        *,
        stage: str,
        version: str | int = "latest",
        offline: bool = False,
        progress: PullProgress | None = None,
        bundle: bool = False,
    ) -> PullResult:
        """Resolve, fetch and verify; see the module docstring. ``bundle``: use the
        bundle even where the tree allows a per-file pull. The version stays in use by
        this process (``cache prune`` leaves it alone) until it exits."""
        for _attempt in range(3):
            result = self._pull(name, stage, version, offline, progress, bundle)
            if hold_version(result.path):
                return result
        raise NotFound(
            f"{result.path} keeps being removed from the cache while it is pulled",
            hint="is a `regctl cache prune` running in a loop?",
        )

    def _pull(
        self,
        name: str,
        stage: str,
        version: str | int,
        offline: bool,
        progress: PullProgress | None,
        bundle: bool,
    ) -> PullResult:
        started = time.perf_counter()
        validate_model_name(name)
        if not ALIAS_RE.match(stage or ""):
            raise BadInput(f"invalid stage {stage!r}")
        number = None if str(version) == "latest" else parse_version(version)
        mcache = self.model_cache(stage, name)

        if number is not None and not self.trust:
            vdir = mcache / format_version(number)
            hit = read_cached(vdir, name, number)
            if hit is not None:
                return self._result(stage, name, vdir, *hit, cached=True, offline=offline)
        if offline:
            if number is not None:
                raise NotFound(
                    f"{name}:{format_version(number)} ({stage}) is not in the cache at {mcache}",
                    hint="pull it once without --offline",
                )
            versions = self.cached_versions(stage, name)
            if not versions:
                raise NotFound(
                    f"no cached version of {name} ({stage}) at {mcache}",
                    hint="pull it once without --offline",
                )
            vdir = mcache / format_version(versions[0])
            hit = read_cached(vdir, name, versions[0])
            assert hit is not None
            return self._result(stage, name, vdir, *hit, cached=True, offline=True)

        transport = self.open_transport()
        try:
            remote = self.resolve(transport, stage, name, number)
            vdir = mcache / format_version(remote.version)
            hit = read_cached(vdir, name, remote.version)
            if hit is not None and hit[0].get("sha256") == remote.sha256:
                require_signed(self.trust, transport, stage, name, remote, vdir)
                return self._result(stage, name, vdir, *hit, cached=True)
            with self._best_effort_lock(stage, name, remote.version):
                hit = read_cached(vdir, name, remote.version)
                if hit is not None and hit[0].get("sha256") == remote.sha256:
                    require_signed(self.trust, transport, stage, name, remote, vdir)
                    return self._result(stage, name, vdir, *hit, cached=True)
                result = self._fetch(transport, stage, name, remote, vdir, progress, bundle)
        finally:
            transport.close()
        result.timings["total_s"] = time.perf_counter() - started
        return result

    def blobs(self, model_cache: Path) -> BlobCache:
        """The cache's blobs; files of this model's versions cached before blobs
        existed are adopted on demand."""
        return BlobCache(self.cache_root / "regctl", legacy=model_cache)

    def _best_effort_lock(self, stage: str, name: str, version: int) -> Any:
        key = hashlib.sha256(f"{self.source.key}/{stage}/{name}/v{version}".encode()).hexdigest()
        return best_effort_lock(
            self.cache_root / "regctl" / ".locks", key[:32], max(self.timeout * 20, 600)
        )

    def _fetch(
        self,
        transport: Transport,
        stage: str,
        name: str,
        remote: RemoteVersion,
        vdir: Path,
        progress: PullProgress | None,
        bundle: bool,
    ) -> PullResult:
        vname = format_version(remote.version)
        created_parent = not vdir.parent.exists()
        vdir.parent.mkdir(parents=True, exist_ok=True)
        work = vdir.parent / f".{vname}.{os.getpid()}-{uuid.uuid4().hex[:8]}.unpack"
        key = work_key(remote, bundle)
        per_file = not key.startswith("bundle-")
        download: Path | None = None  # the resumable work folder of this run
        timings: dict[str, float] = {}
        ok = False
        try:
            t0 = time.perf_counter()
            download = claim_work_folder(vdir.parent, vname, key)
            try:
                if per_file:
                    work = download
                    manifest, _data = fetch_files(
                        transport, stage, name, remote, work, progress, self.blobs(vdir.parent)
                    )
                else:
                    fetch_one(
                        transport,
                        remote.folder(stage, name),
                        download,
                        {"path": "bundle.tar.gz", "size": remote.size, "sha256": remote.sha256},
                        progress("download", remote.size) if progress else None,
                        "the index",
                    )
            except IntegrityError:
                raise  # the finally below removes the folder: nothing in it is trusted
            except NotFound:
                if not per_file:
                    raise
                # a listed file the server does not serve (serve-ftp hides dot-files):
                # the bundle holds it
                remove_tree(download)
                return self._fetch(transport, stage, name, remote, vdir, progress, True)
            except BaseException:
                park_work_folder(download, vname, key)  # resumed by the next run
                raise
            if not per_file:
                timings["download_s"] = time.perf_counter() - t0
                work.mkdir()
                digests = unpack_bundle(
                    download / "bundle.tar.gz",
                    work,
                    progress("unpack", remote.size) if progress else None,
                )
                remove_tree(download)
                manifest = check_against_manifest(work, digests, name, vname)
            marker = pull_marker(
                name, stage, vname, remote.sha256, remote.size, self.source.display
            )
            require_signed(self.trust, transport, stage, name, remote, work)
            (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            read_only_files(work)
            BlobCache(self.cache_root / "regctl").keep_folder(work, manifest["files"])

            def intact() -> bool:
                hit = read_cached(vdir, name, remote.version)
                return hit is not None and hit[0].get("sha256") == remote.sha256

            installed = install(work, vdir, intact)
            timings["fetch_s" if per_file else "unpack_s"] = time.perf_counter() - t0
            hit = read_cached(vdir, name, remote.version)
            if hit is None:
                raise IntegrityError(f"{vdir} was damaged right after it was installed")
            ok = True
            result = self._result(
                stage, name, vdir, marker if installed else hit[0], manifest, cached=not installed
            )
            result.timings.update(timings)
            return result
        finally:
            if download is not None:
                remove_tree(download)  # gone already when installed or parked
            remove_tree(work)
            if not ok and created_parent:
                remove_empty_parents(vdir.parent, self.cache_root / "regctl")
