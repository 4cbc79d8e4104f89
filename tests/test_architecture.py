"""The folder listing is the architecture: layers point down, and no import cycle hides
behind a lazy import. Every ``import`` of a registry_cli module counts, wherever it
stands (module top or inside a function); only ``if TYPE_CHECKING:`` imports, which
never run, are left out."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "registry_cli"

# Lower number = lower layer. A module may import its own layer's package or any lower one.
LAYERS = {
    "errors": 0,
    "error_codes": 0,
    "version": 0,
    "storage": 1,
    "net": 1,
    "settings": 1,
    "serving": 1,
    "core": 2,
    "pull": 3,
    "ftp": 3,
    "formats": 3,
    "predict": 3,
    "server": 3,
    "remote": 3,
    "importers": 3,
    "webui": 3,
    "client": 4,
    "doctor": 4,
    "cli": 5,
    "__init__": 6,
    "__main__": 6,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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
    # the package root lazily exposes ModelRegistry; submodules import errors from it
    cycles = [c for c in cycles if c != ["registry_cli", "registry_cli.errors"]]
    assert not cycles, f"import cycles: {cycles}"


def test_modules_stay_small_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > 400 and "Longer than 400 lines because" not in "\n".join(lines[:30]):
            long.append(f"{path.relative_to(PACKAGE.parent)}: {len(lines)} lines")
    assert not long, "modules over 400 lines without a reason at the top:\n" + "\n".join(long)
