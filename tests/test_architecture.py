"""Boundaries of the code: package layering, no import cycles, and ``engine`` knows nothing of its entry points.

The layering is the README's architecture paragraph, as data: every package and module of
``engine`` and every entry point belongs to one unit, each unit to one layer, and an
import may only go down, to a unit of a lower layer (or stay within its own unit). So no
import runs back up from ``engine/`` to an entry point, and no package imports a package
that imports it. Imports are read from the source, function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
PACKAGES = ("engine", "backtest_cli", "batch_jobs", "lambdas", "stacks")

#: Highest first. A unit is a package of ``engine`` (everything under it), a module of ``engine``
#: named here, or an entry point; the other modules at the top of ``engine`` form the foundation
#: unit ``engine``. An import goes to a unit of a lower layer, or stays within its own unit.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("command line", ("backtest_cli",)),
    ("infrastructure", ("stacks",)),
    ("cloud jobs", ("batch_jobs", "lambdas")),
    ("universe run", ("engine.universe_experiment",)),
    ("run", ("engine.experiment", "engine.warmup")),
    ("report", ("engine.report",)),
    ("universe", ("engine.universe",)),
    ("pipeline", ("engine.pipeline",)),
    ("sweep", ("engine.sweep",)),
    ("engines", ("engine.fast", "engine.reference")),
    ("statistics", ("engine.validation",)),
    ("grid", ("engine.grid",)),
    ("config", ("engine.config",)),
    ("strategies", ("engine.strategies",)),
    ("indicators", ("engine.indicators",)),
    ("data", ("engine.data",)),
    ("perp", ("engine.perp",)),
    ("run store", ("engine.run_store",)),
    ("foundation", ("engine",)),
)
#: The foundation: small modules every layer may use (types, units, helpers), importing none above them.
FOUNDATION = ("candles", "child_process", "cpus", "errors", "execution", "filenames", "grid_budget", "jsonio",
              "metrics", "naming", "position_rules", "ranking", "result", "run_id", "signals", "storage_layout", "timeutil", "trade")
LAYER = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
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


def _files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for p in (ROOT / package).rglob("*.py"):
            if "cdk.out" not in p.parts and "node_modules" not in p.parts:
                files[_module_name(p)] = p
    return files


def unit_of(module: str) -> str:
    """The layering unit of a module: its engine package, itself if it is a unit, the foundation
    (``engine``) for the other top-level engine modules, or its top package outside ``engine``."""
    parts = module.split(".")
    if parts[0] != "engine" or len(parts) == 1:
        return parts[0]
    top = ".".join(parts[:2])
    if (ENGINE / parts[1]).is_dir() or top in LAYER:
        return top
    return "engine" if parts[1] in FOUNDATION else top


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = _files()
    return {mod: {m for m in _imports(path) if m in files and m != mod} for mod, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that does not go down the layers, as ``a -> b (layer of a -> layer of b)``."""
    out = []
    for mod, deps in sorted(graph.items()):
        a = unit_of(mod)
        for dep in sorted(deps):
            b = unit_of(dep)
            if a != b and LAYER[b] <= LAYER[a]:  # LAYERS is highest first
                out.append(f"{mod} -> {dep} ({LAYERS[LAYER[a]][0]} -> {LAYERS[LAYER[b]][0]})")
    return out


def test_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layering_check_sees_an_import_going_up():
    graph = {"engine.sweep": {"engine.report.html"}, "engine.report.html": {"engine.metrics"},
             "engine.metrics": set()}
    assert layering_violations(graph) == ["engine.sweep -> engine.report.html (sweep -> report)"]
    assert layering_violations({"engine.fast.runner": {"engine.reference.engine"}}) == [
        "engine.fast.runner -> engine.reference.engine (engines -> engines)"]  # one layer: no imports between


def test_every_module_has_a_place_in_the_layers():
    units = {unit_of(m) for m in _files()}
    assert units - set(LAYER) == set(), "add these to LAYERS (and to the README's architecture paragraph)"


def test_imports_only_go_down_the_layers():
    assert layering_violations(_graph()) == []


def test_no_package_imports_a_package_that_imports_it():
    graph = _graph()
    units: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        units.setdefault(unit_of(mod), set()).update(unit_of(d) for d in deps if unit_of(d) != unit_of(mod))
    assert _cycles(units) == []


def test_engine_has_no_import_cycles_even_through_function_level_imports():
    graph = {m: deps for m, deps in _graph().items() if m.startswith("engine")}
    # a package importing its own submodules (re-exports) is not a cycle of concern
    for mod in graph:
        graph[mod] = {m for m in graph[mod] if not (m.startswith(mod + ".") and (ROOT / mod.replace(".", "/")
                                                                                 / "__init__.py").exists())}
    assert _cycles(graph) == []


def test_engine_knows_nothing_of_entry_points_or_the_environment():
    for path in ENGINE.rglob("*.py"):
        text = path.read_text()
        imported = _imports(path)
        for outside in ("batch_jobs", "backtest_cli", "lambdas", "stacks"):
            assert not any(m == outside or m.startswith(outside + ".") for m in imported), (path, outside)
        assert "os.environ" not in text and "getenv" not in text, path


def test_the_readme_draws_these_layers():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Architecture"):]
    section = section.split("\n## ")[0]
    for name, units in LAYERS:
        assert f"**{name}**" in section, name
        for unit in units:
            if unit == "engine":
                continue
            shown = unit.removeprefix("engine.") + ("/" if (ROOT / unit.replace(".", "/")).is_dir() else "")
            assert f"`{shown}`" in section, (name, unit)
    for module in FOUNDATION:
        assert f"`{module}`" in section, module
