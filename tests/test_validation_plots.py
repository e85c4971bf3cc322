"""Validation charts: valid, non-blank, byte-identical on repeat; the λ bars coloured by sign."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from engine.report import validation_plots as vp

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_704_067_200_000
STEP = 900_000


def _png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img[..., :3].std() > 0.01  # not blank
    return img


def _draw_all(folder):
    rng = np.random.default_rng(2)
    lam = rng.normal(0.3, 1.0, 12_870)
    vp.plot_logits(folder / "lam.png", lam, pbo=float(np.mean(lam <= 0)), title="λ")
    x = rng.normal(0.01, 0.005, 500)
    vp.plot_is_oos(folder / "isoos.png", x, -x + rng.normal(0, 0.003, 500), title="IS vs OOS",
                   xlabel="in-sample", ylabel="out-of-sample", slope=-1.0, intercept=0.0)
    t = T0 + np.arange(3000, dtype=np.int64) * STEP
    e = 1e5 * np.cumprod(1 + rng.normal(0, 0.003, 3000))
    b = 1e5 * np.cumprod(1 + rng.normal(0, 0.003, 3000))
    vp.plot_walk_forward(folder / "wf.png", t, e, b, t[::600], title="walk-forward")
    return sorted(p.name for p in folder.iterdir())


def test_validation_pngs_valid_and_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    names = _draw_all(a)
    assert _draw_all(b) == names == ["isoos.png", "lam.png", "wf.png"]
    for name in names:
        _png(a / name)
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_logit_bars_red_at_or_below_zero_blue_above(tmp_path):
    # all λ negative: only red bars; all positive: only blue
    def colours(values):
        path = tmp_path / f"h{len(values)}.png"
        vp.plot_logits(path, np.array(values), pbo=0.0, title="t")
        img = _png(path)[..., :3]
        red = ((img[..., 0] > 0.6) & (img[..., 1] < 0.45) & (img[..., 2] < 0.45)).sum()
        blue = ((img[..., 2] > 0.5) & (img[..., 0] < 0.35)).sum()
        return red, blue

    red, blue = colours([-2.0, -1.5, -1.0, -0.5, -0.2])
    assert red > 1000 and blue < 50
    red, blue = colours([0.2, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert blue > 1000


def test_empty_inputs_draw_no_data(tmp_path):
    vp.plot_logits(tmp_path / "a.png", np.array([]), pbo=0.0, title="t")
    vp.plot_is_oos(tmp_path / "b.png", np.array([np.nan]), np.array([1.0]), title="t", xlabel="x", ylabel="y")
    vp.plot_walk_forward(tmp_path / "c.png", np.array([], np.int64), np.array([]), np.array([]), np.array([]),
                         title="t")
    for p in ("a.png", "b.png", "c.png"):
        assert (tmp_path / p).read_bytes()[:8] == PNG_SIGNATURE
