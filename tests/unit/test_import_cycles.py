"""No import circle in the package (issue 20): every module imports on its own in a fresh interpreter, and the graph
of module-level imports, read from the source, has no cycle.

An import circle shows only when a module of it is the first one imported ("cannot import name ... from partially
initialized module"), so each module gets an interpreter of its own; the static check names a circle even where the
order of imports happens to hide it today.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import consentflow

ROOT = Path(consentflow.__file__).resolve().parent
# Seconds one module may take to import on a loaded machine: faust and chDB are slow to load, never this slow.
IMPORT_TIMEOUT = 120.0


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package (streams/ and sinks/ through their links), by dotted name; ``__main__`` modules
    are left out (importing one runs its program)."""
    modules: dict[str, Path] = {}
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        here = Path(directory)
        package = ["consentflow", *here.relative_to(root).parts]
        for name in sorted(files):
            if not name.endswith(".py") or name == "__main__.py":
                continue
            dotted = package if name == "__init__.py" else [*package, name[:-3]]
            modules[".".join(dotted)] = here / name
    return modules


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements at the module's top level and in its top-level ``if``/``try`` blocks, not in functions
    or classes. ``if TYPE_CHECKING:`` counts too: a circle only the type checker walks still ties the modules."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(handler.body for handler in node.handlers)):
                yield from _module_level(block)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules its module-level imports load: the one named, and the packages above it
    (their ``__init__`` runs first) except the importer's own, which are loaded before it unless it names them."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own_package = name if is_package else name.rpartition(".")[0]
        for node in _module_level(ast.parse(path.read_text(encoding="utf-8")).body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parent = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                while target and target not in modules:  # an attribute of a module, or outside the package
                    target = target.rpartition(".")[0]
                ancestors = name.split(".")
                own = {".".join(ancestors[:i]) for i in range(1, len(ancestors) + (1 if is_package else 0))}
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    loaded = ".".join(parts[:i])
                    # The importer's own packages are loaded before it, unless it names one itself.
                    if loaded in modules and loaded != name and (loaded == target or loaded not in own):
                        graph[name].add(loaded)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the modules along it, first repeated at the end; None when there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]  # the depth-first walk's way down from start, each with its successors still to see
        stack = [iter(sorted(graph[start]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                done.add(path.pop())
                stack.pop()
            elif following in path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def _import_alone(module: str) -> tuple[str, int, str]:
    """Import ``module`` in a fresh interpreter: its exit status and the last lines of its error output."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return module, -1, f"no answer within {IMPORT_TIMEOUT:.0f} s"
    return module, done.returncode, "\n".join(done.stderr.strip().splitlines()[-3:])


def test_every_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    modules = sorted(package_modules())
    assert "consentflow.cli" in modules and "consentflow.streams.worker" in modules and "consentflow.sinks.tables" in modules
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 1) * 2)) as pool:
        failed = [(module, status, error) for module, status, error in pool.map(_import_alone, modules) if status != 0]
    assert not failed, "\n\n".join(f"import {module} (exit {status}):\n{error}" for module, status, error in failed)


def test_the_module_level_imports_of_the_package_form_no_cycle() -> None:
    graph = import_graph(package_modules())
    assert len(graph["consentflow.streams.worker"]) > 5  # the graph is read: the worker drives much of the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def subpackage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen from above: each module as the subpackage of ``consentflow`` it lies in (a top-level
    module as itself), the package's own ``__init__`` left out (it loads the compiled build's path finder)."""

    def subpackage(module: str) -> str:
        return ".".join(module.split(".")[:2])

    collapsed: dict[str, set[str]] = {}
    for module, imported in graph.items():
        if module == "consentflow":
            continue
        here = collapsed.setdefault(subpackage(module), set())
        here.update(subpackage(other) for other in imported if other != "consentflow" and subpackage(other) != subpackage(module))
    return collapsed


def test_the_subpackages_import_one_another_in_one_direction() -> None:
    """policy, contracts, core, kafka, sinks, streams, cli and http form layers: no two import each other, even
    through others, so the tree reads in the order data flows."""
    graph = subpackage_graph(import_graph(package_modules()))
    assert "consentflow.core" in graph["consentflow.streams"]  # read: the drivers drive the processors
    cycle = find_cycle(graph)
    assert cycle is None, "subpackages in a circle: " + " -> ".join(cycle)


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
