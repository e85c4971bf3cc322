"""A YAML document checked against the key table (``engine.config.schema``) into a :class:`Config`.

Order: unknown sections and keys; every single value (table order); the checks that
join keys (a time range, walk-forward's step against its test, a rank metric that
needs validation); the grid's size, counted from its axes before anything is built
(``limits.max_combinations``); then the axes' values and the strategies. The grid
itself is expanded by the config's caller (``engine.grid.build_grid``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UserError
from ..errors import shown as _show
from ..execution import Execution
from ..grid_budget import estimate_bytes, human_bytes
from ..metrics import SHARPE_TESTS
from ..position_rules import RULE_COLUMNS
from ..strategies import Strategy, did_you_mean, get_strategy, strategy_path
from ..strategies.base import coerce_param
from ..timeutil import check_range, parse_time
from . import checks, universe_checks
from ..data.spec import DataSpec
from ..perp.brackets import brackets_for, parse_brackets
from ..perp.config import PerpConfig
from .model import (Config, CscvConfig, LimitsConfig, ReportConfig, StrategyGrid, ValidationConfig,
                    WalkForwardConfig)
from .read import decode_config, read_config_bytes
from .safe_yaml import load_yaml
from .schema import (ALIASES, BY_PATH, KEYS, REQUIRED, RUNS_ALL_MAX, SECTION_BY_PATH, SECTIONS, Key, names_of)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent.parent / "configs" / "default.yaml"
_STRATEGY_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_TOP = tuple(s.path for s in SECTIONS if "." not in s.path)


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, parse and check the config file at ``path``; ``overrides`` (``{"data.symbol": "ETHUSDT"}``)
    replace keys before the check, so the config as run (and its hash) includes them."""
    return parse_config_text(decode_config(read_config_bytes(path), path), str(path), overrides)


def parse_config_text(text: str, source: str = "config", overrides: Mapping[str, Any] | None = None) -> Config:
    doc = load_yaml(text, source)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(doc).__name__}")
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not isinstance(doc.get(section) or {}, dict):
            raise ConfigError(f"{section}: expected a mapping, got {_show(doc[section])}")
        doc[section] = {**(doc.get(section) or {}), name: value}
    return parse_config(doc)


class _Document:
    """The document's sections, checked for unknown keys as they are first read."""

    def __init__(self, doc: dict):
        unknown = sorted(set(doc) - set(_TOP), key=str)
        if unknown:
            raise ConfigError(f"{checks.key_text(unknown[0])}: unknown section; expected one of {', '.join(_TOP)}")
        self.doc = doc
        self._sections: dict[str, dict | None] = {}

    def section(self, path: str) -> dict | None:
        """The mapping at ``path``: {} when absent or null, None when an optional section is off."""
        if path not in self._sections:
            self._sections[path] = self._read(path)
        return self._sections[path]

    def _read(self, path: str) -> dict | None:
        parent, _, name = path.rpartition(".")
        holder = self.section(parent) if parent else self.doc
        spec = SECTION_BY_PATH[path]
        raw = None if holder is None else holder.get(name)
        if raw is None:
            return None if spec.optional else {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_show(raw)}")
        if path != "strategies":
            allowed = names_of(path)
            unknown = sorted(set(raw) - allowed, key=str)
            if unknown:
                raise ConfigError(f"{path}.{checks.key_text(unknown[0])}: unknown key; expected one of "
                                  f"{', '.join(sorted(allowed))}{did_you_mean(str(unknown[0]), allowed)}")
        return raw

    def raw(self, key: Key) -> tuple[bool, Any]:
        """(present, value): whether the document gives ``key`` (or its alias), and the value it gives."""
        sec = self.section(key.section) if key.section else self.doc
        if sec is None:
            return False, None
        names = [key.name] + [a.rpartition(".")[2] for a, k in ALIASES.items() if k == key.path]
        given = [n for n in names if n in sec]
        if len(given) > 1 and len({repr(sec[n]) for n in given}) > 1:
            raise ConfigError(f"{key.section}: give {key.path} or " + ", ".join(f"{key.section}.{n}" for n in
                                                                                 given[1:]) + ", not both")
        return bool(given), (sec[given[0]] if given else None)


def check_value(key: Key, value: Any) -> Any:
    """One value (not an axis) checked against its row of the table."""
    t, p = key.type, key.path
    if t in ("int", "float"):
        v = checks.number(p, value, low=key.low, high=key.high, low_open=key.low_open, high_open=key.high_open,
                          integer=t == "int")
        if key.even and v % 2:
            raise ConfigError(f"{p}: {v} is odd; expected an even number from {key.low} to {key.high} ({key.doc})")
        return v
    if t == "bool":
        return checks.boolean(p, value)
    if t == "str":
        return checks.string(p, value)
    if t == "choice":
        return checks.choice(p, value, key.choices, listed=key.sweep)
    if t == "time":
        return checks.time(p, value)
    if t == "interval":
        return checks.interval(p, value)
    if t == "symbol":
        return checks.symbol(p, value)
    if t == "span":
        return checks.span(p, value)
    if t == "brackets":
        return parse_brackets(p, value)
    if t == "symbols":
        return universe_checks.symbols(p, value)
    if t == "intervals":
        return universe_checks.intervals(p, value)
    raise AssertionError(f"no check for type {t!r}")


def check_axis(key: Key, raw: Any) -> tuple[Any, ...]:
    """An axis: each value checked; null (and 0 where ``zero_is_none``) means off."""
    out: list[Any] = []
    for v in checks.axis_values(key.path, raw):
        off = key.nullable and (v is None or (key.zero_is_none and v == 0 and not isinstance(v, bool)))
        value = None if off else check_value(key, v)
        if value in out:
            hint = " (0 and null both mean none)" if key.zero_is_none else ""
            raise ConfigError(f"{key.path}: {_show(v)} repeats a value already given{hint}")
        out.append(value)
    return tuple(out)


def parse_config(doc: dict) -> Config:
    d = _Document(doc)
    values: dict[str, Any] = {}
    defaults: set[str] = set()
    axes_raw: dict[str, Any] = {}
    for key in KEYS:
        if key.type == "strategies":
            continue
        if key.section and d.section(key.section) is None:
            continue  # an optional section that is off
        present, raw = d.raw(key)
        if raw is None and key.default is REQUIRED:
            hint = "a duration like 30d or a bar count" if key.type == "span" else "a value"
            raise ConfigError(f"{key.path}: missing; give {hint}")
        if not present:
            defaults.add(key.path)
            raw = key.default
        elif raw is None and not key.sweep:
            values[key.path] = None if key.nullable else check_value(key, None)  # the second raises
            continue
        if key.sweep:
            axes_raw[key.path] = raw
        else:
            values[key.path] = raw if not present else check_value(key, raw)
    _joint_checks(d, values)
    limits = LimitsConfig(max_combinations=values["limits.max_combinations"], max_folds=values["limits.max_folds"])
    strat_doc = _strategies_section(d)
    total = _check_grid_budget(strat_doc, axes_raw, limits)
    if values["report.runs"] == "all" and total > RUNS_ALL_MAX:
        raise ConfigError(f"report.runs: all would write up to {total:,} files, one per combination; at most "
                          f"{RUNS_ALL_MAX:,}: give top (the top K) or none")
    axes = {path: check_axis(BY_PATH[path], raw) for path, raw in axes_raw.items()}
    grids = _strategies(strat_doc)
    return _build(doc, values, axes, grids, d, frozenset(defaults))


def _joint_checks(d: _Document, values: dict[str, Any]) -> None:
    start, end = values["data.start"], values["data.end"]
    if start is not None and end is not None:
        try:
            check_range(parse_time(start), parse_time(end), "data.start/data.end")
        except UserError as exc:
            raise ConfigError(str(exc)) from None
    if d.section("validation.walk_forward") is not None:
        key = "validation.walk_forward"
        test = values[f"{key}.test"]
        step = values[f"{key}.step"] or test
        # Same unit: the comparison is exact now; mixed units are compared once bars are known.
        if (step.bars is not None) == (test.bars is not None) and checks.span_size(step) < checks.span_size(test):
            raise ConfigError(f"{key}.step: {step.text} is shorter than test {test.text}; the test windows would "
                              "overlap and the stitched out-of-sample equity would count bars twice")
    universe_checks.joint(values, d.section("validation") is not None)
    rank_by = values["report.rank_by"]
    if rank_by in SHARPE_TESTS and d.section("validation") is None:
        raise ConfigError(f"report.rank_by: {rank_by} needs a validation section (validation: {{}} is enough)")


def _strategies_section(d: _Document) -> dict:
    strat_doc = d.doc.get("strategies")
    if not isinstance(strat_doc, dict) or not strat_doc:
        raise ConfigError("strategies: expected a mapping of strategy name to parameters, e.g. "
                          "strategies: {ma_crossover: {short_window: [5, 10]}}")
    return strat_doc


def _strategy_class(name: Any) -> type[Strategy]:
    """A built-in's short name, or ``package.module:ClassName`` (its form checked before anything is imported)."""
    name = str(name)
    if ":" in name and not _STRATEGY_PATH.fullmatch(name):
        raise ConfigError(f"strategies: {_show(name)} is not a strategy name or a path like "
                          "package.module:ClassName")
    return get_strategy(name)


def _check_grid_budget(strat_doc: dict, axes_raw: Mapping[str, Any], limits: LimitsConfig) -> int:
    """Refuse a grid above ``limits.max_combinations`` from its axis lengths, before it is expanded.
    Returns the count (before constraints filter combinations out)."""
    n_rules = 1
    for key, raw in axes_raw.items():
        n_rules = min(n_rules * checks.axis_length(key, raw), checks.SATURATED)
    total, widest = 0, 1
    for sname, params in strat_doc.items():
        cls = _strategy_class(sname)
        count = n_rules
        for p, raw in (params.items() if isinstance(params, dict) else ()):
            count = min(count * checks.axis_length(f"strategies.{sname}.{p}", raw), checks.SATURATED)
        total = min(total + count, checks.SATURATED)
        widest = max(widest, len(cls.param_specs()) + len(RULE_COLUMNS))
    if total > limits.max_combinations:
        shown = f"at least {checks.SATURATED:,}" if total >= checks.SATURATED else f"{total:,}"
        raise ConfigError(f"strategies: the grid has {shown} combinations (estimated memory to sweep them: "
                          f"{human_bytes(estimate_bytes(total, widest))}), above "
                          f"limits.max_combinations = {limits.max_combinations:,}; narrow the grid or raise the limit")
    return total


def _strategies(strat_doc: dict) -> tuple[StrategyGrid, ...]:
    grids, named = [], {}
    for sname, params in strat_doc.items():
        cls = _strategy_class(sname)
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"strategies.{sname}: expected a mapping of parameter to value(s), got {_show(params)}")
        specs = cls.param_specs()
        unknown = sorted(set(params) - set(specs), key=str)
        if unknown:
            raise ConfigError(f"strategies.{sname}.{checks.key_text(unknown[0])}: unknown parameter; expected one "
                              f"of {', '.join(specs)}{did_you_mean(str(unknown[0]), specs)}")
        values = tuple((p, checks.axis_values(f"strategies.{sname}.{p}", params[p])) for p in specs if p in params)
        _check_int_params(str(sname), specs, values)
        for pname, vals in values:  # each value's type and the strategy's bounds
            for v in vals:
                coerce_param(cls.name, pname, specs[pname][0], v, cls.bounds.get(pname))
        if cls.name in named:
            raise ConfigError(f"strategies: {named[cls.name]!r} and {str(sname)!r} are both named {cls.name!r}; "
                              "a run names its results by strategy name, so each needs its own (set `name` on "
                              "the class)")
        named[cls.name] = str(sname)
        grids.append(StrategyGrid(str(sname), values, strategy_path(cls)))
    return tuple(grids)


def _check_int_params(sname: str, specs: dict, values: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
    """Integer parameters must fit the grid's int64 columns."""
    for pname, vals in values:
        if specs[pname][0] is int:
            for v in vals:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                        and abs(v) > checks.INT64_MAX:
                    raise ConfigError(f"strategies.{sname}.{pname}: {_show(v)} is too large; "
                                      f"expected at most {checks.INT64_MAX:,}")


def _build(doc: dict, v: dict[str, Any], axes: dict[str, tuple], grids: tuple[StrategyGrid, ...], d: _Document,
           defaults: frozenset[str]) -> Config:
    data = DataSpec(source=v["data.source"], symbol=v["data.symbol"], interval=v["data.interval"],
                    start=v["data.start"], end=v["data.end"], synthetic_bars=v["data.synthetic_bars"],
                    seed=v["data.seed"], max_input_bytes=v["data.max_input_bytes"], symbols=v["data.symbols"],
                    intervals=v["data.intervals"], market=v["data.market"])
    execution = Execution(capital=v["portfolio.capital"], commission=v["execution.commission"],
                          slippage=v["execution.slippage"], fill=v["execution.fill"])
    report = ReportConfig(top_k=v["report.top_k"], rank_by=v["report.rank_by"], min_trades=v["report.min_trades"],
                          png=v["report.png"], runs=v["report.runs"], aggregate=v["report.aggregate"])
    validation = None
    if d.section("validation") is not None:
        wf = cscv = None
        if d.section("validation.walk_forward") is not None:
            key = "validation.walk_forward"
            wf = WalkForwardConfig(train=v[f"{key}.train"], test=v[f"{key}.test"],
                                   step=v[f"{key}.step"] or v[f"{key}.test"], anchored=v[f"{key}.anchored"])
        if d.section("validation.cscv") is not None:
            cscv = CscvConfig(blocks=v["validation.cscv.blocks"])
        validation = ValidationConfig(holdout=v["validation.holdout"], walk_forward=wf, cscv=cscv,
                                      trials=v["validation.trials"], cross_series=v["validation.cross_series"])
    rules = {"stop_loss": axes["risk.stop_loss"], "take_profit": axes["risk.take_profit"],
             "trailing_stop": axes["risk.trailing_stop"], "max_bars": axes["risk.max_bars"],
             "direction": axes["portfolio.direction"], "size": axes["portfolio.size"],
             "leverage": axes["portfolio.leverage"]}
    perp = _perp(d, v, axes)
    return Config(name=v["experiment.name"], data=data, execution=execution, strategies=grids,
                  workers=v["parallel.workers"], report=report,
                  limits=LimitsConfig(v["limits.max_combinations"], v["limits.max_folds"]),
                  validation=validation, raw=doc, defaults=defaults, perp=perp, **rules)


def _perp(d: _Document, v: dict[str, Any], axes: dict[str, tuple]) -> PerpConfig | None:
    """The perp section under data.market: um (its defaults when absent); refused under spot."""
    market = v["data.market"]
    if market != "um":
        if any(x != 1.0 for x in axes["portfolio.leverage"]):
            raise ConfigError("portfolio.leverage: leverage needs data.market: um (spot positions are unlevered)")
        if d.section("perp") is not None:
            raise ConfigError("perp: a perp section needs data.market: um")
        return None
    if d.section("perp") is None:
        cfg = PerpConfig()
    else:
        if v["perp.margin"] == "cross":
            raise ConfigError("perp.margin: cross is not supported yet; give isolated")
        cfg = PerpConfig(margin=v["perp.margin"], brackets=v["perp.brackets"],
                         liquidation_price=v["perp.liquidation_price"], funding=v["perp.funding"])
    symbols = v["data.symbols"] if isinstance(v["data.symbols"], (list, tuple)) else ()
    for symbol in [v["data.symbol"], *symbols]:  # a universe's too (``all``: once the dataset is listed)
        if symbol is not None:
            brackets_for(symbol, cfg.brackets)  # a symbol without a default needs perp.brackets
    return cfg
