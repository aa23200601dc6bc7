"""The package layout shows the architecture (``DESIGN.md`` "Layout"), and stays that way.

Importers are grouped by format family; the shared core sits at the top of ``importers/``; no
module of the project imports, directly or through others, a module that imports it back
(function-level imports included: deferring an import hides a circle, it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("importers", "replay")
FAMILIES = ("tracefs", "ftrace", "tracedat", "perf", "perfetto", "host")
CORE = (
    "__init__",
    "arrow_compute",
    "binary_views",
    "byte_loops",
    "capture",
    "capture_writer",
    "decompress",
    "heap",
    "detect",
    "errors",
    "output",
    "parquet_files",
    "ranges",
    "schema",
    "skips",
    "tasks",
)
FAMILY_PREFIXES = ("tracedat_", "perf_data_", "perf_text", "ftrace_")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
    A package's ``__init__`` running before its submodules is not an edge: it is how Python
    loads packages, not a dependency the code chose.
    """
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    if dotted in modules:
                        targets.add(dotted)
                    elif node.module in modules:
                        targets.add(node.module)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def test_no_import_cycle_among_the_projects_modules() -> None:
    assert cycles(import_graph(module_files())) == []


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    # the check above is only worth its green if it can go red
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    (tmp_path / "m.py").write_text("def f():\n    from replay.engine import replay\n")
    name = "replay.__layout_probe__"
    graph = import_graph({**module_files(), name: tmp_path / "m.py"})
    assert "replay.engine" in graph[name]


def test_importers_are_grouped_by_format_family() -> None:
    top = sorted(p.stem for p in (ROOT / "importers").glob("*.py"))
    assert sorted(top) == sorted(CORE), "only the shared core sits at the top of importers/"
    assert not [m for m in top if m.startswith(FAMILY_PREFIXES)]
    for family in FAMILIES:
        init = ROOT / "importers" / family / "__init__.py"
        assert init.is_file(), f"importers/{family}/ is a package"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"importers/{family}/__init__.py says what the family owns"
        inside = [p.stem for p in init.parent.glob("*.py")]
        assert not [m for m in inside if m.startswith(f"{family}_")], "names drop the prefix"


@pytest.mark.parametrize("path", ["reference", "vectorized"])
def test_engine_paths_never_import_the_dispatcher(path: str) -> None:
    graph = import_graph(module_files())
    assert "replay.engine" not in graph[f"replay.paths.{path}"]
    assert "replay.engine" not in graph["replay.work"]


def test_no_module_under_importers_imports_replay() -> None:
    # the importers read captures and host descriptions; the model and the commands build on
    # them, never the other way (DESIGN.md "Layout"): facts both need live in importers/host
    graph = import_graph(module_files())
    upward = {
        name: sorted(t for t in targets if t.split(".")[0] == "replay")
        for name, targets in graph.items()
        if name.split(".")[0] == "importers"
    }
    assert {name: targets for name, targets in upward.items() if targets} == {}
