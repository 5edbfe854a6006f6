"""The package's import structure, read from the source with ``ast`` (nothing is imported):
task knowledge stays in ``spacy_evokd/tasks/`` and is looked up by name only at the edges, and
no two modules import each other, directly or round a circle. Imports inside functions count:
they close a circle at run time as surely as module-level ones do."""

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parent.parent / "spacy_evokd"
TASKS = "spacy_evokd.tasks"

# The modules that may import the task registry (spacy_evokd.tasks): the places where a task's
# *name* comes in from outside and is turned into a Task object. Everything below them takes a
# Task (ty.Task) and never looks a name up, so a task module can import it without a circle.
#   cli            a --task option
#   config         [evokd] task in a config (validated, and resolved for the loop and `estimate`)
#   init_project   `init --task`
#   registrations  a teacher built from [evokd.teacher] task = "..."
#   report, review a run directory read back from disk: its config and records name the task
#   student        task_of(nlp): which registered task a trained pipeline is a student of
EDGES = {"cli", "config", "init_project", "registrations", "report", "review", "student"}


def _modules() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: Dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _imports(name: str, modules: Dict[str, Path]) -> Set[str]:
    """The package's modules that ``name`` imports anywhere in its file (module level, inside
    functions, under ``if``), relative or absolute. ``from X import y`` imports module X.y when
    there is one, else X (y is a name in X)."""
    tree = ast.parse(modules[name].read_text(encoding="utf8"), filename=str(modules[name]))
    # the package a relative import is relative to: a package's own name, else its parent
    here = name.split(".") if _is_package(name, modules) else name.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            targets = []
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                targets.append(sub if sub in modules else base_name)
        else:
            continue
        for target in targets:
            # `import spacy_evokd.a.b` binds and runs the longest prefix that is a module of ours
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(name)
    return found


def _graph() -> Dict[str, Set[str]]:
    """Module -> the modules importing it runs. Importing ``a.b.c`` also runs the packages
    ``a.b`` and ``a`` (their __init__), so those are edges too, except a module's own enclosing
    packages: Python has run them before the module, and a package's __init__ that imports its
    own submodules (tasks/__init__ loading a task module on lookup) would otherwise read as a
    circle that no import order can trip over. An explicit ``from . import x`` / ``from ..tasks
    import y`` of a module's own package is an edge like any other, and counts."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name in modules:
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges = set()
        for target in _imports(name, modules):
            edges.add(target)
            parts = target.split(".")
            edges.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p not in own_packages)
        graph[name] = edges
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): each is
    a set of modules that import one another round a circle."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_relative_absolute_and_function_level_imports():
    """The reader finds what the two assertions below rely on (a reader that found nothing
    would pass them)."""
    graph = _graph()
    assert "spacy_evokd.ty" in graph["spacy_evokd.data"]  # `from .ty import ...` at module level
    assert "spacy_evokd.teachers.llm" in graph["spacy_evokd.registrations"]  # inside a function
    assert "spacy_evokd.teachers" in graph["spacy_evokd.registrations"]  # the package it runs
    assert "spacy_evokd.ty" in graph[TASKS]
    assert "spacy_evokd.tasks" not in graph["spacy_evokd.tasks.textcat"]  # its own package: not an edge
    assert all(v in graph for targets in graph.values() for v in targets)
    assert all(f"spacy_evokd.{edge}" in graph for edge in EDGES)  # no edge is a typo
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_edges_look_tasks_up_by_name():
    graph = _graph()
    in_tasks = lambda name: name == TASKS or name.startswith(TASKS + ".")  # noqa: E731
    importers = sorted(
        name
        for name, targets in graph.items()
        if not in_tasks(name) and name.partition(".")[2] not in EDGES and any(map(in_tasks, targets))
    )
    assert importers == [], f"these modules import {TASKS} but are not edges (take a Task instead): {importers}"


def test_the_modules_import_one_another_in_no_circle():
    graph = _graph()
    # the registry loads a task module with an import statement (not importlib by name), so a
    # circle through a task module is one this reader sees
    assert {f"{TASKS}.textcat", f"{TASKS}.ner", f"{TASKS}.textcat_multilabel"} <= graph[TASKS]
    cycles = _cycles(graph)
    assert cycles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)
