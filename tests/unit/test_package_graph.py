"""The shape of the code: vigil's packages import each other without cycles, modules stay small.

The graph is read from the source with ``ast`` (nothing is imported). Its nodes are vigil's
subpackages (``vigil.pipeline``) and top-level modules (``vigil.config``); an edge means some
module of one imports some module of the other. Every import counts, also those inside
functions or under ``TYPE_CHECKING``: a lazy import still ties two packages together, it only
moves the failure from import time to run time.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "service" / "vigil"
MAX_MODULE_LINES = 600

# One import site: (importing module, line, imported module).
ImportSite = tuple[str, int, str]
Graph = Mapping[str, Mapping[str, list[ImportSite]]]


def _module_name(path: Path) -> tuple[str, bool]:
    """``vigil.pipeline.queues`` for ``.../vigil/pipeline/queues.py``, and whether it is a
    package's ``__init__``."""
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _node(module: str) -> str:
    """The graph node a module belongs to: ``vigil`` plus at most one more part."""
    return ".".join(module.split(".")[:2])


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` (``vigil.x.y``) is a module or package in the source tree."""
    path = PACKAGE_ROOT.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() or path.is_dir()


def _imported_modules(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import of a vigil module in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                # `from vigil import config` imports the module vigil.config;
                # `from vigil import __version__` only the package itself.
                candidate = f"{source}.{alias.name}"
                yield node.lineno, candidate if _is_module(candidate) else source


def package_graph() -> dict[str, dict[str, list[ImportSite]]]:
    """Node → imported node → the import sites behind that edge."""
    graph: dict[str, dict[str, list[ImportSite]]] = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module, is_package = _module_name(path)
        source = _node(module)
        edges = graph.setdefault(source, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, imported in _imported_modules(tree, module, is_package):
            if imported != "vigil" and not imported.startswith("vigil."):
                continue
            target = _node(imported)
            site = (module, line, imported)
            if target != source and site not in edges.get(target, []):
                edges.setdefault(target, []).append(site)
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of nodes that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(group[0], set(group), graph) for group in groups]


def _cycle_through(start: str, group: set[str], graph: Graph) -> list[str]:
    """A shortest path from ``start`` back to itself, inside ``group``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, {})):
                if target == start:
                    return [*paths[node], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def _describe(cycle: list[str], graph: Graph) -> str:
    lines = [" -> ".join(cycle)]
    for source, target in itertools.pairwise(cycle):
        for module, line, imported in graph[source][target][:3]:
            lines.append(f"    {module}:{line} imports {imported}")
    return "\n".join(lines)


def test_find_cycles_when_two_packages_import_each_other() -> None:
    graph = {
        "vigil.a": {"vigil.b": [("vigil.a.x", 1, "vigil.b.y")]},
        "vigil.b": {"vigil.a": [("vigil.b.y", 2, "vigil.a.x")], "vigil.c": []},
        "vigil.c": {},
    }
    assert find_cycles(graph) == [["vigil.a", "vigil.b", "vigil.a"]]


def test_find_cycles_when_the_graph_is_a_dag() -> None:
    graph = {"vigil.a": {"vigil.b": [], "vigil.c": []}, "vigil.b": {"vigil.c": []}}
    assert find_cycles(graph) == []


def test_package_graph_reads_the_imports_of_the_source() -> None:
    graph = package_graph()
    assert {"vigil.config", "vigil.pipeline", "vigil.infer"} <= set(graph)
    assert "vigil.infer" in graph["vigil.pipeline"]  # the pipeline calls Triton


def test_vigil_packages_import_each_other_without_cycles() -> None:
    graph = package_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between vigil's packages:\n" + "\n".join(
        _describe(cycle, graph) for cycle in cycles
    )


def test_no_module_is_over_the_size_limit() -> None:
    too_long = {
        str(path.relative_to(PACKAGE_ROOT.parent)): lines
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, (
        f"modules over {MAX_MODULE_LINES} lines (split them along a seam): {too_long}"
    )
