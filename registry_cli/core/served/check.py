"""Drift between ``dist/`` and ``models/``, for ``regctl verify`` (see docs/layout.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from registry_cli.core.names import format_version
from registry_cli.core.served.bundle_files import version_stream
from registry_cli.core.served.tree import MODEL_FILES, ServedTree, is_version_name
from registry_cli.core.state import ModelState
from registry_cli.core.types import VerifyProblem, VerifyReport
from registry_cli.errors import IntegrityError
from registry_cli.storage import layout
from registry_cli.storage.store import Missing

Problem = Callable[[str, str, "int | None"], None]


def verify_model(tree: ServedTree, state: ModelState, report: VerifyReport) -> None:
    """Compare the served tree of one model with what ``models/`` says it must be."""
    store = tree.store
    for stage in tree.stages:
        mkey = layout.dist_key(stage, state.name)

        def problem(key: str, text: str, version: int | None = None) -> None:
            report.problems.append(
                VerifyProblem(
                    state.name,
                    format_version(version) if version else None,
                    tree.where(key),
                    f"dist drift: {text}",
                )
            )

        members = tree.members(state, stage)
        if not members:
            if store.kind(mkey) is not None:
                problem(mkey, f"stale folder: the model has no version in {stage!r}")
            continue
        if store.kind(mkey) != "dir":
            problem(mkey, "missing (run: regctl dist rebuild)")
            continue
        try:
            expected = tree.expected(state, stage)
        except IntegrityError:
            continue  # the models/ check reports the broken version itself
        for fname, want in tree.stage_documents(state, stage, expected).items():
            report.checked += 1
            try:
                have: bytes | None = store.read(f"{mkey}/{fname}")
            except Missing:
                have = None
            if want is None and have is not None:
                problem(f"{mkey}/{fname}", f"should not exist: {stage!r} has no LATEST")
            elif want is not None and have is None:
                problem(f"{mkey}/{fname}", "missing")
            elif want != have and want is not None and have is not None:
                text = (
                    index_difference(have, want)
                    if fname == "index.json"
                    else "does not match the model state"
                )
                problem(f"{mkey}/{fname}", text)
        for entry in store.children(mkey):
            if entry not in MODEL_FILES:
                problem(f"{mkey}/{entry}", "unexpected entry")
        _verify_versions(tree, state, mkey, set(members), report, problem)


def index_difference(have: bytes, want: bytes) -> str:
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
    tree: ServedTree,
    state: ModelState,
    mkey: str,
    members: set[int],
    report: VerifyReport,
    problem: Problem,
) -> None:
    store = tree.store
    versions = f"{mkey}/versions"
    for name in store.children(versions):
        if not is_version_name(name, members):
            problem(f"{versions}/{name}", "not a version of this stage", None)
    for v in sorted(members):
        vkey = f"{versions}/{format_version(v)}"
        if store.kind(vkey) != "dir":
            problem(vkey, "version folder is missing", v)
            continue
        src = layout.version_key(state.name, v)
        try:
            wanted = tree.expected_files(state.name, v)
        except (OSError, ValueError):
            continue  # reported by the models/ check
        for rel in wanted:
            report.checked += 1
            if not store.same_content(f"{src}/{rel}", f"{vkey}/{rel}"):
                problem(f"{vkey}/{rel}", "missing or differs from models/", v)
        wanted_set = set(wanted)
        if "bundle.tar.gz" not in wanted_set:
            wanted_set.add("bundle.tar.gz")
            _verify_virtual_bundle(tree, state.name, v, vkey, report, problem)
        for rel in store.walk_files(vkey):
            if rel not in wanted_set:
                problem(f"{vkey}/{rel}", "unexpected file", v)


def _verify_virtual_bundle(
    tree: ServedTree, name: str, v: int, vkey: str, report: VerifyReport, problem: Problem
) -> None:
    """A bundle assembled when read: its layout must give the recorded size, and a
    file written out by ``dist rebuild --bundles`` must hold the recorded bytes."""
    report.checked += 1
    bundle = tree.version_facts(name, v)["bundle"]
    try:
        version_stream(tree.store, name, v)  # checks the size the layout gives
    except IntegrityError as exc:
        problem(f"{vkey}/bundle.tar.gz", str(exc), v)
        return
    if tree.store.kind(f"{vkey}/bundle.tar.gz") == "file":
        size, digest = tree.store.hash(f"{vkey}/bundle.tar.gz")
        if (size, digest) != (bundle.get("size"), bundle.get("sha256")):
            problem(f"{vkey}/bundle.tar.gz", "written-out bundle differs from the recorded one", v)


def verify_orphans(tree: ServedTree, model_names: Iterable[str], report: VerifyReport) -> None:
    for key, text in tree.orphans(set(model_names)):
        report.problems.append(VerifyProblem(None, None, tree.where(key), f"dist drift: {text}"))
