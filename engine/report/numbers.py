"""Numbers as people read them: significant digits for small values, durations in bars and time."""

from __future__ import annotations

import math


def format_sig(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits: never a nonzero value printed as 0 ("—" for None/NaN)."""
    if x is None or not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        return f"{x:,.{decimals}f}"
    return f"{x:.{digits - 1}e}"


def format_fixed(x: float | None, decimals: int = 4) -> str:
    """``decimals`` places, but a nonzero value too small for them keeps 2 significant digits (never "0.0000")."""
    if x is None or not math.isfinite(x):
        return "—"
    if x != 0 and abs(x) < 0.5 * 10.0 ** -decimals:
        return f"{x:.1e}"
    return f"{x:.{decimals}f}"


def format_duration(bars: int | None, interval_ms: int) -> str:
    """``18,925 bars (197 d)``: a bar count and the time it spans (d, h or min)."""
    if bars is None:
        return "—"
    minutes = bars * interval_ms / 60_000
    if minutes >= 1440:
        span = f"{minutes / 1440:,.0f} d"
    elif minutes >= 60:
        span = f"{minutes / 60:,.0f} h"
    else:
        span = f"{minutes:,.0f} min"
    return f"{int(bars):,} bars ({span})"


def format_per_bar(x: float | None, per_year: float | None, digits: int = 3) -> str:
    """A per-bar Sharpe-like figure and its annualised value (× √bars per year):
    ``0.00620 per bar (1.16 annualised)`` for 15-minute bars; no annualised value without ``per_year``."""
    if x is None or not math.isfinite(x):
        return "—"
    text = f"{format_sig(x, digits)} per bar"
    if per_year:
        text += f" ({format_sig(x * math.sqrt(per_year), digits)} annualised)"
    return text
