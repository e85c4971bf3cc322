"""PNG parameter heatmaps for the run report: the rank metric over two swept parameters.

Drawn like every other chart of the report (``engine.report.plots``): the same fixed
style, Agg canvas, no metadata, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.patches import Patch, Rectangle

from ..metrics import ASCENDING
from .plots import ANNOTATE_MAX, _NO_VALUE, _NO_VALUE_HATCH, _figure, _no_data, _save, _style, _title


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
