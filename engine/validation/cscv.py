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

The splits are never held as a list: they are formed batch by batch. Above
``MAX_SPLITS`` splits (S >= 22) a seeded sample of ``MAX_SPLITS`` distinct splits
is used instead (:func:`sampled_sets`), and the result says so.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np
from numba import njit

#: combinations per tile: a tile's block sums stay in a core's cache while every
#: split of a thread's share streams over them
TILE = 1024
#: Every split is used up to this many (S <= 20: C(20, 10) = 184,756); above, a sample of this many.
MAX_SPLITS = 200_000
#: The sample's seed (docs/semantics.md, "Validation figures"): the same S gives the same splits.
SAMPLE_SEED = 2017
#: splits formed and evaluated at a time
BATCH = 16_384


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
    all_splits: int = 0  # C(S, S/2)
    sampled: bool = False  # a seeded sample of MAX_SPLITS splits, not all of them

    @property
    def splits(self) -> int:
        return len(self.logits)


def split_count(S: int) -> int:
    """How many splits S blocks make: C(S, S/2)."""
    return math.comb(S, S // 2)


def split_sets(S: int) -> tuple[np.ndarray, np.ndarray]:
    """In-sample and out-of-sample block indices of every split, ``(C(S, S/2), S/2)`` each (small S only)."""
    ins = np.concatenate(list(in_sample_sets(S, max_splits=split_count(S))))
    return ins, complement(ins, S)


def complement(ins: np.ndarray, S: int) -> np.ndarray:
    """The other S/2 blocks of each row of ``ins``, ascending."""
    rest = np.ones((len(ins), S), dtype=bool)
    rest[np.arange(len(ins))[:, None], ins] = False
    return np.nonzero(rest)[1].reshape(len(ins), S - ins.shape[1])  # row-major: ascending within each row


def in_sample_sets(S: int, max_splits: int = MAX_SPLITS, seed: int = SAMPLE_SEED) -> Iterator[np.ndarray]:
    """The in-sample block sets, ``BATCH`` rows at a time: every split in ``itertools.combinations``
    order when there are at most ``max_splits``, else :func:`sampled_sets`."""
    h = S // 2
    if split_count(S) > max_splits:
        masks = sampled_sets(S, max_splits, seed)
        bits = np.arange(S, dtype=np.int64)
        for i in range(0, len(masks), BATCH):
            inside = (masks[i:i + BATCH, None] >> bits) & 1 == 1
            yield np.nonzero(inside)[1].reshape(-1, h).astype(np.int64)
        return
    it = itertools.combinations(range(S), h)
    while batch := list(itertools.islice(it, BATCH)):
        yield np.array(batch, dtype=np.int64).reshape(-1, h)


def sampled_sets(S: int, k: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``k`` distinct in-sample sets of S/2 blocks drawn uniformly with ``numpy.random.default_rng(seed)``,
    as bit masks (block b is bit b), in the order first drawn: each draw takes the first S/2 entries of
    the argsort of S uniform numbers; a set drawn again is skipped."""
    rng = np.random.default_rng(seed)
    h = S // 2
    weights = np.int64(1) << np.arange(S, dtype=np.int64)
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < k:
        draw = np.argsort(rng.random((BATCH, S)), axis=1)[:, :h]
        masks = np.concatenate([chosen, weights[draw].sum(axis=1)])
        _, first = np.unique(masks, return_index=True)
        chosen = masks[np.sort(first)]
    return chosen[:k]


def cscv(stats: BlockStats, max_splits: int = MAX_SPLITS) -> CscvResult:
    """PBO and its companions from per-block statistics (pure; any S >= 2 even)."""
    counts = np.asarray(stats.counts, dtype=np.int64)
    S = len(counts)
    if S < 2 or S % 2:
        raise ValueError(f"CSCV needs an even number of blocks, got {S}")
    C = stats.combinations
    if C < 1 or stats.blocks != S:
        raise ValueError("block statistics must be (combinations, blocks) with one count per block")
    if np.sort(counts)[:S // 2].sum() < 2:  # the fewest returns a side of a split can hold
        raise ValueError("every split needs at least 2 returns on each side")
    d1 = np.ascontiguousarray(np.asarray(stats.sum_d, dtype=np.float64).T)  # (S, C): combinations contiguous
    d2 = np.ascontiguousarray(np.asarray(stats.sum_d2, dtype=np.float64).T)
    shift = np.zeros(C) if stats.shift is None else np.ascontiguousarray(stats.shift, dtype=np.float64)
    total = split_count(S)
    P = min(total, max_splits)
    best = np.full(P, -1, dtype=np.int64)
    best_is = np.full(P, -np.inf)
    target = np.empty(P)
    less = np.zeros(P, dtype=np.int64)
    equal = np.zeros(P, dtype=np.int64)
    p0 = 0
    for ins in in_sample_sets(S, max_splits):
        outs = complement(ins, S)
        k = len(ins)
        n_in = counts[ins].sum(axis=1).astype(np.float64)
        n_out = counts[outs].sum(axis=1).astype(np.float64)
        b, v = best[p0:p0 + k], best_is[p0:p0 + k]
        edges = _chunk_edges(k)
        _in_threads(_argmax_pass, edges, ins, n_in, d1, d2, shift, b, v)
        b[b < 0] = 0  # every in-sample Sharpe was NaN: the first combination, by the tie rule
        tgt = target[p0:p0 + k]
        tgt[:] = _chosen_sharpes(outs, n_out, d1, d2, shift, b)
        _in_threads(_rank_pass, edges, outs, n_out, d1, d2, shift, b, tgt, less[p0:p0 + k], equal[p0:p0 + k])
        p0 += k
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
                      prob_oos_loss=float(np.mean(target < 0)), slope=slope, intercept=intercept,
                      all_splits=total, sampled=P < total)


def _chosen_sharpes(outs: np.ndarray, n: np.ndarray, d1: np.ndarray, d2: np.ndarray, shift: np.ndarray,
                    best: np.ndarray) -> np.ndarray:
    """Each split's n* Sharpe on its blocks ``outs``: the kernels' formula with the same operations in
    the same order (blocks added one by one), so n* ties with an equal combination in ``_rank_pass``."""
    a = d1[outs[:, 0], best].copy()
    b = d2[outs[:, 0], best].copy()
    for k in range(1, outs.shape[1]):
        a += d1[outs[:, k], best]
        b += d2[outs[:, k], best]
    with np.errstate(divide="ignore", invalid="ignore"):
        m = a * (1.0 / n)
        var = (b - a * m) * (1.0 / (n - 1.0))
        sr = (shift[best] + m) / np.sqrt(var)
    return np.where(var > 0, sr, np.where(var <= 0, 0.0, -np.inf))


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
