"""The project's import graph, read from the source with ast: the layering DESIGN.md draws.

Every import counts, also those under `if TYPE_CHECKING:` (a cycle of types is a
cycle of design) and those inside functions. Checked:
  * no import cycle among the project's modules;
  * the engine never imports the builder, the distribution client, the API or the
    daemon's configuration: those stand on the engine, not the reverse;
  * neither the builder, the distribution client nor the other front ends (the CRI,
    BuildKit) import the Docker API, and the front ends do not import one another;
  * no import inside a function, unless its line says it is an optional dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dockerd_py", "builder")
OPTIONAL = "# optional dependency"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imported(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> Iterator[str]:
    """The project modules an import statement loads (the named module, not its parents)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                 for a in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges of the project's import graph, and the imports found inside functions."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    in_functions = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source, str(path))
        nested = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import,
                                                                         ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if id(node) in nested and OPTIONAL not in lines[node.lineno - 1]:
                in_functions.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                    f"{lines[node.lineno - 1].strip()}")
            edges[module].update(_imported(module, node, path.name == "__init__.py"))
    return edges, in_functions


EDGES, IMPORTS_IN_FUNCTIONS = _graph()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _violations(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    def within(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    return sorted(f"{m} imports {t}" for m, targets in EDGES.items() if within(m, importer)
                  for t in targets if any(within(t, f) for f in forbidden))


def test_the_graph_is_read() -> None:
    # A guard for the guards: the graph must see the project and its known edges.
    assert len(MODULES) > 100
    assert "dockerd_py.engine.containers.store" in EDGES["dockerd_py.daemon"]
    assert "dockerd_py.engine.images.contract" in EDGES["builder.backend"]


def test_no_import_cycles() -> None:
    assert _cycles(EDGES) == []


def test_cycle_detection_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_engine_imports_nothing_above_it() -> None:
    assert _violations("dockerd_py.engine", ("builder", "dockerd_py.distribution",
                                             "dockerd_py.api", "dockerd_py.config")) == []


@pytest.mark.parametrize("client", ["builder", "dockerd_py.distribution", "dockerd_py.cri",
                                    "dockerd_py.buildkit"])
def test_engine_clients_do_not_import_the_api(client: str) -> None:
    assert _violations(client, ("dockerd_py.api", "dockerd_py.config")) == []


def test_the_front_ends_stand_apart() -> None:
    assert _violations("dockerd_py.cri", ("dockerd_py.buildkit", "builder")) == []
    assert _violations("dockerd_py.buildkit", ("dockerd_py.cri",)) == []


def test_no_imports_inside_functions() -> None:
    assert IMPORTS_IN_FUNCTIONS == []
