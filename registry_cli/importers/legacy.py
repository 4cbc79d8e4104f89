"""What the YAML and SQLite registries share: stage names and artifacts on this machine.

Stages ``None``/``Staging``/``Production``/``Archived`` (any case; regctl's own
stage names are accepted too): None and Staging → the first stage, Production
→ the last stage (exactly one Production: it becomes the champion), Archived →
archived. Artifacts: a folder or file on this machine (a path, relative to the
source's folder, or a ``file://`` URL) is copied; any other URL (``s3://``,
``https://``) is reported, never invented.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from registry_cli.errors import BadInput
from registry_cli.importers.source import Fetch, Fetched, SourceModel, chain_promotions

PRODUCTION = "production"
ARCHIVED = "archived"


def stage_of(value: object, stages: tuple[str, ...], where: str) -> str:
    """``none`` | ``staging`` | ``production`` | ``archived`` for an old stage name."""
    text = "none" if value is None else str(value).strip().lower()
    if text in ("none", "", "staging", "production", "archived"):
        return text or "none"
    if text == stages[-1].lower() and len(stages) > 1:
        return PRODUCTION
    if text in (s.lower() for s in stages):
        return "staging"
    raise BadInput(
        f"{where}: unknown stage {value!r}",
        hint="stages are None, Staging, Production or Archived",
    )


def settle(
    model: SourceModel,
    stage_by_label: dict[str, str],
    released: list[str],
    stages: tuple[str, ...],
    where: str,
) -> None:
    """Lifecycle from old stages. ``released``: labels that were ever in Production, in
    the order they last entered it (from the audit trail; may be empty)."""
    production = [label for label, s in stage_by_label.items() if s == PRODUCTION]
    if len(production) > 1:
        raise BadInput(
            f"{where}: model {model.name!r} has {len(production)} Production versions "
            f"({', '.join(production)}); exactly one is allowed"
        )
    for version in model.versions:
        version.archived = stage_by_label.get(version.label) == ARCHIVED
    if len(stages) < 2 or not production:
        return  # no Production now: no champion (earlier releases are not replayed)
    order = [label for label in released if label not in production]
    order += production
    model.promotions[stages[-1]] = order
    chain_promotions(model, stages)


def _files_in(folder: Path) -> list[tuple[Path, str]] | str:
    out: list[tuple[Path, str]] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(top) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file():
                return f"{path} is not a regular file"
            out.append((path, rel))
    return out or f"{folder} is empty"


def local_fetch(location: str | Path, base: Path) -> tuple[Fetch | None, str | None, int | None]:
    """``(fetch, problem, size)`` for an artifact at a path or URL."""
    text = str(location).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive
        return None, f"artifact URL {text} cannot be fetched (only files on this machine)", None
    else:
        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            path = base / path
    if not path.exists():
        return None, f"artifact {path} does not exist", None
    if path.is_dir():
        found = _files_in(path)
    elif path.is_file() and not path.is_symlink():
        found = [(path, path.name)]
    else:
        found = f"{path} is not a regular file or folder"
    if isinstance(found, str):
        return None, found, None
    files = found
    size = sum(p.stat().st_size for p, _r in files)

    def fetch(_folder: Path) -> Fetched:
        return Fetched(files=files, move=False)

    return fetch, None, size
