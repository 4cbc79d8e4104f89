"""Upkeep: ``verify`` (re-hash everything, check invariants and dist/) and ``gc``
(remove what interrupted writers left). Kept apart from the registry's
everyday operations; :class:`ModelRegistry` delegates to these functions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from registry_cli.core.names import format_version, parse_version, validate_model_name
from registry_cli.core.state import ModelState
from registry_cli.core.types import GcReport, VerifyProblem, VerifyReport
from registry_cli.errors import BadInput, IntegrityError
from registry_cli.storage import locks
from registry_cli.storage.atomic import remove_tree

if TYPE_CHECKING:
    from registry_cli.core.registry import ModelRegistry
    from registry_cli.storage.hashing import Progress


def verify(
    reg: ModelRegistry, name: str | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Re-hash every payload file and bundle; check state against the folders."""
    reg._require_root()
    report = VerifyReport()
    names = [validate_model_name(name)] if name else reg._model_names()
    if name:
        reg._load_state(name)
    for model in names:
        try:
            state = reg._load_state(model)
        except IntegrityError as exc:
            report.problems.append(
                VerifyProblem(model, None, str(reg.layout.model_state(model)), str(exc))
            )
            continue
        for v in state.versions:
            _verify_version(reg, state, v, report, progress)
        _verify_invariants(reg, state, report)
        reg._dist().verify_model(state, report)
    if not name:
        reg._dist().verify_orphans(names, report)
    return report


def _verify_version(
    reg: ModelRegistry, state: ModelState, v: int, report: VerifyReport, progress: Progress | None
) -> None:
    from registry_cli.storage.hashing import hash_file

    vdir = reg.layout.version_dir(state.name, v)
    vname = format_version(v)

    def problem(path: Path | str, text: str) -> None:
        report.problems.append(VerifyProblem(state.name, vname, str(path), text))

    if not vdir.is_dir():
        problem(vdir, "version folder is missing")
        return
    try:
        facts = reg._read_facts(state.name, v)
    except IntegrityError as exc:
        problem(vdir / "manifest.json", str(exc))
        return
    listed = set()
    for f in facts["files"]:
        path = vdir / f["path"]
        listed.add(f["path"])
        report.checked += 1
        try:
            size, digest = hash_file(path, progress)
        except FileNotFoundError:
            problem(path, "file is missing")
            continue
        if size != f["size"]:
            problem(path, f"size {size} != recorded {f['size']}")
        elif digest != f["sha256"]:
            problem(path, f"sha256 {digest} != recorded {f['sha256']}")
    for dirpath, _dirs, fnames in os.walk(vdir / "payload"):
        for fname in fnames:
            rel = os.path.relpath(os.path.join(dirpath, fname), vdir)
            if rel not in listed:
                problem(os.path.join(dirpath, fname), "file is not in the manifest")
    try:
        bundle = reg._read_bundle_facts(state.name, v)
    except IntegrityError as exc:
        problem(vdir / "version.yaml", str(exc))
        return
    report.checked += 1
    try:
        size, digest = hash_file(Path(bundle["path"]), progress)
    except FileNotFoundError:
        problem(bundle["path"], "bundle is missing")
        return
    if size != bundle.get("size") or digest != bundle.get("sha256"):
        problem(bundle["path"], f"bundle sha256 {digest} != recorded {bundle.get('sha256')}")
    with open(vdir / "manifest.json", "rb") as fh:
        mjson = json.load(fh)
    if mjson.get("version") != vname or mjson.get("name") != state.name:
        problem(vdir / "manifest.json", "manifest names another model or version")


def _verify_invariants(reg: ModelRegistry, state: ModelState, report: VerifyReport) -> None:
    where = str(reg.layout.model_state(state.name))

    def problem(text: str) -> None:
        report.problems.append(VerifyProblem(state.name, None, where, text))

    for alias, v in state.all_aliases().items():
        if v not in state.versions:
            problem(f"alias {alias!r} points at missing v{v}")
        elif v in state.archived:
            problem(f"alias {alias!r} points at archived v{v}")
    champion = state.aliases.get("champion")
    if champion is not None and not state.in_stage(champion, reg.stages[-1], reg.stages[0]):
        problem(f"champion v{champion} is not in {reg.stages[-1]!r}")
    for stage, latest in state.latest.items():
        if latest is not None and not state.in_stage(latest, stage, reg.stages[0]):
            problem(f"LATEST of {stage!r} is v{latest}, which is not in that stage")
    if state.versions and (state.versions.max() or 0) >= state.next_version:
        problem("next_version is not above every recorded version")


def gc(reg: ModelRegistry) -> GcReport:
    """Remove what interrupted publishes left: staging folders and unrecorded ``vN``."""
    reg._require_root()
    report = GcReport()
    if reg.layout.tmp.is_dir():
        for entry in sorted(reg.layout.tmp.iterdir()):
            if locks.is_held(entry / ".alive"):
                report.kept_in_use.append(str(entry))
                continue
            remove_tree(entry)
            report.removed.append(str(entry))
    for name in reg._model_names():
        model_dir = reg.layout.model_dir(name)
        with reg._locked(name):
            state = reg._load_state(name)
            for entry in sorted(model_dir.iterdir()):
                if not entry.is_dir() or not entry.name.startswith("v"):
                    continue
                try:
                    number = parse_version(entry.name)
                except BadInput:
                    continue
                if number not in state.versions:
                    remove_tree(entry)
                    report.removed.append(str(entry))
                    if number >= state.next_version:  # never hand the number out again
                        state.next_version = number + 1
                        reg._save_state(state)
            # a writer killed between its commit and the dist/ update leaves dist/ behind
            from registry_cli.core.served.tree import DistReport

            repaired = DistReport()
            reg._dist().rebuild_model(state, repaired)
            report.removed.extend(getattr(repaired, "removed", []))
    if report.removed:
        reg._audit("gc", None, None, {"removed": len(report.removed)})
    return report
