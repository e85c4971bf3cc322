"""Maintenance-margin brackets: which (mmr, cum) a position's entry notional falls in (P4)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError


class Bracket(NamedTuple):
    max_notional: float  # the bracket holds entry notionals up to this (the previous bracket's excluded)
    mmr: float  # maintenance margin rate
    cum: float  # maintenance amount


# Binance USDⓈ-M leverage brackets (GET /fapi/v1/leverageBracket) as recorded in January 2022
# (freqtrade's tests/leverage_tiers.json holds the same table). Binance revises them from time to
# time: give perp.brackets to use today's. Each cum satisfies cum_i = cum_{i-1} + max_{i-1}·(mmr_i − mmr_{i-1}).
DEFAULT_BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "BTCUSDT": (
        Bracket(50_000, 0.004, 0), Bracket(500_000, 0.005, 50), Bracket(8_000_000, 0.01, 2_550),
        Bracket(50_000_000, 0.025, 122_550), Bracket(80_000_000, 0.05, 1_372_550),
        Bracket(100_000_000, 0.1, 5_372_550), Bracket(120_000_000, 0.125, 7_872_550),
        Bracket(200_000_000, 0.15, 10_872_550), Bracket(300_000_000, 0.25, 30_872_550),
        Bracket(500_000_000, 0.5, 105_872_550),
    ),
    "ETHUSDT": (
        Bracket(10_000, 0.005, 0), Bracket(100_000, 0.0065, 15), Bracket(500_000, 0.01, 365),
        Bracket(1_000_000, 0.02, 5_365), Bracket(2_000_000, 0.05, 35_365), Bracket(5_000_000, 0.1, 135_365),
        Bracket(10_000_000, 0.125, 260_365), Bracket(20_000_000, 0.15, 510_365),
        Bracket(50_000_000, 0.25, 2_510_365), Bracket(100_000_000, 0.5, 15_010_365),
    ),
}


def parse_brackets(key: str, value: Any) -> tuple[Bracket, ...]:
    """A list of {max_notional, mmr, cum} mappings, checked: max_notional increasing, mmr in [0, 1)
    and not decreasing, cum ≥ 0."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of {{max_notional, mmr, cum}}")
    out: list[Bracket] = []
    for i, row in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(row, dict) or set(row) != {"max_notional", "mmr", "cum"}:
            raise ConfigError(f"{where}: expected a mapping with exactly max_notional, mmr and cum, got {row!r}")
        vals = []
        for name in ("max_notional", "mmr", "cum"):
            v = row[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{where}.{name}: expected a finite number, got {v!r}")
            vals.append(float(v))
        b = Bracket(*vals)
        if b.mmr < 0 or b.mmr >= 1:
            raise ConfigError(f"{where}.mmr: {b.mmr:g} is outside [0, 1)")
        if b.cum < 0:
            raise ConfigError(f"{where}.cum: {b.cum:g} is negative")
        if b.max_notional <= 0:
            raise ConfigError(f"{where}.max_notional: {b.max_notional:g}; expected above 0")
        if out and b.max_notional <= out[-1].max_notional:
            raise ConfigError(f"{where}.max_notional: {b.max_notional:g} is not above the previous bracket's "
                              f"{out[-1].max_notional:g}; brackets must be increasing")
        if out and b.mmr < out[-1].mmr:
            raise ConfigError(f"{where}.mmr: {b.mmr:g} is below the previous bracket's {out[-1].mmr:g}; "
                              "brackets must be increasing")
        out.append(b)
    return tuple(out)


def brackets_for(symbol: str | None, given: tuple[Bracket, ...] | None) -> tuple[Bracket, ...]:
    """The brackets a run uses: the config's, else the committed default for its symbol."""
    if given is not None:
        return given
    if symbol in DEFAULT_BRACKETS:
        return DEFAULT_BRACKETS[symbol]
    raise ConfigError(f"perp.brackets: missing; {symbol or 'this symbol'} has no default brackets (defaults: "
                      f"{', '.join(DEFAULT_BRACKETS)}); give a list of {{max_notional, mmr, cum}}")


def bracket_arrays(brackets: tuple[Bracket, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """max_notional, mmr and cum as float64 arrays (the fast path's form)."""
    a = np.array(brackets, dtype=np.float64).reshape(len(brackets), 3)
    return (np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1]), np.ascontiguousarray(a[:, 2]))


def lookup(brackets, notional: float) -> tuple[float, float]:
    """(mmr, cum) of the first bracket whose max_notional is at or above ``notional``; the last beyond."""
    for b in brackets:
        if notional <= b.max_notional:
            return b.mmr, b.cum
    return brackets[-1].mmr, brackets[-1].cum


def liquidation_price(side: int, qty: float, entry: float, wb: float, mmr: float, cum: float) -> float:
    """P4: LP = (WB + cum − s·qty·entry) / (qty·mmr − s·qty), in the operations both engines use."""
    if side == 1:
        return (wb + cum - qty * entry) / (qty * mmr - qty)
    return (wb + cum + qty * entry) / (qty * mmr + qty)
