"""The data package's boundaries (issue 19 item 4): it imports from the rest of ``engine`` only modules
that never import it back, and its small shared modules stay standard-library only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "engine" / "data"
#: What engine/data may import from the rest of engine.
BELOW = {"engine.errors", "engine.timeutil", "engine.candles", "engine.storage_layout", "engine.filenames",
         "engine.perp.synthetic", "engine.perp.series", "engine.perp.funding"}  # perp: the layer below data
STDLIB_ONLY = [DATA / "binance.py", DATA / "spec.py", DATA / "generations.py", ROOT / "engine" / "filenames.py",
               ROOT / "engine" / "storage_layout.py"]


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def _engine_module(name: str) -> str | None:
    """The engine module (file) ``name`` refers to, or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:i])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[:i])
    return None


def test_the_data_package_imports_only_what_never_imports_it():
    outside = {}
    for path in DATA.rglob("*.py"):
        for name in _imports(path):
            mod = _engine_module(name) if name.startswith("engine") else None
            if mod and not mod.startswith("engine.data") and mod not in BELOW:
                outside.setdefault(path.name, set()).add(mod)
    assert outside == {}
    for mod in BELOW:
        path = ROOT / (mod.replace(".", "/") + ".py")
        assert not any(n.startswith("engine.data") for n in _imports(path)), mod


def test_small_shared_modules_use_the_standard_library_only():
    for path in STDLIB_ONLY:
        third_party = {n.split(".")[0] for n in _imports(path)} - set(sys.stdlib_module_names) - {"__future__", ""}
        assert third_party == set(), (path.name, third_party)


def test_no_data_module_is_over_400_lines_without_a_reason():
    for path in [*DATA.glob("*.py"), ROOT / "engine" / "filenames.py"]:
        lines = path.read_text().splitlines()
        assert len(lines) <= 400 or "over 400 lines" in "\n".join(lines[:30]), (path.name, len(lines))
