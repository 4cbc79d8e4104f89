"""The folder listing is the architecture: layers point down, and no import cycle hides
behind a lazy import or a type-only one. Every ``import`` of a registry_cli module
counts, wherever it stands (module top, inside a function, or under
``if TYPE_CHECKING:``: a reader depends on it all the same).

The contracts themselves are import-linter's (``[tool.importlinter]`` in pyproject.toml,
described in docs/architecture.md); :func:`test_import_linter_contracts_hold` runs
``lint-imports`` so that a new cycle or an upward import fails the suite. The checks
below are this file's own second opinion, with no dependency but ``ast``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "registry_cli"

# Lower number = lower layer. A module may import its own layer's package or any lower one.
# (The same order as the import-linter `layers` contract, coarser: siblings share a number.)
LAYERS = {
    "errors": 0,
    "version": 0,
    "error_codes": 1,
    "settings": 1,
    "serving": 1,
    "storage": 2,
    "net": 2,
    "core": 3,
    "formats": 4,
    "ftp": 4,
    "predict": 4,
    "pull": 4,
    "remote": 4,
    "oci": 4,  # below pull/remote in the import-linter contract, above core
    "importers": 5,
    "urlpaths": 6,
    "server": 7,
    "webui": 7,
    "client": 8,
    "doctor": 8,
    "httpapp": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("registry_cli"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if not base.startswith("registry_cli"):
                continue
            for alias in node.names:  # `from registry_cli.core import lifecycle` is a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
    return {m for m in found if m != module}


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (
        PACKAGE.parent / rel / "__init__.py"
    ).is_file()


def _graph() -> dict[str, set[str]]:
    return {
        _module_name(p): _imports(p, _module_name(p))
        for p in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: package {top!r} has no layer; add it to LAYERS"
    return LAYERS[top]


def test_layers_point_down():
    wrong = []
    for module, imports in _graph().items():
        if module == "registry_cli":
            continue  # the package's lazy public names (ModelRegistry, RemoteRegistry)
        for target in imports:
            if target == "registry_cli":
                continue  # the package root re-exports errors and the version
            if _layer(target) > _layer(module):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up a layer:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_over_400_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        count = len(path.read_text().splitlines())
        if count > 400:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {count} lines")
    assert not long, "modules over 400 lines (split them):\n" + "\n".join(long)


def test_import_linter_contracts_hold():
    """``lint-imports`` (the venv's, next to this Python) keeps every contract."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.is_file(), f"{lint_imports} missing: pip install import-linter (dev)"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"lint-imports failed:\n{report}"
    assert "0 broken" in report, report
