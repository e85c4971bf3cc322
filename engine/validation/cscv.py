"""Probability of backtest overfitting by combinatorially symmetric cross-validation.

Bailey, Borwein, López de Prado and Zhu (2017), "The probability of backtest
overfitting", J. Computational Finance 20(4). Every split is formed from
per-combination, per-block sufficient statistics (count, Σd, Σd² with
``d = r - shift``), so no (combinations × returns) matrix is ever built.

For ``S`` blocks and each of the ``C(S, S/2)`` sets J of ``S/2`` blocks, in
``itertools.combinations`` order: the in-sample returns are J's pooled, the
out-of-sample returns the rest. The metric is the non-annualised Sharpe
``mean / std(ddof=1)``; a sample with zero variance has Sharpe 0. ``n*`` is the
in-sample argmax (ties to the lowest combination), ``ω = rank(OOS Sharpe of n*)
/ (N + 1)`` with ascending 1-based ranks, ties averaged, and ``λ = ln(ω/(1-ω))``.
PBO is the share of splits with ``λ <= 0``. A combination whose statistics are
not finite (NaN) has Sharpe -inf: never chosen, ranked lowest.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

#: combinations per tile: a tile's block sums stay in a core's cache while every
#: split of a thread's share streams over them
TILE = 1024


@dataclass(frozen=True)
class BlockStats:
    """Per-block sufficient statistics of each combination's returns.

    ``counts[k]`` returns fall in block k (the same for every combination);
    ``sum_d[c, k]`` and ``sum_d2[c, k]`` are Σd and Σd² over them, where
    ``d = r - shift[c]`` (``shift`` defaults to 0: raw returns).
    """

    counts: np.ndarray  # (S,) int
    sum_d: np.ndarray  # (C, S)
    sum_d2: np.ndarray  # (C, S)
    shift: np.ndarray | None = None  # (C,)

    @property
    def combinations(self) -> int:
        return self.sum_d.shape[0]

    @property
    def blocks(self) -> int:
        return self.sum_d.shape[1]


@dataclass(frozen=True)
class CscvResult:
    blocks: int  # S
    combinations: int  # N
    T: int  # returns per combination
    pbo: float  # share of splits with λ <= 0
    logits: np.ndarray  # λ per split, in itertools.combinations order
    best: np.ndarray  # n* per split (combination index)
    is_sharpe: np.ndarray  # in-sample Sharpe of n* per split
    oos_sharpe: np.ndarray  # out-of-sample Sharpe of n* per split
    oos_rank: np.ndarray  # its ascending, 1-based, tie-averaged rank among the N
    prob_oos_loss: float  # share of splits where n*'s out-of-sample Sharpe < 0
    slope: float | None  # OLS slope of OOS on IS Sharpe of n* (performance degradation)
    intercept: float | None

    @property
    def splits(self) -> int:
        return len(self.logits)


def split_sets(S: int) -> tuple[np.ndarray, np.ndarray]:
    """In-sample and out-of-sample block indices of each split, ``(C(S, S/2), S/2)`` each."""
    ins = np.array(list(itertools.combinations(range(S), S // 2)), dtype=np.int64).reshape(-1, S // 2)
    rest = np.ones((len(ins), S), dtype=bool)
    rest[np.arange(len(ins))[:, None], ins] = False
    outs = np.nonzero(rest)[1].reshape(len(ins), S // 2)  # row-major: ascending within each row
    return ins, outs


def cscv(stats: BlockStats) -> CscvResult:
    """PBO and its companions from per-block statistics (pure; any S >= 2 even)."""
    counts = np.asarray(stats.counts, dtype=np.int64)
    S = len(counts)
    if S < 2 or S % 2:
        raise ValueError(f"CSCV needs an even number of blocks, got {S}")
    C = stats.combinations
    if C < 1 or stats.blocks != S:
        raise ValueError("block statistics must be (combinations, blocks) with one count per block")
    ins, outs = split_sets(S)
    n_in = counts[ins].sum(axis=1)
    n_out = counts[outs].sum(axis=1)
    if min(n_in.min(), n_out.min()) < 2:
        raise ValueError("every split needs at least 2 returns on each side")
    d1 = np.ascontiguousarray(np.asarray(stats.sum_d, dtype=np.float64).T)  # (S, C): combinations contiguous
    d2 = np.ascontiguousarray(np.asarray(stats.sum_d2, dtype=np.float64).T)
    shift = np.zeros(C) if stats.shift is None else np.ascontiguousarray(stats.shift, dtype=np.float64)
    P = len(ins)
    best = np.full(P, -1, dtype=np.int64)
    best_is = np.full(P, -np.inf)
    edges = _chunk_edges(P)
    _in_threads(_argmax_pass, edges, ins, n_in.astype(np.float64), d1, d2, shift, best, best_is)
    best[best < 0] = 0  # every in-sample Sharpe was NaN: the first combination, by the tie rule
    target = np.array([_one_sharpe(outs[p], n_out[p], d1[:, j], d2[:, j], shift[j]) for p, j in enumerate(best)])
    less = np.zeros(P, dtype=np.int64)
    equal = np.zeros(P, dtype=np.int64)
    _in_threads(_rank_pass, edges, outs, n_out.astype(np.float64), d1, d2, shift, best, target, less, equal)
    rank = less + (equal + 1) / 2.0  # equal counts n* itself: the average rank of its tie group
    omega = rank / (C + 1)
    logits = np.log(omega / (1.0 - omega))
    slope = intercept = None
    x, y = best_is, target
    if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
        dx = x - x.mean()
        sxx = float(dx @ dx)
        if sxx > 0:
            slope = float(dx @ (y - y.mean())) / sxx
            intercept = float(y.mean() - slope * x.mean())
    return CscvResult(blocks=S, combinations=C, T=int(counts.sum()), pbo=float(np.mean(logits <= 0)),
                      logits=logits, best=best, is_sharpe=best_is, oos_sharpe=target, oos_rank=rank,
                      prob_oos_loss=float(np.mean(target < 0)), slope=slope, intercept=intercept)


def _one_sharpe(blocks: np.ndarray, n: int, d1: np.ndarray, d2: np.ndarray, k: float) -> float:
    """One combination's Sharpe on a set of blocks (the kernels' formula; only its sign and
    value are reported, its rank among the others comes from ``_rank_pass``)."""
    a = b = 0.0
    for blk in blocks.tolist():
        a += float(d1[blk])
        b += float(d2[blk])
    m = a * (1.0 / n)
    var = (b - a * m) * (1.0 / (n - 1.0))
    if var > 0:
        return (k + m) / math.sqrt(var)
    return 0.0 if var <= 0 else -math.inf


def _chunk_edges(P: int) -> np.ndarray:
    """Split indices into a few chunks per thread (threads share the work evenly)."""
    nch = min(P, 4 * numba.get_num_threads())
    return (np.arange(nch + 1) * P) // nch


def _in_threads(kernel, edges: np.ndarray, *args) -> None:
    """``kernel(*args, lo, hi)`` for each chunk [lo, hi) of splits, on a pool of threads (the kernels
    release the GIL; each chunk writes its own splits). A numba parallel region would do the same,
    but compiling one costs seconds on a machine's first run."""
    chunks = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    threads = min(numba.get_num_threads(), len(chunks))
    if threads <= 1:
        for lo, hi in chunks:
            kernel(*args, lo, hi)
        return
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(kernel, *args, lo, hi) for lo, hi in chunks]:
            f.result()


# --- kernels ---------------------------------------------------------------------------------------
# error_model="numpy": no zero test (and possible raise) on every division, so the
# per-combination loops vectorise; each loop below does one simple thing for that reason.
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sharpe(a, b, inv_n, inv_n1, k):
    """Sharpe ``mean/std(ddof=1)`` of n returns ``k + d`` with Σd = a, Σd² = b."""
    m = a * inv_n
    var = (b - a * m) * inv_n1
    sr = (k + m) / math.sqrt(var)
    return sr if var > 0.0 else (0.0 if var <= 0.0 else -np.inf)  # zero variance: 0; NaN: -inf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _split_sharpes(sets, p, n, d1, d2, shift, c0, w, a, b, sr):
    """sr[:w] = Sharpe of combinations c0.. on the blocks ``sets[p]``, pooled in a fixed order."""
    h = sets.shape[1]
    r1 = d1[sets[p, 0], c0:c0 + w]
    r2 = d2[sets[p, 0], c0:c0 + w]
    for j in range(w):
        a[j] = r1[j]
        b[j] = r2[j]
    for k in range(1, h):
        r1 = d1[sets[p, k], c0:c0 + w]
        r2 = d2[sets[p, k], c0:c0 + w]
        for j in range(w):
            a[j] += r1[j]
            b[j] += r2[j]
    inv_n = 1.0 / n[p]
    inv_n1 = 1.0 / (n[p] - 1.0)
    for j in range(w):
        sr[j] = _sharpe(a[j], b[j], inv_n, inv_n1, shift[c0 + j])


@njit(cache=True, nogil=True, error_model="numpy")
def _argmax_pass(sets, n, d1, d2, shift, best, best_v, lo, hi):
    """n* and its in-sample Sharpe for the splits [lo, hi)."""
    C = d1.shape[1]
    a = np.empty(TILE)
    b = np.empty(TILE)
    sr = np.empty(TILE)
    for c0 in range(0, C, TILE):
        w = min(TILE, C - c0)
        for p in range(lo, hi):
            _split_sharpes(sets, p, n, d1, d2, shift, c0, w, a, b, sr)
            bv, bj = best_v[p], best[p]
            for j in range(w):
                if sr[j] > bv:  # strict: ties go to the lowest index (tiles run in order)
                    bv, bj = sr[j], c0 + j
            best_v[p], best[p] = bv, bj


@njit(cache=True, nogil=True, error_model="numpy")
def _rank_pass(sets, n, d1, d2, shift, best, target, less, equal, lo, hi):
    """Count, for the splits [lo, hi), the combinations whose Sharpe is below / equal to
    ``target`` (n*'s own, which counts as equal to itself whatever the rounding)."""
    C = d1.shape[1]
    a = np.empty(TILE)
    b = np.empty(TILE)
    sr = np.empty(TILE)
    for c0 in range(0, C, TILE):
        w = min(TILE, C - c0)
        for p in range(lo, hi):
            _split_sharpes(sets, p, n, d1, d2, shift, c0, w, a, b, sr)
            v = target[p]
            lt = 0
            eq = 0
            for j in range(w):
                lt += sr[j] < v
                eq += sr[j] == v
            me = best[p] - c0
            if 0 <= me < w:
                lt -= sr[me] < v
                eq += 1 - (sr[me] == v)
            less[p] += lt
            equal[p] += eq
