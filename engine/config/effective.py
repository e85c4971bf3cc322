"""The effective config: every key of the table with the value a run uses, defaults marked.

``backtest validate-config`` prints it. It is YAML: read back, it gives the same config.
A line fits in ``LINE_WIDTH`` columns: a long list or mapping continues on the next lines,
indented under its key (YAML's flow style allows it).
Values the file gave are shown as written; every other key shows its default, with a
``# default`` comment, and each strategy lists every parameter (its class default where
the config gives none) under the import path it resolved to.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..strategies import get_strategy
from .model import Config
from .schema import ALIASES, KEYS, REQUIRED, SECTIONS, Key

_WIDTH = 48  # the column where comments start
LINE_WIDTH = 120


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False)
    return text.removesuffix("\n...\n").rstrip("\n")


def _line(indent: int, name: str, value: Any, comment: str = "") -> str:
    head = f"{'  ' * indent}{name}: "
    text = head + _flow(value)
    if len(text) > LINE_WIDTH and isinstance(value, (list, tuple, dict)):
        text = _wrapped(head, value, "  " * (indent + 1))
    if not comment:
        return text
    last = text.rpartition("\n")[2]
    return f"{text}{' ' * max(0, _WIDTH - len(last))} # {comment}"


def _wrapped(head: str, value: Any, indent: str) -> str:
    """``head`` and ``value`` in flow style over lines of at most LINE_WIDTH columns where the items
    allow it, continuations at ``indent`` (deeper than the key, as YAML needs)."""
    lines: list[str] = []
    for width in range(LINE_WIDTH - len(head), 19, -8):  # PyYAML breaks a line once it is past width
        text = yaml.safe_dump(value, default_flow_style=True, width=width, allow_unicode=True, sort_keys=False)
        first, *rest = text.removesuffix("\n...\n").rstrip("\n").split("\n")
        lines = [head + first] + [indent + r.strip() for r in rest]
        if max(map(len, lines)) <= LINE_WIDTH:
            break
    return "\n".join(lines)


def _given(raw: dict, key: Key) -> tuple[bool, Any]:
    sec: Any = raw
    for part in key.section.split(".") if key.section else ():
        sec = sec.get(part) if isinstance(sec, dict) else None
    if not isinstance(sec, dict):
        return False, None
    for name in [key.name] + [a.rpartition(".")[2] for a, k in ALIASES.items() if k == key.path]:
        if name in sec:
            return True, sec[name]
    return False, None


def effective_config(cfg: Config) -> str:
    """The effective config as YAML text (see the module docstring)."""
    lines: list[str] = []
    for section in SECTIONS:
        path = section.path
        depth = path.count(".")
        parent_on = depth == 0 or _section_on(cfg, path.rpartition(".")[0])
        if not parent_on:
            continue
        name = path.rpartition(".")[2]
        if path == "strategies":
            lines += _strategies(cfg)
            continue
        if not _section_on(cfg, path):
            lines.append(_line(depth, name, None, f"default: no {name.replace('_', '-')}"))
            continue
        lines.append(f"{'  ' * depth}{name}:")
        for key in KEYS:
            if key.section != path:
                continue
            given, value = _given(cfg.raw, key)
            if given:
                lines.append(_line(depth + 1, key.name, value))
            else:
                default = None if key.default is REQUIRED else key.default
                why = f": {key.off}" if default is None and key.off else ""  # what null means here
                lines.append(_line(depth + 1, key.name, default, f"default{why}"))
    return "\n".join(lines) + "\n"


def _section_on(cfg: Config, path: str) -> bool:
    if path == "validation":
        return cfg.validation is not None
    if path == "validation.walk_forward":
        return cfg.validation is not None and cfg.validation.walk_forward is not None
    if path == "validation.cscv":
        return cfg.validation is not None and cfg.validation.cscv is not None
    if path == "perp":
        return cfg.perp is not None
    return True


def _strategies(cfg: Config) -> list[str]:
    lines = ["strategies:"]
    for grid in cfg.strategies:
        cls = get_strategy(grid.path)
        given = dict(grid.values)
        raw = cfg.raw.get("strategies", {}).get(grid.name) or {}
        head = f"  {_flow(grid.name)}:"
        lines.append(head if grid.path == grid.name else f"{head.ljust(_WIDTH)} # {grid.path}")
        for pname, (_, default) in cls.param_specs().items():
            if pname in given:
                lines.append(_line(2, pname, raw.get(pname, list(given[pname]))))
            else:
                lines.append(_line(2, pname, default, "default"))
    return lines
