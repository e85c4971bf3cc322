"""Report charts: valid, reproducible PNGs; heatmap pivot and colours; large and odd inputs."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from engine.report import heatmap, plots
from engine.report.display import ENVELOPE_BUCKETS, envelope_indices

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_704_067_200_000          # 2024-01-01 UTC
STEP = 900_000


def _curve(n: int, seed: int = 3, start: float = 10_000.0, drift: float = 0.0002) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + np.arange(n, dtype=np.int64) * STEP
    steps = np.random.default_rng(seed).normal(drift, 0.004, n)
    steps[:1] = 0.0
    return t, start * np.exp(np.cumsum(steps))


def _read_png(path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.01                  # not a blank canvas
    return img


def _sweep_table() -> pd.DataFrame:
    rows = []
    for fast in (5, 10, 20):
        for slow in (50, 100, 200, 400):
            for stop in (None, 0.02):
                value = None if fast == 20 and slow == 50 else fast / 10 + slow / 100 - (stop or 0) * 10
                rows.append({"fast": fast, "slow": slow, "stop_loss": stop, "sharpe": value})
    return pd.DataFrame(rows)


# --- files, reproducibility -------------------------------------------------------------------

def test_pngs_are_valid_and_byte_identical_on_repeat(tmp_path):
    t, e = _curve(5_000)
    bench = e[0] * np.exp(np.cumsum(np.random.default_rng(9).normal(0, 0.003, e.size)))
    table = _sweep_table()[["fast", "slow", "sharpe"]]
    for run in ("a", "b"):
        plots.plot_equity(tmp_path / f"eq_{run}.png", t, e, bench, title="#1 sma_cross(fast=10, slow=200)")
        plots.plot_drawdown(tmp_path / f"dd_{run}.png", t, e, title="#1 sma_cross drawdown")
        heatmap.plot_heatmap(tmp_path / f"hm_{run}.png", table, x="fast", y="slow", value="sharpe",
                           title="sma_cross: sharpe by fast × slow")
    sizes = {"eq": (572, 1210), "dd": (462, 1210)}
    for kind in ("eq", "dd", "hm"):
        a, b = tmp_path / f"{kind}_a.png", tmp_path / f"{kind}_b.png"
        img = _read_png(a)
        if kind in sizes:
            assert img.shape[:2] == sizes[kind]
        assert a.read_bytes() == b.read_bytes(), kind
        assert "Software" not in Image.open(a).info       # no matplotlib version in the file


def test_user_style_and_global_state_are_ignored(tmp_path):
    t, e = _curve(500)
    plots.plot_equity(tmp_path / "plain.png", t, e, None, title="x")
    before = dict(mpl.rcParams)
    backend = mpl.get_backend()
    with mpl.rc_context({"lines.linewidth": 6.0, "font.size": 20.0, "axes.facecolor": "black",
                         "axes.prop_cycle": mpl.cycler(color=["red"])}):
        plots.plot_equity(tmp_path / "styled.png", t, e, None, title="x")
    assert (tmp_path / "styled.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    assert dict(mpl.rcParams) == before and mpl.get_backend() == backend


# --- equity and drawdown --------------------------------------------------------------------------

def test_drawdown_fraction():
    e = np.array([100.0, 120.0, 90.0, 130.0, 65.0, 130.0])
    np.testing.assert_allclose(plots.drawdown(e), [0.0, 0.0, 0.25, 0.0, 0.5, 0.0])


def test_reduction_keeps_the_envelope_and_the_ends():
    n = 2_000_001
    y = np.cumsum(np.random.default_rng(4).normal(size=n))
    idx = envelope_indices(n, y)
    assert idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) > 0)
    assert idx.size <= 4 * ENVELOPE_BUCKETS + 1
    assert y[idx].min() == y.min() and y[idx].max() == y.max()
    # every bucket's extremes survive, so the drawn band matches the full curve per pixel column
    k = -(-n // ENVELOPE_BUCKETS)
    for b in (0, 777, -(-n // k) - 1):
        part = y[b * k:(b + 1) * k]
        kept = y[idx[(idx >= b * k) & (idx < (b + 1) * k)]]
        assert kept.min() == part.min() and kept.max() == part.max()


def test_two_million_point_curves(tmp_path):
    t, e = _curve(2_000_000, seed=5, start=1_000_000.0, drift=0.0)
    plots.plot_equity(tmp_path / "eq.png", t, e, e * 0.97, title="2,000,000 bars")
    plots.plot_drawdown(tmp_path / "dd.png", t, e, title="2,000,000 bars drawdown")
    _read_png(tmp_path / "eq.png")
    _read_png(tmp_path / "dd.png")


def test_astronomical_equity_still_lays_out(tmp_path, recwarn):
    t, e = _curve(20_000, drift=0.02)                   # ends near 1e177
    plots.plot_equity(tmp_path / "eq.png", t, e, None, title="compounding gone wild")
    _read_png(tmp_path / "eq.png")
    assert not [w for w in recwarn if "constrained_layout" in str(w.message)]


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_series(tmp_path, n):
    t, e = _curve(n)
    plots.plot_equity(tmp_path / "eq.png", t, e, e, title="tiny")
    plots.plot_drawdown(tmp_path / "dd.png", t, e, title="tiny")
    assert (tmp_path / "eq.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (tmp_path / "dd.png").read_bytes()[:8] == PNG_SIGNATURE


def test_flat_and_gappy_equity(tmp_path):
    t, _ = _curve(300)
    plots.plot_drawdown(tmp_path / "flat.png", t, np.full(300, 1_000.0), title="never below the start")
    e = np.linspace(1.0, 2.0, 300)
    e[100:120] = np.nan
    plots.plot_equity(tmp_path / "nan.png", t, e, None, title="small numbers with a gap")
    for name in ("flat", "nan"):
        _read_png(tmp_path / f"{name}.png")


def test_length_mismatch_is_an_error(tmp_path):
    t, e = _curve(10)
    with pytest.raises(ValueError, match="benchmark"):
        plots.plot_equity(tmp_path / "x.png", t, e, e[:-1], title="x")
    with pytest.raises(ValueError, match="equity"):
        plots.plot_drawdown(tmp_path / "x.png", t, e[:5], title="x")


# --- heatmap --------------------------------------------------------------------------------------

def test_heatmap_matrix_pivot_by_hand():
    table = pd.DataFrame({
        "slow": [100, 50, 100, 50, 200, 100, 50],
        "fast": [10, 5, 5, 10, 5, 10, 5],
        "sharpe": [1.0, 0.5, -0.2, None, float("nan"), 3.0, 0.7],
    })
    grid = heatmap.heatmap_matrix(table, "fast", "slow", "sharpe")
    assert grid.x_values == [5, 10] and grid.y_values == [50, 100, 200]
    expected = np.array([[0.7, np.nan],            # slow=50:  fast=5 max(0.5, 0.7); fast=10 undefined
                         [-0.2, 3.0],              # slow=100: fast=10 max(1.0, 3.0)
                         [np.nan, np.nan]])        # slow=200: only an undefined value
    np.testing.assert_array_equal(grid.values, expected)
    assert grid.runs_per_cell == 2 and grid.best == "max"
    low = heatmap.heatmap_matrix(table, "fast", "slow", "sharpe", best="min")
    assert low.values[0, 0] == 0.5 and low.values[1, 1] == 1.0


def test_heatmap_axes_sort_numerically_with_missing_first():
    table = pd.DataFrame({"stop_loss": [0.1, None, 0.02, np.nan, 0.1], "period": [100, 9, 20, 9, 100],
                          "kind": ["sma", "ema", "wma", "ema", "sma"], "v": [1, 2, 3, 4, 5]})
    grid = heatmap.heatmap_matrix(table, "period", "stop_loss", "v")
    assert grid.x_values == [9, 20, 100] and grid.y_values == [None, 0.02, 0.1]
    assert grid.values[0, 0] == 4 and grid.values[2, 2] == 5
    assert heatmap.heatmap_matrix(table, "kind", "period", "v").x_values == ["ema", "sma", "wma"]


def test_heatmap_with_undefined_values_and_missing_axis_values(tmp_path):
    table = _sweep_table()
    table.loc[0, "sharpe"] = float("inf")
    heatmap.plot_heatmap(tmp_path / "hm.png", table[["slow", "stop_loss", "sharpe"]], x="slow", y="stop_loss",
                       value="sharpe", title="sma_cross: sharpe by slow × stop_loss")
    _read_png(tmp_path / "hm.png")
    empty = pd.DataFrame({"a": [1, 2], "b": [3, 4], "v": [None, None]})
    heatmap.plot_heatmap(tmp_path / "nan.png", empty, x="a", y="b", value="v", title="nothing defined")
    _read_png(tmp_path / "nan.png")
    big = pd.DataFrame([{"a": a, "b": b, "v": np.sin(a / 7) * np.cos(b / 9)} for a in range(60) for b in range(40)])
    heatmap.plot_heatmap(tmp_path / "big.png", big, x="a", y="b", value="v", title="60 × 40, no cell labels")
    _read_png(tmp_path / "big.png")


@pytest.mark.parametrize("value, best", [("sharpe", "max"), ("max_drawdown", "min")])
def test_heatmap_cell_colours_follow_the_values(tmp_path, value, best):
    """Read the saved PNG back at each cell and turn the colour into a position on the
    colour scale: the order of those positions must be the order of the values (reversed
    for metrics where lower is better, so bright is always better)."""
    rng = np.random.default_rng(11)
    xs, ys = [1, 2, 3, 4], [10, 20, 30]
    table = pd.DataFrame([{"x": a, "y": b, value: float(v)}
                          for (a, b), v in zip([(a, b) for b in ys for a in xs], rng.permutation(12))])
    table.loc[5, value] = None                       # one undefined cell
    path = tmp_path / "hm.png"
    with plots._style():
        fig, ax, grid = heatmap._heatmap_figure(table, x="x", y="y", value=value, title="colours")
        plots._save(fig, path)
    img = mpimg.imread(path)[..., :3]
    height = img.shape[0]
    lut = mpl.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]
    position, no_value = [], []
    for i in range(len(ys)):
        for j in range(len(xs)):
            # a point inside the cell away from its centred label
            px, py = ax.transData.transform((j - 0.3, i - 0.3))
            rgb = img[int(round(height - py)), int(round(px))]
            dist = np.abs(lut - rgb).sum(axis=1)
            if np.isnan(grid.values[i, j]):
                no_value.append(dist.min())
            else:
                assert dist.min() < 0.03, (i, j, rgb)
                position.append((grid.values[i, j], int(dist.argmin())))
    assert len(no_value) == 1 and no_value[0] > 0.1   # hatched grey, not on the colour scale
    values, pos = np.array(position).T
    order = np.argsort(values)
    expected = np.sort(pos) if best == "max" else np.sort(pos)[::-1]
    np.testing.assert_array_equal(pos[order], expected)
    assert len(set(pos.tolist())) == len(pos)         # distinct values, distinct colours
