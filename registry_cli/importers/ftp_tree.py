"""Read an old FTP model registry tree: ``regctl import ftp://USER@HOST:PORT`` or ``import PATH``.

The tree (``/<stage>/<model>/LATEST``, ``LATEST.json``, ``index.json``,
``versions/<v>/bundle.tar.gz``; the documents' shapes are in docs/import.md)
is read whole first: a stage regctl does not have, an unreadable ``index.json``
or a version that is not ``vN`` is exit 2 and nothing is imported. A version's
bundle is fetched from the first stage that lists it and checked against that
stage's ``index.json`` (and ``LATEST.json`` when it names the version): size
and sha256 of the bundle, hostile members, every file against the bundle's
manifest. A version failing a check is reported (exit 5) and never written.
A regctl ``dist/`` tree (or a registry root) reads the same way.
"""

from __future__ import annotations

import ftplib
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_cli.core.names import parse_version, validate_model_name
from registry_cli.errors import BadInput, IntegrityError, NotFound, RemoteError
from registry_cli.importers import tree_docs
from registry_cli.importers.source import (
    Fetched,
    SourceModel,
    SourceRegistry,
    SourceVersion,
    chain_promotions,
)
from registry_cli.pull.sources import parse_source
from registry_cli.pull.transports import FtpTransport, LocalTransport, Transport
from registry_cli.storage.bundle_reader import unpack_bundle
from registry_cli.storage.layout import check_key_parts

SMALL = 64 << 20
SKIP_DIRS = {"versions"}


@dataclass
class Tree:
    """A served tree: the pull transport plus listing."""

    transport: Transport
    location: str  # for identities and messages: ftp://HOST:PORT[/BASE] or the folder

    def listdir(self, relpath: str) -> list[tuple[str, bool]]:
        """``(name, is_folder)`` of each entry; hidden ones left out."""
        out: list[tuple[str, bool]] = []
        if isinstance(self.transport, LocalTransport):
            folder = self.transport.tree / relpath if relpath else self.transport.tree
            try:
                with os.scandir(folder) as it:
                    out = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError as exc:
                raise RemoteError(f"cannot list {folder}: {exc.strerror}") from None
        else:
            assert isinstance(self.transport, FtpTransport)
            path = f"{self.transport.base.rstrip('/')}/{relpath}".rstrip("/") or "/"
            try:
                for name, facts in self.transport.ftp.mlsd(path, facts=["type"]):
                    kind = facts.get("type", "")
                    if kind in ("cdir", "pdir") or name in (".", ".."):
                        continue
                    out.append((name, kind == "dir"))
            except (OSError, EOFError, ftplib.Error) as exc:
                raise RemoteError(f"cannot list {path} on {self.location}: {exc}") from None
        return sorted((n, d) for n, d in out if not n.startswith("."))

    def read(self, relpath: str) -> bytes | None:
        try:
            return self.transport.read_small(relpath, SMALL)
        except NotFound:
            return None


def open_tree(location: str, password: str | None) -> Tree:
    """``ftp://[USER@]HOST[:PORT][/BASE]`` (``ftps://`` too) or a folder."""
    if "://" in location:
        parts = urllib.parse.urlsplit(location)
        if parts.scheme not in ("ftp", "ftps"):
            raise BadInput(f"unknown source scheme {parts.scheme + '://'!r} in {location!r}")
        if parts.password is not None:
            raise BadInput(
                "a password inside the ftp:// URL is refused",
                hint="give it with --password-env VAR or --password-file FILE",
            )
        source = parse_source(location)
        base = "" if source.base == "/" else source.base.rstrip("/")
        shown = f"{'ftps' if source.tls else 'ftp'}://{source.host}:{source.port}{base}"
        transport = FtpTransport(
            source.host,
            source.port,
            user=source.user,
            password=password,
            tls=source.tls,
            base=source.base,
        )
        return Tree(transport, shown)
    path = Path(os.path.expanduser(location)).absolute()
    if not path.is_dir():
        raise BadInput(f"{path} is not a folder", hint="give the old FTP registry's root folder")
    if (path / "dist").is_dir() and (path / "models").is_dir():
        path = path / "dist"  # a regctl root
    elif (path / "registry.yaml").is_file() and (path / "models").is_dir():
        raise BadInput(
            f"{path} looks like a lightweight YAML registry, not an FTP registry tree",
            hint=f"import it with: regctl import yaml-registry {path}",
        )
    return Tree(LocalTransport(Path(os.path.realpath(path))), str(path))


def _model_folders(tree: Tree, stage: str) -> list[str]:
    """Model names under a stage: folders holding ``index.json`` (names may nest)."""
    found: list[str] = []

    def walk(rel: str) -> None:
        entries = tree.listdir(f"{stage}/{rel}" if rel else stage)
        names = {n for n, is_dir in entries if not is_dir}
        if rel and ("index.json" in names or "LATEST" in names):
            found.append(rel)
            return
        for name, is_dir in entries:
            if is_dir and name not in SKIP_DIRS:
                walk(f"{rel}/{name}" if rel else name)

    walk("")
    return found


@dataclass
class _Listing:
    """What one stage's documents say about one model."""

    stage: str
    latest: str | None
    entries: dict[int, tree_docs.Entry]
    latest_doc: tree_docs.Entry | None


def _fetch_payload(tree: Tree, where: str, into: Path) -> dict[str, tuple[int, str]]:
    """``manifest.json`` and each file it lists under ``where`` (a version folder whose
    bundle is assembled by its server, so has no file), as an unpacked bundle would be;
    the digests are checked against the manifest by the caller."""
    import json

    data = tree.read(f"{where}/manifest.json")
    if data is None:
        raise IntegrityError(f"{where}/bundle.tar.gz is listed but missing")
    (into / "manifest.json").write_bytes(data)
    try:
        files = json.loads(data)["files"]
        paths = [str(f["path"]) for f in files]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{where}/manifest.json lists no files ({exc})") from None
    digests = {}
    for path in paths:
        check_key_parts(path)
        if not path.startswith("payload/"):
            raise IntegrityError(f"{where}/manifest.json: {path!r} is not under payload/")
        dest = into / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            got = tree.transport.download(f"{where}/{path}", fd)
        except NotFound:
            raise IntegrityError(f"{where}/{path} is listed but missing") from None
        finally:
            os.close(fd)
        digests[path] = (got[0], got[1])
    digests["manifest.json"] = (len(data), "")
    return digests


def _read_stage(tree: Tree, stage: str, name: str) -> _Listing:
    where = f"{stage}/{name}"
    data = tree.read(f"{where}/index.json")
    if data is None:
        raise BadInput(f"{tree.location}/{where} has a LATEST but no index.json")
    doc_latest, entries = tree_docs.parse_index(data, f"{tree.location}/{where}/index.json")
    latest = doc_latest
    text = tree.read(f"{where}/LATEST")
    if text is not None:
        latest = tree_docs.label_of(text.decode("utf-8", "replace").strip(), f"{where}/LATEST")
    latest_doc = None
    raw = tree.read(f"{where}/LATEST.json")
    if raw is not None:
        latest_doc = tree_docs.parse_latest(raw, f"{tree.location}/{where}/LATEST.json")
        latest = latest or latest_doc.label
    return _Listing(stage, latest, {parse_version(e.label): e for e in entries}, latest_doc)


def _fetcher(tree: Tree, listing: _Listing, name: str, entry: tree_docs.Entry) -> Any:
    def fetch(folder: Path) -> Fetched:
        where = f"{listing.stage}/{name}/versions/{entry.label}"
        expected = tree_docs.expected_bundle(entry, listing.latest_doc)
        bundle = folder / "bundle.tar.gz"
        unpacked = folder / "unpacked"
        unpacked.mkdir()
        fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            got = tree.transport.download(f"{where}/bundle.tar.gz", fd)
            size, sha = got[0], got[1]  # (size, sha256, ...)
        except NotFound:
            got = None
        finally:
            os.close(fd)
        if got is None:  # a regctl tree serving its bundle without a file: file by file
            bundle.unlink()
            digests = _fetch_payload(tree, where, unpacked)
        else:
            if size != expected.size or sha != expected.sha256:
                raise IntegrityError(
                    f"{where}/bundle.tar.gz: sha256 {sha} ({size} bytes) does not match "
                    f"{expected.size} bytes, sha256 {expected.sha256} in index.json/LATEST.json"
                )
            digests = unpack_bundle(bundle, unpacked)
            bundle.unlink()
        manifest = tree_docs.check_bundle(unpacked, digests, where)
        files = [
            (unpacked / path, path[len("payload/") :])
            for path in sorted(digests)
            if path.startswith("payload/")
        ]
        if not files:
            raise IntegrityError(f"{where}/bundle.tar.gz holds no payload files")
        facts = tree_docs.manifest_facts(manifest, {p for _f, p in files})
        return Fetched(
            files=files,
            move=True,
            metrics=facts["metrics"],
            params=facts["params"],
            tags=facts["tags"],
            description=facts["description"],
            created_at=facts["created_at"] or entry.created_at,
            created_by=facts["created_by"],
            signature=facts["signature"],
            standard_artifacts=facts["standard_artifacts"],
            source={
                "type": "ftp-registry",
                "location": tree.location,
                "stage": listing.stage,
                "model": name,
                "version": entry.label,
                "original": facts["source"],
            },
        )

    return fetch


def _model(tree: Tree, name: str, listings: list[_Listing], stages: tuple[str, ...]) -> SourceModel:
    model = SourceModel(name=name, versions=[])
    first_seen: dict[int, tuple[_Listing, tree_docs.Entry]] = {}
    for listing in listings:  # in stage order
        for number, entry in sorted(listing.entries.items()):
            first_seen.setdefault(number, (listing, entry))
    archived = {
        n for listing in listings for n, e in listing.entries.items() if e.status == "archived"
    }
    labels: dict[int, str] = {}
    for number, (listing, entry) in sorted(first_seen.items()):
        labels[number] = entry.label
        model.versions.append(
            SourceVersion(
                label=entry.label,
                identity=f"{tree.location}#{name}:{entry.label}",
                source={"type": "ftp-registry", "location": tree.location},
                fetch=_fetcher(tree, listing, name, entry),
                size=entry.size,
                created_at=entry.created_at,
                archived=number in archived,
            )
        )

    def label(text: str | None) -> str | None:
        return labels.get(parse_version(text)) if text else None

    for listing in listings:
        if listing.stage == stages[0]:
            model.first_latest, model.keep_first_latest = label(listing.latest), True
            continue
        order = [labels[n] for n in sorted(listing.entries)]
        latest = label(listing.latest)
        if latest in order:
            order.remove(latest)
            order.append(latest)
        model.promotions[listing.stage] = order
    chain_promotions(model, stages)
    return model


def read(location: str, password: str | None, stages: tuple[str, ...]) -> SourceRegistry:
    tree = open_tree(location, password)
    try:
        found: dict[str, list[_Listing]] = {}
        for stage, is_dir in tree.listdir(""):
            if not is_dir:
                continue
            names = _model_folders(tree, stage)
            if names and stage not in stages:
                raise BadInput(
                    f"{tree.location} has stage {stage!r}, which this registry does not "
                    f"have (stages: {', '.join(stages)})",
                    hint="add it to stages: in registry.yaml, in order",
                )
            for name in names:
                validate_model_name(name)
                found.setdefault(name, []).append(_read_stage(tree, stage, name))
        if not found:
            raise BadInput(
                f"no old FTP registry tree at {tree.location}: expected <stage>/<model>/index.json",
            )
        models = []
        for name in sorted(found):
            listings = sorted(found[name], key=lambda s: stages.index(s.stage))
            models.append(_model(tree, name, listings, stages))
    except BaseException:
        tree.transport.close()
        raise
    close: Callable[[], None] = tree.transport.close
    return SourceRegistry(kind="ftp-registry", display=tree.location, models=models, close=close)
