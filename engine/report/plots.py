"""PNG charts for the run report: equity against buy-and-hold, drawdown, parameter heatmaps.

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

import math
import textwrap
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

import matplotlib as mpl
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .display import drawdown, envelope_indices
from .ranking import ASCENDING

__all__ = ["plot_equity", "plot_drawdown", "plot_heatmap", "heatmap_matrix", "HeatmapGrid"]

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
    return datetime.fromtimestamp(int(t_ms) / 1000, tz=_UTC).strftime("%Y-%m-%d")


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


# --- heatmap --------------------------------------------------------------------------------------

class HeatmapGrid(NamedTuple):
    """A parameter grid: ``values[i, j]`` belongs to ``y_values[i]`` and ``x_values[j]``.

    Axis values are sorted numerically (text values alphabetically); a missing parameter
    value (None/NaN, e.g. "no stop loss") is the first entry, shown as "none".
    ``runs_per_cell`` is the largest number of rows aggregated into one cell.
    """
    x_values: list
    y_values: list
    values: np.ndarray
    runs_per_cell: int
    best: str


def _is_missing(v) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _axis_values(column: pd.Series) -> tuple[list, np.ndarray]:
    """Sorted distinct values (missing first, as None) and each row's position among them."""
    raw = [v.item() if isinstance(v, np.generic) else v for v in column.tolist()]
    present = {v for v in raw if not _is_missing(v)}
    if all(isinstance(v, (int, float)) for v in present):          # bool is an int too
        ordered = sorted(present, key=float)
    else:
        ordered = sorted(present, key=lambda v: (not isinstance(v, (int, float)), str(v)))
    has_missing = any(_is_missing(v) for v in raw)
    values = ([None] if has_missing else []) + ordered
    position = {v: i for i, v in enumerate(values) if v is not None}
    codes = np.array([0 if _is_missing(v) else position[v] for v in raw], dtype=np.int64)
    return values, codes


def heatmap_matrix(table: pd.DataFrame, x: str, y: str, value: str, *, best: str = "max") -> HeatmapGrid:
    """Pivot ``table`` (one row per run) to a ``y`` by ``x`` grid of ``value``.

    Rows that share an (x, y) pair (other parameters were swept too) are reduced to the
    best value, ``best="max"`` or ``"min"``, ignoring undefined values; a cell with no
    defined value is NaN. Values that are not numbers (None, text) count as undefined.
    """
    if best not in ("max", "min"):
        raise ValueError(f"best must be 'max' or 'min', not {best!r}")
    for col in (x, y, value):
        if col not in table.columns:
            raise KeyError(f"heatmap: column {col!r} not in table (columns: {list(table.columns)})")
    x_values, xc = _axis_values(table[x])
    y_values, yc = _axis_values(table[y])
    v = pd.to_numeric(table[value], errors="coerce").to_numpy(dtype=np.float64)
    grid = np.full((len(y_values), len(x_values)), np.nan)
    runs = 0
    if len(table):
        cell = yc * len(x_values) + xc
        frame = pd.DataFrame({"cell": cell, "v": v})
        agg = getattr(frame.groupby("cell", sort=True)["v"], best)()
        grid.reshape(-1)[agg.index.to_numpy()] = agg.to_numpy(dtype=np.float64)
        runs = int(np.bincount(cell).max())
    return HeatmapGrid(x_values, y_values, grid, runs, best)


def _label(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"
    return str(v)


def _cell_text(v: float) -> str:
    if np.isnan(v):
        return "n/a"
    if np.isinf(v):
        return "\u221e" if v > 0 else "\u2212\u221e"
    text = f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:.2f}"
    return text.replace("-", "\u2212")


def _tick_positions(n: int, limit: int = 20) -> np.ndarray:
    step = max(1, math.ceil(n / limit))
    return np.arange(0, n, step)


def _heatmap_figure(table: pd.DataFrame, *, x: str, y: str, value: str, title: str):
    """Draw the heatmap; returns (figure, axes, grid). Call inside ``_style()``."""
    best = "min" if value in ASCENDING else "max"
    grid = heatmap_matrix(table, x, y, value, best=best)
    ny, nx = grid.values.shape
    width = min(13.0, max(7.5, 2.6 + 0.72 * nx))
    height = min(10.0, max(4.8, 2.0 + 0.46 * ny))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    if grid.runs_per_cell > 1:
        title = f"{title}\nbest ({best}) of up to {grid.runs_per_cell} runs per cell"
    _title(ax, title, width)
    if nx == 0 or ny == 0:
        _no_data(ax)
        return fig, ax, grid

    m = grid.values
    finite = np.isfinite(m)
    lo, hi = (float(m[finite].min()), float(m[finite].max())) if finite.any() else (0.0, 1.0)
    if lo == hi:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    cmap = mpl.colormaps["viridis_r" if best == "min" else "viridis"].with_extremes(bad=(0, 0, 0, 0))
    norm = Normalize(vmin=lo, vmax=hi)
    shown = np.ma.masked_invalid(np.clip(m, lo, hi))               # +-inf at the ends, NaN masked
    ax.grid(False)
    ax.add_patch(Rectangle((-0.5, -0.5), nx, ny, facecolor=_NO_VALUE, edgecolor=_NO_VALUE_HATCH,
                           hatch="///", linewidth=0, zorder=0))
    image = ax.imshow(shown, cmap=cmap, norm=norm, origin="lower", aspect="auto", interpolation="nearest",
                      extent=(-0.5, nx - 0.5, -0.5, ny - 0.5), zorder=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    xt, yt = _tick_positions(nx), _tick_positions(ny)
    xlabels = [_label(grid.x_values[i]) for i in xt]
    ax.set_xticks(xt, xlabels, rotation=45 if nx > 6 and max(map(len, xlabels)) > 4 else 0,
                  ha="right" if nx > 6 and max(map(len, xlabels)) > 4 else "center", rotation_mode="anchor")
    ax.set_yticks(yt, [_label(grid.y_values[i]) for i in yt])
    ax.tick_params(length=0)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(value + (" (lower is better)" if best == "min" else ""))
    bar.outline.set_visible(False)
    if np.isnan(m).any():
        fig.legend(handles=[Patch(facecolor=_NO_VALUE, edgecolor=_NO_VALUE_HATCH, hatch="///",
                                  label="no value (metric undefined)")], loc="outside lower right", fontsize=9)
    if nx <= ANNOTATE_MAX and ny <= ANNOTATE_MAX:
        cell_w = (width - 2.4) * 72 / nx            # points, roughly (labels and colour bar aside)
        cell_h = (height - 1.8) * 72 / ny
        size = float(np.clip(min(cell_w * 0.85 / 3.8, cell_h * 0.55), 6.0, 10.0))
        for i in range(ny):
            for j in range(nx):
                v = m[i, j]
                if np.isnan(v):
                    color = "#555555"
                else:
                    r, g, b, _ = cmap(norm(np.clip(v, lo, hi)))
                    color = "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "#1a1a1a"
                ax.text(j, i, _cell_text(v), ha="center", va="center", fontsize=size, color=color, zorder=2)
    return fig, ax, grid


def plot_heatmap(path, table: pd.DataFrame, *, x: str, y: str, value: str, title: str) -> None:
    """``value`` over the ``x`` by ``y`` parameter grid; see :func:`heatmap_matrix`.

    Cells without a value (undefined metric) are hatched grey. Cells carry their value
    when the grid is at most 20 by 20. For metrics where lower is better (drawdown, fees)
    the best is the minimum and the colour scale is reversed, so bright is always better.
    """
    with _style():
        fig, _ax, _grid = _heatmap_figure(table, x=x, y=y, value=value, title=title)
        _save(fig, path)
