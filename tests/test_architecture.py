"""The import map: one package, layers that only look down, no import cycle.

    core (regbatch/*.py, regbatch/platform)  <-  db  <-  services  <-  runner  <-  tasks  <-  flows
                                      <-  sandbox (a platform of its own, on the core only)
    interfaces (api/: CLI, REST, Python API) sit above everything; deployments above flows.

Flows reach side effects only through tasks and the runner's ledger: never services/ or db/.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("flows", "tasks", "db", "services", "api", "sandbox", "deployments", "runner")

# The layers each part may import from (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "db": {"core"},
    "sandbox": {"core"},
    "services": {"core", "db"},
    "runner": {"core", "db", "services"},
    "tasks": {"core", "db", "services", "runner"},
    "flows": {"core", "runner", "tasks"},
    "deployments": {"core", "flows"},
    "api": {"core", "db", "services", "runner", "tasks", "flows", "deployments", "sandbox"},
}


def _modules() -> Iterator[tuple[str, Path]]:
    """(module name, file) of every module of the package, through its source folders."""
    for base, _dirs, files in os.walk(ROOT / "regbatch", followlinks=True):
        for file in sorted(f for f in files if f.endswith(".py")):
            path = Path(base) / file
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _part(module: str) -> str:
    pieces = module.split(".")
    if len(pieces) > 1 and pieces[1] in FOLDERS:
        return pieces[1]
    return "core"


def _imports(path: Path, top_level_only: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) of a file; with `top_level_only`, not those inside functions."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:  # `from regbatch.db import steps` imports regbatch.db.steps
                yield f"{node.module}.{alias.name}", node.lineno


def test_the_map_sees_every_part() -> None:
    parts = {_part(module) for module, _ in _modules()}
    assert parts == {"core", *FOLDERS}
    assert sum(1 for _ in _modules()) > 100


def test_only_regbatch_is_imported_never_the_folders_by_their_own_names() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for _, path in _modules()
        for name, line in _imports(path, top_level_only=False)
        if name.split(".")[0] in FOLDERS
    ]
    assert wrong == []


def test_no_layer_imports_a_layer_above_it() -> None:
    wrong = []
    for module, path in _modules():
        if module == "regbatch":  # the package's facade: the Python API, loaded on first use
            continue
        part = _part(module)
        for name, line in _imports(path, top_level_only=False):
            if not name.startswith("regbatch.") or name == "regbatch.lease":
                continue
            target = _part(name)
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {part} imports {target} ({name})")
    assert wrong == []


def test_no_import_cycle_between_modules() -> None:
    known = {module for module, _ in _modules()}
    graph = {module: _dependencies(path, known) - {module} for module, path in _modules()}
    cycles = _cycles(graph)
    assert cycles == [], cycles


def _dependencies(path: Path, known: set[str]) -> set[str]:
    """The package's modules a file imports when it is loaded (module level only).

    `from package import submodule` depends on the submodule, not on the package's body.
    """
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_is_regbatch_alone() -> None:
    """pyproject installs one top-level package; each folder is in it through its link."""
    for folder in FOLDERS:
        link = ROOT / "regbatch" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), folder
    text = (ROOT / "pyproject.toml").read_text()
    assert 'include = ["regbatch", "regbatch.*"]' in text


def test_the_python_api_is_named_once_for_import_regbatch() -> None:
    """`regbatch.__all__` (loaded lazily) lists exactly the Python API's functions."""
    import regbatch
    from regbatch.api import python

    assert sorted(regbatch.__all__) == sorted(python.__all__)
    for name in regbatch.__all__:
        assert getattr(regbatch, name) is getattr(python, name), name
