"""PNG charts for the validation figures: the λ histogram, in-sample against
out-of-sample Sharpe, and the stitched walk-forward equity with its fold boundaries.

Drawn like every other chart of the report (``engine.report.plots``): the same
fixed style, Agg canvas, no metadata, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import numpy as np

from .plots import _BLUE, _GREY, _RED, _figure, _no_data, _save, _style, _title, plot_equity

__all__ = ["plot_logits", "plot_is_oos", "plot_walk_forward"]

_GREEN = "#2e8b57"


def plot_logits(path, logits: np.ndarray, *, pbo: float, title: str) -> None:
    """Histogram of λ = logit(ω) over the CSCV splits; λ <= 0 (the PBO share) in red."""
    lam = np.asarray(logits, dtype=np.float64)
    with _style():
        fig = _figure(8.5, 4.8)
        ax = fig.add_subplot()
        _title(ax, title, 8.5)
        if lam.size == 0:
            _no_data(ax)
            _save(fig, path)
            return
        lo, hi = float(lam.min()), float(lam.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 41)
        if lo < 0 < hi:  # put an edge on 0 so no bar mixes both sides
            width = (hi - lo) / 40
            edges = np.arange(np.floor(lo / width), np.ceil(hi / width) + 1) * width
        counts, edges = np.histogram(lam, bins=edges)
        centers = (edges[:-1] + edges[1:]) / 2
        colors = [_RED if c <= 0 else _BLUE for c in centers]
        ax.bar(centers, counts, width=np.diff(edges), color=colors, alpha=0.85, linewidth=0)
        ax.axvline(0.0, color="#333333", linewidth=1.0)
        ax.set_xlabel("λ = ln(ω / (1 − ω)): out-of-sample rank of the in-sample best")
        ax.set_ylabel("Splits")
        ax.text(0.02, 0.95, f"PBO = {pbo:.3f}\n(share with λ ≤ 0)", transform=ax.transAxes, ha="left", va="top",
                color=_RED, fontsize=10)
        _save(fig, path)


def plot_is_oos(path, in_sample: np.ndarray, out_of_sample: np.ndarray, *, title: str, xlabel: str,
                ylabel: str, slope: float | None = None, intercept: float | None = None) -> None:
    """Scatter of in-sample against out-of-sample Sharpe, with the diagonal and an OLS line."""
    x = np.asarray(in_sample, dtype=np.float64)
    y = np.asarray(out_of_sample, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    with _style():
        fig = _figure(7.5, 6.0)
        ax = fig.add_subplot()
        _title(ax, title, 7.5)
        if x.size == 0:
            _no_data(ax)
            _save(fig, path)
            return
        alpha = 0.6 if x.size < 500 else 0.25
        ax.scatter(x, y, s=10 if x.size < 500 else 4, color=_BLUE, alpha=alpha, linewidths=0)
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        if lo == hi:
            lo, hi = lo - 1.0, hi + 1.0
        ax.plot([lo, hi], [lo, hi], color=_GREY, linewidth=0.9, linestyle=(0, (4, 3)), label="no degradation")
        ax.axhline(0.0, color="#b5b5b5", linewidth=0.8)
        if slope is not None and intercept is not None:
            xs = np.array([float(x.min()), float(x.max())])
            ax.plot(xs, intercept + slope * xs, color=_RED, linewidth=1.4,
                    label=f"fit: slope {slope:.2f}".replace("-", "\u2212"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
        _save(fig, path)


def plot_walk_forward(path, open_time_ms: np.ndarray, equity: np.ndarray, benchmark: np.ndarray,
                      boundaries_ms: np.ndarray, *, title: str) -> None:
    """Stitched out-of-sample equity against buy and hold over the same bars; a line at
    each fold's first test bar."""
    plot_equity(path, open_time_ms, equity, benchmark, title=title, label="Walk-forward out of sample",
                color=_GREEN, boundaries_ms=boundaries_ms)
