"""The package's shape: dependencies run one way, from front ends down to foundations.

Every import counts, including those inside functions (they hide cycles otherwise). A module
may import its own layer or any layer below it, never above; and no two modules import each
other, directly or round a loop.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wildspace"

LAYERS = [  # lowest first; a package may use its own layer and the ones before it
    {"types", "errors", "atomic", "settings"},  # foundations
    {"hub", "media"},  # model specs and weights; safe reading of images, videos, archives
    {"formats", "evaluation"},  # result formats; metrics and reports
    {"detect", "classify", "reid"},  # the model families and what runs them
    {"services"},  # detectors, classifiers, galleries with their model caches
    {"train"},  # training libraries
    {"jobs"},  # job store, queue, workers' handlers
    {"runs", "review"},  # what front ends call: batches, videos, evaluations, reviews
    {"cli", "ui"},  # front ends
    {"__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("wildspace"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wildspace"))
    return {m for m in found if m in modules}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_every_package_has_a_layer():
    assert {_top(m) for m in _modules()} - {"__init__"} <= set(LAYER)


def test_imports_only_go_down_or_sideways():
    wrong = []
    for module, targets in _graph().items():
        if _top(module) == "__init__":
            continue
        for target in targets:
            if _top(target) != "__init__" and LAYER[_top(target)] > LAYER[_top(module)]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_packages_do_not_import_each_other_round_a_loop():
    deps: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _top(module) != _top(target):
                deps[_top(module)].add(_top(target))
    loops = [(a, b) for a in deps for b in deps[a] if a in deps.get(b, set())]
    assert loops == []


def test_below_the_front_ends_nothing_reads_the_environment():
    readers = []
    for module, path in _modules().items():
        if _top(module) in ("cli", "ui", "__main__", "settings"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("os.environ.get(", "os.getenv(", "os.environ["):
            if needle in text:
                readers.append(f"{module}: {needle}")
    assert readers == []
