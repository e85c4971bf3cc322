"""PNG charts for the run report: equity against buy-and-hold and drawdown (heatmaps: ``heatmap``).

Reproducible: the charts are drawn with matplotlib's object API on an Agg canvas (pyplot
and the process-wide backend are never touched), under matplotlib's built-in defaults
plus the fixed style below (a user's matplotlibrc or style changes nothing), with the
bundled DejaVu Sans font, a fixed size and dpi, and no metadata in the file. The same
inputs give byte-identical PNGs.

Large inputs are reduced before drawing: a curve of any length is cut into about 2,000
buckets (more than the chart has pixel columns) and each bucket keeps its first, lowest,
highest and last point, so the drawn envelope is the same as with every point, and a
2,000,000-point curve draws in well under a second.
"""

from __future__ import annotations

import textwrap
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path
from typing import Iterator

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..timeutil import iso_time
from .display import drawdown, envelope_indices

__all__ = ["plot_equity", "plot_drawdown"]

DPI = 110
#: Cells are annotated with their value up to this many rows and columns.
ANNOTATE_MAX = 20
_MS_PER_DAY = 86_400_000.0
_UTC = timezone.utc

_BLUE = "#1f5fa8"
_GREY = "#8c8c8c"
_RED = "#c0392b"
_NO_VALUE = "#d4d4d4"
_NO_VALUE_HATCH = "#a6a6a6"

_STYLE = {
    "font.family": "DejaVu Sans",                  # bundled with matplotlib: same glyphs everywhere
    "font.size": 10.0,
    "axes.titlesize": 12.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 10.0,
    "axes.labelsize": 10.0,
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#9a9a9a",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.8,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.frameon": True,
    "legend.framealpha": 0.92,
    "legend.edgecolor": "white",
    "legend.fancybox": False,
    "legend.fontsize": 9.5,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "date.epoch": "1970-01-01T00:00:00",           # x values below are days since this epoch
    "hatch.linewidth": 0.8,
    "path.simplify": True,
}


# --- shared helpers -------------------------------------------------------------------------------

@contextmanager
def _style() -> Iterator[None]:
    """matplotlib's defaults plus ``_STYLE``, restored afterwards (not thread-safe, like rcParams)."""
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(_STYLE)
        yield


def _figure(width: float, height: float, margins: dict | None = None) -> Figure:
    """A figure on an Agg canvas. Time-series charts pass fixed ``margins``: constrained
    layout measures every tick label and costs about half the drawing time."""
    if margins is not None:
        fig = Figure(figsize=(width, height), dpi=DPI)
        fig.subplots_adjust(**margins)
    else:
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08)
    FigureCanvasAgg(fig)
    return fig


_LINE_MARGINS = {"left": 0.085, "right": 0.975, "top": 0.9, "bottom": 0.13}


def warm_up() -> None:
    """Load the fonts and text machinery once (a forked worker then inherits them)."""
    import io

    with _style():
        fig = _figure(2.0, 1.0, _LINE_MARGINS)
        ax = fig.add_subplot()
        ax.set_title("warm up")
        ax.plot([0, 1], [0, 1])
        fig.savefig(io.BytesIO(), format="png", dpi=DPI)


def _save(fig: Figure, path) -> None:
    # No "Software" (matplotlib version) entry; Agg writes no time stamp.
    # zlib level 1: a fraction of the encoding time of the default 6, files ~1.2x larger.
    fig.savefig(Path(path), format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})


def _title(ax, text: str, width_in: float) -> None:
    """Left-aligned title, wrapped to the figure width (a long strategy id never clips)."""
    chars = max(20, int((width_in - 1.0) * 72 / (_STYLE["axes.titlesize"] * 0.7)))
    # An explicit y turns off matplotlib's automatic title placement, which measures
    # every artist on the axes (about a sixth of a chart's drawing time).
    ax.set_title("\n".join(textwrap.fill(line, chars) for line in str(text).split("\n")), y=1.0)


def _times(open_time_ms) -> np.ndarray:
    t = np.asarray(open_time_ms)
    if t.ndim != 1:
        raise ValueError(f"open_time_ms must be one-dimensional, got shape {t.shape}")
    return t.astype(np.int64, copy=False)


def _series(values, n: int, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{name} has shape {v.shape}; expected ({n},) like open_time_ms")
    return v


def _days(t_ms: np.ndarray) -> np.ndarray:
    return t_ms / _MS_PER_DAY


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(tz=_UTC, minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=_UTC))
    ax.set_xlabel("Date (UTC)")


def _x_range(ax, x: np.ndarray) -> None:
    if x[-1] > x[0]:
        ax.set_xlim(x[0], x[-1])
    else:                                           # one bar: a day either side
        ax.set_xlim(x[0] - 1.0, x[0] + 1.0)


def _number_axis(ax) -> None:
    """Thousands separators; decimals only when the axis spans small numbers; 3 significant
    digits with an exponent beyond a trillion (labels must not crowd out the chart)."""
    lo, hi = ax.get_ylim()
    span = abs(hi - lo)
    decimals = 0 if span >= 20 else 2 if span >= 0.2 else 4
    huge = max(abs(lo), abs(hi)) >= 1e12

    def label(v: float, _pos=None) -> str:
        text = f"{v:.3g}" if huge else f"{v:,.{decimals}f}"
        return text.replace("-", "\u2212")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(label))


def _change(v: np.ndarray) -> str:
    first, last = v[0], v[-1]
    if not (np.isfinite(first) and np.isfinite(last)) or first == 0:
        return ""
    pct = (last / first - 1) * 100
    text = f"{pct:+,.1f}%" if abs(pct) < 1e6 else f"{pct:+.3g}%"
    return f" {text}".replace("-", "\u2212")


def _date(t_ms: int) -> str:
    return iso_time(t_ms)[:10]


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color=_GREY, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


# --- equity ---------------------------------------------------------------------------------------

def plot_equity(path, open_time_ms: np.ndarray, equity: np.ndarray, benchmark: np.ndarray | None, *,
                title: str, label: str = "Strategy", color: str = _BLUE,
                boundaries_ms: np.ndarray | None = None) -> None:
    """Strategy equity and buy-and-hold on the same axes, UTC dates, thousands separators;
    a vertical line at each of ``boundaries_ms`` (e.g. walk-forward folds)."""
    t = _times(open_time_ms)
    e = _series(equity, t.size, "equity")
    b = None if benchmark is None else _series(benchmark, t.size, "benchmark")
    with _style():
        fig = _figure(11.0, 5.2, _LINE_MARGINS)
        ax = fig.add_subplot()
        _title(ax, title, 11.0)
        if t.size == 0:
            _no_data(ax)
        else:
            x = _days(t)
            for k, bound in enumerate(np.asarray([] if boundaries_ms is None else boundaries_ms, dtype=np.int64)):
                ax.axvline(_days(np.array([bound]))[0], color="#d9d9d9", linewidth=0.8, zorder=0,
                           label="fold start" if k == 0 else None)
            ax.axhline(e[0], color="#b5b5b5", linewidth=0.9, linestyle=(0, (4, 3)), zorder=1)
            marker = "o" if t.size < 3 else None      # a lone point needs a mark to be seen
            if b is not None:
                i = envelope_indices(t.size, b)
                ax.plot(x[i], b[i], color=_GREY, linewidth=1.1, marker=marker, label=f"Buy & hold{_change(b)}",
                        zorder=2)
            i = envelope_indices(t.size, e)
            ax.plot(x[i], e[i], color=color, linewidth=1.6, marker=marker, label=f"{label}{_change(e)}", zorder=3)
            _x_range(ax, x)
            ax.set_ylabel("Equity")
            _date_axis(ax)
            _number_axis(ax)
            ax.legend(loc="best")
        _save(fig, path)


# --- drawdown -------------------------------------------------------------------------------------

def plot_drawdown(path, open_time_ms: np.ndarray, equity: np.ndarray, *, title: str) -> None:
    """Drawdown in % below the running peak as a filled area, the maximum annotated."""
    t = _times(open_time_ms)
    e = _series(equity, t.size, "equity")
    with _style():
        fig = _figure(11.0, 4.2, _LINE_MARGINS)
        ax = fig.add_subplot()
        _title(ax, title, 11.0)
        if t.size == 0:
            _no_data(ax)
            _save(fig, path)
            return
        x = _days(t)
        dd = drawdown(e)
        y = -100.0 * dd
        i = envelope_indices(t.size, y)
        ax.fill_between(x[i], y[i], 0.0, color=_RED, alpha=0.28, linewidth=0, zorder=2)
        ax.plot(x[i], y[i], color=_RED, linewidth=0.9, zorder=3)
        ax.axhline(0.0, color="#9a9a9a", linewidth=0.8, zorder=1)
        _x_range(ax, x)
        worst = float(np.nanmax(dd)) if np.isfinite(dd).any() else 0.0
        handles = [Patch(facecolor=_RED, alpha=0.28, edgecolor=_RED, linewidth=0.8, label="Drawdown")]
        if worst > 0:
            j = int(np.nanargmax(dd))                   # first time at the deepest point
            peak = int(np.nanargmax(e[: j + 1]))       # where the peak before it was set
            depth = f"{-100.0 * worst:.1f}%".replace("-", "\u2212")
            ax.set_ylim(-100.0 * worst * 1.2, 100.0 * worst * 0.04)
            ax.axvspan(x[peak], x[j], color="#ececec", linewidth=0, zorder=0)
            ax.plot([x[j]], [y[j]], marker="o", markersize=5, color=_RED, zorder=4)
            ax.annotate(depth, xy=(x[j], y[j]), xytext=(0, -7), textcoords="offset points",
                        ha="center", va="top", fontsize=9.5, fontweight="bold", color="#7b241c", zorder=5)
            handles.append(Patch(facecolor="#ececec", label=f"Max drawdown {depth}: peak {_date(t[peak])}, "
                                                            f"trough {_date(t[j])}"))
        else:
            ax.set_ylim(-1.0, 0.1)
            ax.text(0.5, 0.5, "no drawdown", transform=ax.transAxes, ha="center", va="center", color=_GREY)
        ax.legend(handles=handles, loc="best")
        span = abs(ax.get_ylim()[0])
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(
            lambda v, _pos, d=0 if span >= 8 else 1 if span >= 0.8 else 2: f"{v:.{d}f}%".replace("-", "\u2212")))
        ax.set_ylabel("Drawdown")
        _date_axis(ax)
        _save(fig, path)
