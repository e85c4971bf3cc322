"""What a perp run hands both engines, derived once from the config and the candles: the price
range liquidation is checked on, each bar's funding F_t, and the brackets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..candles import Candles
from ..errors import DataError
from .brackets import Bracket, bracket_arrays, brackets_for
from .config import PerpConfig
from .funding import bar_funding, check_coverage


@dataclass(frozen=True, eq=False)
class PerpInputs:
    liq_high: np.ndarray  # per bar: the high a short's liquidation is checked on (mark or trade)
    liq_low: np.ndarray  # per bar: the low a long's liquidation is checked on
    funding: np.ndarray  # per bar: F_t (0 without events, or with perp.funding: false)
    next_funding: np.ndarray  # int64, N + 1: the first bar at or after t with F_t ≠ 0 (N if none)
    brackets: tuple[Bracket, ...]
    br_max: np.ndarray
    br_mmr: np.ndarray
    br_cum: np.ndarray
    basis: str  # mark | last
    funding_on: bool

    def slice(self, a: int, b: int) -> "PerpInputs":
        return build(self.liq_high[a:b], self.liq_low[a:b], self.funding[a:b], self.brackets, self.basis,
                     self.funding_on)


def build(liq_high, liq_low, funding, brackets, basis, funding_on) -> PerpInputs:
    n = len(funding)
    nz = np.flatnonzero(funding != 0.0)
    nxt = np.full(n + 1, n, dtype=np.int64)
    if len(nz):
        pos = np.searchsorted(nz, np.arange(n))
        ok = pos < len(nz)
        nxt[:n][ok] = nz[pos[ok]]
    mx, mmr, cum = bracket_arrays(brackets)
    f = lambda a: np.require(np.asarray(a, dtype=np.float64), requirements="CW")  # noqa: E731
    return PerpInputs(f(liq_high), f(liq_low), f(funding), nxt, brackets, mx, mmr, cum, basis, funding_on)


def basis_of(cfg: PerpConfig, candles: Candles) -> str:
    has_mark = candles.perp is not None and candles.perp.has_mark
    basis = cfg.liquidation_price or ("mark" if has_mark else "last")
    if basis == "mark" and not has_mark:
        raise DataError(f"perp.liquidation_price: mark, but {candles.symbol} has no mark-price klines in this "
                        "range; give last, or add the mark klines")
    return basis


def perp_inputs(cfg: PerpConfig, candles: Candles) -> PerpInputs:
    """P3/P4's per-bar inputs of a run on ``candles`` (whose ``perp`` holds the mark klines and funding)."""
    basis = basis_of(cfg, candles)
    p = candles.perp
    if basis == "mark":
        # a bar without a mark kline falls back to its trade range
        hi = np.where(np.isfinite(p.mark_high), p.mark_high, candles.high)
        lo = np.where(np.isfinite(p.mark_low), p.mark_low, candles.low)
    else:
        hi, lo = candles.high, candles.low
    if cfg.funding and p is not None:
        funding = bar_funding(candles.open_time, candles.close, candles.interval_ms, p)
    else:
        funding = np.zeros(len(candles))
    return build(hi, lo, funding, brackets_for(candles.symbol, cfg.brackets), basis, cfg.funding)


_memo: dict[tuple[int, PerpConfig], tuple[Candles, PerpInputs]] = {}


def inputs_for(cfg: PerpConfig | None, candles: Candles) -> PerpInputs | None:
    """``perp_inputs`` of a run, computed once per candles object (None for spot)."""
    if cfg is None:
        return None
    key = (id(candles), cfg)
    hit = _memo.get(key)
    if hit is not None and hit[0] is candles:
        return hit[1]
    out = perp_inputs(cfg, candles)
    if len(_memo) >= 8:
        _memo.pop(next(iter(_memo)))
    _memo[key] = (candles, out)
    return out


def check_perp_run(cfg: PerpConfig, candles: Candles) -> None:
    """Every one-line refusal of a perp run, before any work: the liquidation basis, the brackets,
    and a funding table that leaves a gap longer than 2 funding intervals (unless funding is off)."""
    if candles.perp is None:
        raise DataError(f"data.market: um, but {candles.source or candles.symbol} has no perp series "
                        "(mark klines, funding)")
    if cfg.funding:
        check_coverage(candles.open_time, candles.interval_ms, candles.perp, candles.symbol)
    inputs_for(cfg, candles)
