"""The report header's perp card: leverage, margin mode, brackets, the liquidation price's basis
and whether funding is on (null for spot runs)."""

from __future__ import annotations

from ..candles import Candles
from ..perp.brackets import brackets_for
from ..perp.inputs import basis_of


def perp_header(cfg, candles: Candles) -> dict | None:
    p = cfg.perp
    if p is None:
        return None
    return {
        "market": "um",
        "leverage": list(cfg.leverage),
        "margin": p.margin,
        "brackets": [{k: float(v) for k, v in b._asdict().items()} for b in brackets_for(candles.symbol, p.brackets)],
        "brackets_source": "perp.brackets" if p.brackets is not None else "committed default",
        "liquidation_price": basis_of(p, candles),
        "funding": p.funding,
    }
