"""Boundaries of the library: no import cycles, and ``engine`` knows nothing of its entry points."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ENGINE.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        graph[mod] = {m for m in _imports(path) if m in files and m != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_engine_has_no_import_cycles_even_through_function_level_imports():
    graph = _graph()
    # a package importing its own submodules (re-exports) is not a cycle of concern
    for mod in graph:
        graph[mod] = {m for m in graph[mod] if not (m.startswith(mod + ".") and (ENGINE.parent / (mod.replace(".", "/")) / "__init__.py").exists())}
    assert _cycles(graph) == []


def test_engine_knows_nothing_of_entry_points_or_the_environment():
    for path in ENGINE.rglob("*.py"):
        text = path.read_text()
        imported = _imports(path)
        for outside in ("batch_jobs", "backtest_cli", "lambdas", "stacks"):
            assert not any(m == outside or m.startswith(outside + ".") for m in imported), (path, outside)
        assert "os.environ" not in text and "getenv" not in text, path
