"""The served tree ``dist/`` (SPEC §4): what FTP clients and ``pull --from PATH`` read.

    dist/<stage>/<name>/
      LATEST            "v5\\n"
      LATEST.json       {"format_version", "name", "stage", "version", "sha256", "size",
                         "published_at"}
      index.json        {"format_version", "kind", "name", "stage", "latest", "versions":
                         [{"version", "status", "sha256", "size", "published_at"}, ...]}
      versions/vN/      bundle.tar.gz, manifest.json, payload/...

``dist/`` is derived from ``models/`` and can always be regenerated
(``regctl dist rebuild``). Files under ``versions/vN/`` are hard links of the
read-only files in ``models/<name>/vN/`` (copies where linking fails, e.g.
across filesystems), so the tree costs no extra space.

Consistency for readers: a new ``versions/vN/`` is built in a hidden folder
beside its target and renamed into place; ``index.json``, ``LATEST.json`` and
``LATEST`` are replaced atomically (temp file + ``os.replace``) and written in
that order, so a client that reads ``LATEST`` always finds the version folder
and reads either the old or the new file, never a torn one.

Cost: a model may have thousands of versions, all in the first stage. After a
change :meth:`DistTree.sync` patches the existing ``index.json`` (reading
``version.yaml`` only for versions it does not list yet) and links only the
missing version folders. The full scan is for :meth:`DistTree.rebuild` and
:meth:`DistTree.verify_model`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from registry_cli.core.names import SEGMENT_RE, format_version, parse_version
from registry_cli.core.state import ModelState
from registry_cli.core.types import VerifyProblem, VerifyReport
from registry_cli.errors import BadInput, IntegrityError, RegctlError
from registry_cli.storage.atomic import atomic_write_bytes, fsync_dir, remove_tree
from registry_cli.storage.layout import Layout

INDEX_FORMAT = 1
INDEX_KIND = "regctl/dist-index"
LATEST_KIND = "regctl/dist-latest"
HIDDEN_PREFIX = "."  # temp folders/files in dist/ start with a dot; the FTP server hides them
_q = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes it


@dataclass(frozen=True)
class IndexEntry:
    """One version as listed in ``index.json``."""

    version: int
    status: str
    sha256: str
    size: int
    published_at: str

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": format_version(self.version),
            "status": self.status,
            "sha256": self.sha256,
            "size": self.size,
            "published_at": self.published_at,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> IndexEntry:
        if not isinstance(doc, dict):
            raise ValueError("entry is not an object")
        v = doc["version"]
        number = int(v[1:]) if isinstance(v, str) and v[:1] == "v" and v[1:].isdigit() else None
        return cls(
            version=number if number else parse_version(v),
            status=str(doc["status"]),
            sha256=str(doc["sha256"]),
            size=int(doc["size"]),
            published_at=str(doc["published_at"]),
        )

    def to_json_line(self) -> str:
        """``json.dumps(self.to_doc())``, ~5x faster (index.json may list 10,000 versions)."""
        return (
            f'{{"version": "v{self.version}", "status": {_q(self.status)}, '
            f'"sha256": {_q(self.sha256)}, "size": {int(self.size)}, '
            f'"published_at": {_q(self.published_at)}}}'
        )


@dataclass
class DistReport:
    """What ``dist rebuild`` did."""

    models: int = 0
    stages: int = 0
    linked: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "stages": self.stages,
            "linked": self.linked,
            "repaired": self.repaired,
            "removed": self.removed,
        }


# ---------------------------------------------------------------- documents
def index_bytes(name: str, stage: str, latest: int | None, entries: list[IndexEntry]) -> bytes:
    """``index.json`` with one version per line: readable, and cheap to rewrite at 10k versions."""
    head = {
        "format_version": INDEX_FORMAT,
        "kind": INDEX_KIND,
        "name": name,
        "stage": stage,
        "latest": format_version(latest) if latest else None,
    }
    lines = [e.to_json_line() for e in entries]
    body = ",\n    ".join(lines)
    text = json.dumps(head, indent=2)[:-2]  # drop the closing "\n}"
    text += ',\n  "versions": [' + (f"\n    {body}\n  " if lines else "") + "]\n}\n"
    return text.encode()


def latest_doc(name: str, stage: str, entry: IndexEntry) -> dict[str, Any]:
    return {
        "format_version": INDEX_FORMAT,
        "kind": LATEST_KIND,
        "name": name,
        "stage": stage,
        "version": format_version(entry.version),
        "sha256": entry.sha256,
        "size": entry.size,
        "published_at": entry.published_at,
    }


def latest_bytes(name: str, stage: str, entry: IndexEntry) -> bytes:
    return (json.dumps(latest_doc(name, stage, entry), indent=2) + "\n").encode()


def parse_index(data: bytes, where: str) -> tuple[dict[str, Any], list[IndexEntry]]:
    """Parse and validate an ``index.json`` (from disk or from a server)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != INDEX_KIND:
        raise IntegrityError(
            f"{where}: not a regctl index (kind {doc.get('kind')!r})"
            if isinstance(doc, dict)
            else f"{where}: not a JSON object"
        )
    if doc.get("format_version") != INDEX_FORMAT:
        raise IntegrityError(f"{where}: unsupported format_version {doc.get('format_version')!r}")
    try:
        entries = [IndexEntry.from_doc(e) for e in doc.get("versions") or []]
    except (KeyError, TypeError, ValueError, BadInput) as exc:
        raise IntegrityError(f"{where}: malformed version entry ({exc})") from None
    return doc, entries


# ---------------------------------------------------------------- file helpers
def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_if_changed(path: Path, data: bytes) -> bool:
    if _read(path) == data:
        return False
    atomic_write_bytes(path, data, mode=0o644)
    return True


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to the new name ``dst``; copy (read-only) where linking fails."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, 0o444)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _temp_name(parent: Path, base: str, tag: str) -> Path:
    return parent / f"{HIDDEN_PREFIX}{base}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def read_version_yaml(vdir: Path) -> dict[str, Any]:
    """The facts of a published version (``version.yaml``): created_at and bundle."""
    import yaml

    path = vdir / "version.yaml"
    try:
        doc = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        raise IntegrityError(
            f"{path} is missing", hint="run: regctl verify, then regctl dist rebuild"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise IntegrityError(f"{path}: unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "regctl/version":
        raise IntegrityError(f"{path}: not a regctl version document")
    bundle = doc.get("bundle")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("sha256"), str):
        raise IntegrityError(f"{path}: no bundle facts")
    return doc


def _expected_files(vdir: Path) -> list[str]:
    """Paths (relative to the version folder) that ``versions/vN/`` holds."""
    with open(vdir / "manifest.json", "rb") as fh:
        manifest = json.load(fh)
    return ["bundle.tar.gz", "manifest.json"] + [f["path"] for f in manifest.get("files", [])]


# ---------------------------------------------------------------- the tree
class DistTree:
    """Keeps ``<root>/dist`` in step with ``models/``. Callers hold the model's lock."""

    def __init__(self, layout: Layout, stages: tuple[str, ...]) -> None:
        self.layout = layout
        self.stages = stages
        self._facts: dict[tuple[str, int], dict[str, Any]] = {}  # version.yaml, read once

    # -- facts ---------------------------------------------------------
    def _members(self, state: ModelState, stage: str) -> list[int]:
        first = self.stages[0]
        if stage == first:
            return list(state.versions)
        inside = state.stages.get(stage)
        return [v for v in state.versions if inside is not None and v in inside]

    def _entry(self, state: ModelState, stage: str, version: int) -> IndexEntry:
        key = (state.name, version)
        doc = self._facts.get(key)
        if doc is None:
            doc = self._facts[key] = read_version_yaml(self.layout.version_dir(state.name, version))
        published = None
        if stage != self.stages[0]:
            published = state.stage_entered.get(stage, {}).get(version)
        return IndexEntry(
            version=version,
            status=state.status_of(version),
            sha256=doc["bundle"]["sha256"],
            size=int(doc["bundle"]["size"]),
            published_at=str(published or doc["created_at"]),
        )

    def _expected(self, state: ModelState, stage: str) -> list[IndexEntry]:
        return [self._entry(state, stage, v) for v in self._members(state, stage)]

    # -- sync after a change ------------------------------------------
    def sync(self, state: ModelState, stages: Iterable[str]) -> None:
        """Bring the given stages of one model up to date (incrementally)."""
        try:
            for stage in dict.fromkeys(stages):
                if stage in self.stages:
                    self._sync_stage(state, stage, full=False, report=None)
        except OSError as exc:
            raise RegctlError(
                f"the change to {state.name} is committed, but dist/ could not be updated: {exc}",
                hint="fix the cause, then run: regctl dist rebuild",
            ) from None

    def _read_index(self, mdir: Path) -> dict[int, IndexEntry] | None:
        data = _read(mdir / "index.json")
        if data is None:
            return None
        try:
            _doc, entries = parse_index(data, str(mdir / "index.json"))
        except IntegrityError:
            return None
        return {e.version: e for e in entries}

    def _sync_stage(
        self, state: ModelState, stage: str, *, full: bool, report: DistReport | None
    ) -> None:
        mdir = self.layout.dist_model(stage, state.name)
        members = self._members(state, stage)
        if not members:
            if os.path.lexists(mdir):
                remove_tree(mdir)
                if report is not None:
                    report.removed.append(str(mdir))
            return
        old = None if full else self._read_index(mdir)
        known = old or {}
        entries: list[IndexEntry] = []
        for v in members:
            entry = known.get(v)
            if entry is None:
                entry = self._entry(state, stage, v)
            status = state.status_of(v)
            if entry.status != status:
                entry = replace(entry, status=status)
            entries.append(entry)
            if full or old is None or v not in old:
                self._ensure_version(mdir, state.name, v, repair=full, report=report)
        member_set = set(members)
        versions_dir = mdir / "versions"
        stale = [v for v in known if v not in member_set]
        if full or old is None:
            stale = []
            if versions_dir.is_dir():
                for entry_name in os.listdir(versions_dir):
                    try:
                        number = parse_version(entry_name)
                    except BadInput:
                        number = None
                    if number is None or number not in member_set or entry_name != f"v{number}":
                        stale_path = versions_dir / entry_name
                        remove_tree(stale_path)
                        if report is not None:
                            report.removed.append(str(stale_path))
        for v in stale:
            remove_tree(versions_dir / format_version(v))
        latest = state.latest.get(stage)
        by_version = {e.version: e for e in entries}
        if latest not in by_version:
            latest = None
        _write_if_changed(mdir / "index.json", index_bytes(state.name, stage, latest, entries))
        if latest is None:
            _unlink(mdir / "LATEST.json")
            _unlink(mdir / "LATEST")
        else:
            _write_if_changed(
                mdir / "LATEST.json", latest_bytes(state.name, stage, by_version[latest])
            )
            _write_if_changed(mdir / "LATEST", f"{format_version(latest)}\n".encode())
        if full:
            self._remove_strays(mdir, report)

    def _remove_strays(self, mdir: Path, report: DistReport | None) -> None:
        keep = {"LATEST", "LATEST.json", "index.json", "versions"}
        for entry in os.listdir(mdir):
            if entry not in keep:
                path = mdir / entry
                remove_tree(path)
                if report is not None:
                    report.removed.append(str(path))

    def _ensure_version(
        self, mdir: Path, name: str, version: int, *, repair: bool, report: DistReport | None
    ) -> None:
        """Create ``versions/vN`` if missing; with ``repair``, also fix a drifted one."""
        src = self.layout.version_dir(name, version)
        target = mdir / "versions" / format_version(version)
        if os.path.lexists(target) and not os.path.isdir(target) or os.path.islink(target):
            remove_tree(target)
        if os.path.isdir(target):
            if repair:
                self._repair_version(src, target, report)
            return
        wanted = _expected_files(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target.parent, target.name, "tmp")
        try:
            tmp.mkdir()
            for rel in wanted:
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    link_or_copy(src / rel, dst)
                except FileNotFoundError:
                    raise IntegrityError(
                        f"{src / rel} is missing; cannot serve {name}:v{version}",
                        hint=f"check the registry with: regctl verify {name}",
                    ) from None
            try:
                os.rename(tmp, target)
            except OSError:
                if not os.path.isdir(target):
                    raise
                # another writer (a rebuild) put it in place meanwhile
            fsync_dir(target.parent)
            if report is not None:
                report.linked.append(str(target))
        finally:
            remove_tree(tmp)

    def _repair_version(self, src: Path, target: Path, report: DistReport | None) -> None:
        wanted = _expected_files(src)
        for rel in wanted:
            dst = target / rel
            if self._file_matches(src / rel, dst):
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(dst) and not os.path.islink(dst):
                remove_tree(dst)
            tmp = _temp_name(dst.parent, dst.name, "tmp")
            try:
                link_or_copy(src / rel, tmp)
                os.replace(tmp, dst)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            if report is not None:
                report.repaired.append(str(dst))
        wanted_set = set(wanted)
        for dirpath, dirnames, filenames in os.walk(target, topdown=False):
            for fname in filenames + [
                d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
            ]:
                full = os.path.join(dirpath, fname)
                if os.path.relpath(full, target).replace(os.sep, "/") not in wanted_set:
                    os.unlink(full)
                    if report is not None:
                        report.removed.append(full)
            if dirpath != str(target) and not os.listdir(dirpath):
                os.rmdir(dirpath)

    @staticmethod
    def _file_matches(src: Path, dst: Path) -> bool:
        """Same inode (a hard link), or a regular file with the same size and sha256."""
        try:
            d = os.lstat(dst)
            s = os.stat(src)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(d.st_mode):
            return False
        if _same_file(s, d):
            return True
        if s.st_size != d.st_size:
            return False
        from registry_cli.storage.hashing import hash_file

        return hash_file(src)[1] == hash_file(dst)[1]

    # -- rebuild -------------------------------------------------------
    def rebuild_model(self, state: ModelState, report: DistReport) -> None:
        """Regenerate every stage of one model from ``models/`` (full scan)."""
        report.models += 1
        for stage in self.stages:
            self._sync_stage(state, stage, full=True, report=report)
            if self._members(state, stage):
                report.stages += 1

    def remove_orphans(self, model_names: Iterable[str], report: DistReport) -> None:
        """Remove dist folders of unknown stages and of models that no longer exist."""
        for path, _problem in self._orphans(set(model_names)):
            remove_tree(path)
            report.removed.append(str(path))

    def _orphans(self, names: set[str]) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        dist = self.layout.dist
        if not dist.is_dir():
            return out
        for entry in sorted(os.listdir(dist)):
            path = dist / entry
            if entry not in self.stages:
                out.append((path, f"{entry!r} is not a configured stage"))
                continue
            if os.path.islink(path) or not path.is_dir():
                out.append((path, "not a stage folder"))
                continue
            self._walk_stage(path, "", names, out)
        return out

    def _walk_stage(
        self, directory: Path, prefix: str, names: set[str], out: list[tuple[Path, str]]
    ) -> None:
        for entry in sorted(os.listdir(directory)):
            path = directory / entry
            name = f"{prefix}/{entry}" if prefix else entry
            if os.path.islink(path) or not path.is_dir() or not SEGMENT_RE.match(entry):
                out.append((path, "unexpected entry in dist/"))
                continue
            if name in names:
                continue
            if any(n.startswith(name + "/") for n in names):
                self._walk_stage(path, name, names, out)
            else:
                out.append((path, f"no model named {name!r} in models/"))

    # -- verify --------------------------------------------------------
    def verify_model(self, state: ModelState, report: VerifyReport) -> None:
        """Compare the served tree of one model with what ``models/`` says it must be."""
        for stage in self.stages:
            mdir = self.layout.dist_model(stage, state.name)

            def problem(path: Path | str, text: str, version: int | None = None) -> None:
                report.problems.append(
                    VerifyProblem(
                        state.name,
                        format_version(version) if version else None,
                        str(path),
                        f"dist drift: {text}",
                    )
                )

            members = self._members(state, stage)
            if not members:
                if os.path.lexists(mdir):
                    problem(mdir, f"stale folder: the model has no version in {stage!r}")
                continue
            if not mdir.is_dir():
                problem(mdir, "missing (run: regctl dist rebuild)")
                continue
            try:
                expected = self._expected(state, stage)
            except IntegrityError:
                continue  # the models/ check reports the broken version itself
            latest = state.latest.get(stage)
            by_version = {e.version: e for e in expected}
            if latest not in by_version:
                latest = None
            report.checked += 1
            want = index_bytes(state.name, stage, latest, expected)
            have = _read(mdir / "index.json")
            if have is None:
                problem(mdir / "index.json", "missing")
            elif have != want:
                problem(mdir / "index.json", self._index_difference(have, want))
            for fname, data in (
                ("LATEST", f"{format_version(latest)}\n".encode() if latest else None),
                (
                    "LATEST.json",
                    latest_bytes(state.name, stage, by_version[latest]) if latest else None,
                ),
            ):
                report.checked += 1
                have = _read(mdir / fname)
                if data is None and have is not None:
                    problem(mdir / fname, f"should not exist: {stage!r} has no LATEST")
                elif data is not None and have is None:
                    problem(mdir / fname, "missing")
                elif data != have:
                    problem(mdir / fname, "does not match the model state")
            for entry in sorted(os.listdir(mdir)):
                if entry not in ("LATEST", "LATEST.json", "index.json", "versions"):
                    problem(mdir / entry, "unexpected entry")
            self._verify_versions(state, mdir, set(members), report, problem)

    @staticmethod
    def _index_difference(have: bytes, want: bytes) -> str:
        try:
            hdoc = json.loads(have)
            wdoc = json.loads(want)
        except ValueError:
            return "not valid JSON"
        if not isinstance(hdoc, dict):
            return "not a JSON object"
        for key in ("format_version", "kind", "name", "stage", "latest"):
            if hdoc.get(key) != wdoc.get(key):
                return f"{key} is {hdoc.get(key)!r}, expected {wdoc.get(key)!r}"
        hv = {e.get("version"): e for e in hdoc.get("versions") or [] if isinstance(e, dict)}
        wv = {e["version"]: e for e in wdoc["versions"]}
        for v in sorted(set(hv) | set(wv), key=str):
            if v not in hv:
                return f"{v} is missing"
            if v not in wv:
                return f"lists {v}, which is not in this stage"
            if hv[v] != wv[v]:
                diff = [k for k in wv[v] if hv[v].get(k) != wv[v][k]]
                return f"{v}: {', '.join(diff) or 'entry'} differs"
        return "differs from the model state"

    def _verify_versions(
        self, state: ModelState, mdir: Path, members: set[int], report: VerifyReport, problem: Any
    ) -> None:
        versions_dir = mdir / "versions"
        present = set(os.listdir(versions_dir)) if versions_dir.is_dir() else set()
        for name in sorted(present):
            try:
                number = parse_version(name)
            except BadInput:
                number = None
            if number is None or number not in members or name != f"v{number}":
                problem(versions_dir / name, "not a version of this stage")
        for v in sorted(members):
            vdir = versions_dir / format_version(v)
            if os.path.islink(vdir) or not vdir.is_dir():
                problem(vdir, "version folder is missing", v)
                continue
            src = self.layout.version_dir(state.name, v)
            try:
                wanted = _expected_files(src)
            except (OSError, ValueError):
                continue  # reported by the models/ check
            for rel in wanted:
                report.checked += 1
                if not self._file_matches(src / rel, vdir / rel):
                    problem(vdir / rel, "missing or differs from models/", v)
            wanted_set = set(wanted)
            for dirpath, dirnames, filenames in os.walk(vdir):
                for fname in filenames + [
                    d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
                ]:
                    full = os.path.join(dirpath, fname)
                    rel = os.path.relpath(full, vdir).replace(os.sep, "/")
                    if rel not in wanted_set:
                        problem(full, "unexpected file", v)

    def verify_orphans(self, model_names: Iterable[str], report: VerifyReport) -> None:
        for path, text in self._orphans(set(model_names)):
            report.problems.append(VerifyProblem(None, None, str(path), f"dist drift: {text}"))
