"""Validation statistics: CSCV/PBO, PSR, DSR, streamed moments, Spearman.

Expected values come from hand calculation (docs/semantics.md, "Validation
figures"), from scipy, or from an independent brute-force implementation on a
materialised returns matrix written here; never from the code under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as ss

from engine.grid import build_grid
from engine.config import DEFAULT_CONFIG, load_config
from engine.data.loader import load_candles
from engine.sweep import reference_run
from engine.validation.cscv import BlockStats, cscv, sampled_sets
from engine.validation.rank_stats import average_ranks, spearman
from engine.validation.sharpe_stats import (EULER_GAMMA, deflated_sharpe, expected_max_sharpe, moments_from_sums,
                                            moments_two_pass, norm_cdf, psr)
from engine.validation.windows import block_edges


def block_stats(returns: np.ndarray, S: int, shift: np.ndarray | None = None) -> BlockStats:
    """Per-block Σd, Σd² by plain loops over a materialised matrix (the test's own reduction)."""
    returns = np.asarray(returns, dtype=np.float64)
    C, T = returns.shape
    parts = np.array_split(np.arange(T), S)
    k = np.zeros(C) if shift is None else shift
    s1 = np.array([[math.fsum(returns[c, p] - k[c]) for p in parts] for c in range(C)])
    s2 = np.array([[math.fsum((returns[c, p] - k[c]) ** 2) for p in parts] for c in range(C)])
    return BlockStats(np.array([len(p) for p in parts]), s1, s2, shift)


# --- CSCV by hand (docs/semantics.md) ---------------------------------------------------------------

TINY = np.array([
    [3, 5, 2, 4, -2, 0, -1, -3],  # A
    [1, 2, 1, 0, 2, 1, 0, 1],  # B
    [2, 4, 2, 0, 1, 1, 1, 1],  # C
], dtype=np.float64)


def test_cscv_tiny_matrix_by_hand():
    res = cscv(block_stats(TINY, 4))
    assert res.splits == 6 and res.blocks == 4 and res.combinations == 3 and res.T == 8
    # splits in itertools.combinations order: {0,1} {0,2} {0,3} {1,2} {1,3} {2,3}
    assert res.best.tolist() == [0, 1, 2, 1, 2, 1]  # A, B, C, B (tie with C), C, B (C: zero variance -> 0)
    assert res.oos_rank.tolist() == [1.0, 2.0, 2.5, 2.0, 2.0, 1.5]
    expected_logits = [math.log(1 / 3), 0.0, math.log(5 / 3), 0.0, 0.0, math.log(3 / 5)]
    np.testing.assert_allclose(res.logits, expected_logits, rtol=1e-12, atol=1e-15)
    assert res.pbo == pytest.approx(5 / 6)
    assert res.prob_oos_loss == pytest.approx(1 / 6)
    # n*'s in-sample and out-of-sample Sharpe, from the hand table
    r = math.sqrt
    is_sr = [3.5 / r(5 / 3), 1.5 / r(1 / 3), 2 / r(2), 1 / r(2 / 3), 1 / r(2 / 3), 1 / r(2 / 3)]
    oos_sr = [-1.5 / r(5 / 3), 0.5 / r(1 / 3), 1 / r(2 / 3), 1 / r(2 / 3), 2 / r(2), 1 / r(2 / 3)]
    np.testing.assert_allclose(res.is_sharpe, is_sr, rtol=1e-12)
    np.testing.assert_allclose(res.oos_sharpe, oos_sr, rtol=1e-12)
    fit = np.polyfit(is_sr, oos_sr, 1)
    assert res.slope == pytest.approx(fit[0], rel=1e-9)
    assert res.intercept == pytest.approx(fit[1], rel=1e-9)


def test_cscv_zero_variance_everywhere_gives_sharpe_zero_ties():
    # Three combinations that never trade: every Sharpe is 0, n* is combination 0, ranks all tie.
    res = cscv(block_stats(np.zeros((3, 8)), 4))
    assert res.best.tolist() == [0] * 6
    assert res.oos_rank.tolist() == [2.0] * 6  # (1 + 2 + 3) / 3
    assert res.pbo == 1.0  # ω = 1/2, λ = 0 <= 0
    assert res.slope is None  # no spread in the in-sample Sharpe


# --- PBO: streamed statistics against a brute force on the materialised matrix -------------------------


def brute_force_pbo(returns: np.ndarray, S: int, sets=None):
    C, T = returns.shape
    blocks = np.array_split(np.arange(T), S)

    def sharpe(x):
        sd = np.std(x, ddof=1)
        return 0.0 if sd == 0 else np.mean(x) / sd

    lams, best, oos = [], [], []
    for J in itertools.combinations(range(S), S // 2) if sets is None else sets:
        idx_in = np.concatenate([blocks[b] for b in J])
        idx_out = np.concatenate([blocks[b] for b in range(S) if b not in J])
        is_sr = np.array([sharpe(returns[c, idx_in]) for c in range(C)])
        oos_sr = np.array([sharpe(returns[c, idx_out]) for c in range(C)])
        n_star = int(np.argmax(is_sr))  # first maximum
        rank = ss.rankdata(oos_sr, method="average")[n_star]
        w = rank / (C + 1)
        lams.append(math.log(w / (1 - w)))
        best.append(n_star)
        oos.append(oos_sr[n_star])
    lams = np.array(lams)
    return float(np.mean(lams <= 0)), lams, np.array(best), np.array(oos)


@pytest.mark.parametrize("seed", range(12))
def test_pbo_streamed_equals_materialised(seed):
    rng = np.random.default_rng(seed)
    S = int(rng.choice([4, 6, 8]))
    C = int(rng.integers(2, 40))
    T = int(rng.integers(2 * S, 120))
    r = rng.normal(0.0, 0.01, (C, T)) + rng.normal(0, 0.002, (C, 1))
    r[rng.random((C, T)) < 0.4] = 0.0  # flat bars, as strategies have
    if C > 3:
        r[1] = 0.0  # a combination that never trades
        r[2] = r[3]  # two identical combinations: exact ties
    # The statistics may be about a reference taken from the data, as a streaming pass takes
    # it (the first non-zero return): identical combinations keep identical statistics.
    first = np.argmax(r != 0, axis=1)
    shift = None if seed % 2 else r[np.arange(C), first]
    pbo, lams, best, oos = brute_force_pbo(r, S)
    res = cscv(block_stats(r, S, shift))
    assert res.best.tolist() == best.tolist()
    np.testing.assert_allclose(res.logits, lams, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.oos_sharpe, oos, rtol=1e-9, atol=1e-12)
    assert res.pbo == pbo


def test_sampled_splits_follow_the_documented_draw():
    """docs/semantics.md, "Sampled splits": the first S/2 of the argsort of S uniforms from
    default_rng(2017), repeats skipped, in draw order; the same S gives the same splits."""
    S, k = 32, 5000
    masks = sampled_sets(S, k)
    assert np.array_equal(masks, sampled_sets(S, k)) and len(np.unique(masks)) == k
    assert not np.array_equal(masks, sampled_sets(S, k, seed=1))
    draws = np.argsort(np.random.default_rng(2017).random((3, S)), axis=1)[:, :S // 2]
    assert [sum(1 << int(b) for b in row) for row in draws] == masks[:3].tolist()
    bits = (masks[:, None] >> np.arange(S)) & 1
    assert (bits.sum(axis=1) == S // 2).all()
    per_block = bits.sum(axis=0)  # each block is in sample in about half the splits: 2500 ± 35 (1 sd)
    assert (abs(per_block - k / 2) < 200).all(), per_block


def test_sampled_cscv_equals_brute_force_on_the_sampled_splits():
    rng = np.random.default_rng(3)
    C, T, S = 9, 64, 8  # 70 splits; keep 20
    r = rng.normal(0, 0.01, (C, T))
    sets = [[b for b in range(S) if m >> b & 1] for m in sampled_sets(S, 20).tolist()]
    pbo, lams, best, oos = brute_force_pbo(r, S, sets)
    res = cscv(block_stats(r, S), max_splits=20)
    assert res.sampled and res.splits == 20 and res.all_splits == 70
    assert res.best.tolist() == best.tolist()
    np.testing.assert_allclose(res.logits, lams, rtol=1e-12, atol=1e-12)
    assert res.pbo == pbo
    full = cscv(block_stats(r, S), max_splits=70)
    assert not full.sampled and full.splits == 70 and full.pbo == brute_force_pbo(r, S)[0]


def test_pbo_tiles_many_combinations():
    # More combinations than one tile: the argmax and the counts carry across tiles.
    rng = np.random.default_rng(7)
    C, T, S = 2600, 48, 4
    r = rng.normal(0, 0.01, (C, T))
    r[2500] = r[10]  # a tie across tiles: the lower index wins
    r[10] += 0.004  # ... and make it the in-sample winner somewhere
    pbo, lams, best, _ = brute_force_pbo(r, S)
    res = cscv(block_stats(r, S))
    assert res.best.tolist() == best.tolist()
    np.testing.assert_allclose(res.logits, lams, rtol=1e-12, atol=1e-12)
    assert res.pbo == pbo


def test_block_edges_are_array_split():
    for T in (8, 9, 31, 100, 40_000):
        for S in (4, 6, 16, 32):
            if T < S:
                continue
            sizes = [len(p) for p in np.array_split(np.arange(T), S)]
            assert np.diff(block_edges(T, S)).tolist() == sizes


# --- PSR, DSR ------------------------------------------------------------------------------------


def test_psr_dsr_by_hand():
    r = np.array([[0.02, -0.01, 0.03, 0.0, 0.01]])
    m = moments_two_pass(r)
    assert m.sharpe[0] == pytest.approx(1 / math.sqrt(2.5), rel=1e-12)
    assert m.skew[0] == pytest.approx(0.0, abs=1e-12)
    assert m.kurtosis[0] == pytest.approx(1.7, rel=1e-12)
    assert psr(m)[0] == pytest.approx(0.889304, abs=5e-7)
    sr0 = expected_max_sharpe(0.04, 10)
    assert sr0 == pytest.approx(0.314920, abs=5e-7)
    assert psr(m, sr0)[0] == pytest.approx(0.730375, abs=5e-7)


def scipy_psr(r: np.ndarray, benchmark: float) -> float:
    T = len(r)
    sr = np.mean(r) / np.std(r, ddof=1)
    g3 = ss.skew(r, bias=True)
    g4 = ss.kurtosis(r, fisher=False, bias=True)
    return float(ss.norm.cdf((sr - benchmark) * math.sqrt(T - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2)))


def test_psr_and_dsr_against_scipy():
    rng = np.random.default_rng(3)
    C, T = 25, 500
    r = rng.standard_t(4, (C, T)) * 0.01 + rng.normal(0.0005, 0.001, (C, 1))
    r[:, ::3] *= 1.8  # skew it a little
    m = moments_two_pass(r)
    d = deflated_sharpe(m)
    srs = np.array([np.mean(x) / np.std(x, ddof=1) for x in r])
    V = np.var(srs, ddof=1)
    N = C
    sr0 = math.sqrt(V) * ((1 - np.euler_gamma) * ss.norm.ppf(1 - 1 / N)
                          + np.euler_gamma * ss.norm.ppf(1 - 1 / (N * math.e)))
    assert d.V == pytest.approx(V, rel=1e-12)
    assert d.SR0 == pytest.approx(sr0, rel=1e-12)
    assert d.N == N
    for c in range(C):
        assert d.psr[c] == pytest.approx(scipy_psr(r[c], 0.0), rel=1e-12, abs=1e-15)
        assert d.dsr[c] == pytest.approx(scipy_psr(r[c], sr0), rel=1e-12, abs=1e-15)
    # trials overrides N
    d50 = deflated_sharpe(m, trials=50)
    sr0_50 = math.sqrt(V) * ((1 - np.euler_gamma) * ss.norm.ppf(1 - 1 / 50)
                             + np.euler_gamma * ss.norm.ppf(1 - 1 / (50 * math.e)))
    assert d50.N == 50 and d50.SR0 == pytest.approx(sr0_50, rel=1e-12)
    assert d50.dsr[0] == pytest.approx(scipy_psr(r[0], sr0_50), rel=1e-12)


def test_undefined_values_are_nan():
    r = np.array([
        [0.0, 0.0, 0.0, 0.0],  # zero variance
        [0.01, -0.01, 0.02, 0.0],  # fine
        [0.01, 0.02, 0.0, 0.03],  # fine
    ])
    m = moments_two_pass(r)
    d = deflated_sharpe(m)
    assert np.isnan(m.sharpe[0]) and np.isnan(d.psr[0]) and np.isnan(d.dsr[0])
    assert np.isfinite(d.psr[1:]).all() and np.isfinite(d.dsr[1:]).all()
    # V from the two defined Sharpe ratios only
    srs = [np.mean(x) / np.std(x, ddof=1) for x in r[1:]]
    assert d.V == pytest.approx(np.var(srs, ddof=1), rel=1e-12)
    # fewer than 3 returns: PSR undefined, Sharpe defined
    m2 = moments_two_pass(np.array([[0.01, 0.03], [0.02, -0.01]]))
    assert np.isfinite(m2.sharpe).all() and np.isnan(psr(m2)).all()
    # one combination: no V, no DSR; N = 1 likewise
    one = deflated_sharpe(moments_two_pass(r[1:2]))
    assert math.isnan(one.V) and np.isnan(one.dsr).all() and np.isfinite(one.psr).all()
    assert math.isnan(expected_max_sharpe(0.04, 1))


def test_norm_cdf_against_scipy():
    x = np.array([-40.0, -12.5, -3.0, -1e-9, 0.0, 0.5, 1.96, 8.0, 40.0, np.nan])
    got = norm_cdf(x)
    np.testing.assert_allclose(got[:-1], ss.norm.cdf(x[:-1]), rtol=1e-13, atol=0)
    assert np.isnan(got[-1])
    assert EULER_GAMMA == np.euler_gamma


# --- streamed moments ---------------------------------------------------------------------------------


def sequential_power_sums(r: np.ndarray, shift: float = 0.0):
    """Σd^k accumulated one return at a time, in order."""
    s = [0.0, 0.0, 0.0, 0.0]
    for x in (r - shift).tolist():
        x2 = x * x
        s[0] += x
        s[1] += x2
        s[2] += x2 * x
        s[3] += x2 * x2
    return s


def test_streamed_moments_equal_two_pass_on_real_candles(real_15m_csv):
    """The kernel's Σr..Σr⁴ (one streaming pass, no returns kept) give the central moments of
    a two-pass computation (mean first, then deviations) to 1e-9, for every combination of
    the default sweep on the real BTCUSDT 15m candles; the curves come from the recording
    run and, for a few, from the reference engine."""
    from engine.fast import runner

    candles = load_candles(real_15m_csv)
    cfg = load_config(DEFAULT_CONFIG)
    (sw,) = build_grid(cfg)
    streamed = runner.sweep(sw, candles, cfg.execution, moments=True)[runner.POWER_SUMS]
    T = len(candles)
    ms = moments_from_sums(np.full(len(sw), T), *streamed.T)
    for i in range(len(sw)):
        curves = [runner.detail(sw, i, candles, cfg.execution).equity]
        if i % 21 == 0:
            curves.append(reference_run(cfg, sw, i, candles).equity)
        for E in curves:
            two = moments_two_pass((E[1:] / E[:-1] - 1.0)[None, :])
            for name in ("mean", "m2", "m3", "m4", "skew", "kurtosis"):
                assert getattr(ms, name)[i] == pytest.approx(getattr(two, name)[0], rel=1e-9), (i, name)


def test_shifted_sums_survive_a_large_mean():
    # Returns with mean/std = 1e4 (a steadily rising price): raw sums lose m2 entirely,
    # sums about a reference near the mean keep it.
    rng = np.random.default_rng(5)
    r = 0.01 + rng.normal(0, 1e-6, 2000)
    two = moments_two_pass(r[None, :])
    shifted = moments_from_sums([len(r)], *[[v] for v in sequential_power_sums(r, r[0])], shift=[r[0]])
    assert shifted.m2[0] == pytest.approx(two.m2[0], rel=1e-9)
    assert shifted.skew[0] == pytest.approx(two.skew[0], rel=1e-6, abs=1e-9)
    assert shifted.kurtosis[0] == pytest.approx(two.kurtosis[0], rel=1e-9)


# --- ranks ----------------------------------------------------------------------------------------------


def test_average_ranks_and_spearman_against_scipy():
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        x = rng.integers(0, 8, n).astype(float)  # many ties
        y = x + rng.normal(0, 3, n)
        np.testing.assert_array_equal(average_ranks(x), ss.rankdata(x, method="average"))
        rho = spearman(x, y)
        if np.ptp(x) == 0:
            assert rho is None
        else:
            assert rho == pytest.approx(ss.spearmanr(x, y).statistic, rel=1e-12)
    # pairs with a NaN on either side are left out
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    y = np.array([2.0, 1.0, 3.0, np.nan, 7.0])
    assert spearman(x, y) == pytest.approx(ss.spearmanr([1, 2, 5], [2, 1, 7]).statistic)
    assert spearman([1.0], [2.0]) is None
