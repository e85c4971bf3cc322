"""Streamed moments, the probabilistic and the deflated Sharpe ratio.

Bailey and López de Prado, "The Sharpe ratio efficient frontier" (2012) and
"The deflated Sharpe ratio" (2014). Everything is non-annualised, per bar:

* ``SR`` = mean / std(ddof=1) of the T returns;
* ``γ3 = m3 / m2^1.5`` and ``γ4 = m4 / m2²`` from the biased central moments
  (raw kurtosis: 3 for a normal);
* ``PSR(SR*) = Φ((SR − SR*)·√(T−1) / √(1 − γ3·SR + (γ4 − 1)/4·SR²))``;
* ``SR0 = √V · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))``, γ Euler–Mascheroni,
  V the sample variance (ddof=1) of the defined SRs, N the number of trials;
* ``DSR = PSR(SR0)``.

Undefined values (zero variance, fewer than 3 returns, a radicand <= 0, fewer
than 2 defined SRs or N < 2 for SR0) are NaN here and null in the outputs.

The moments come from streamed power sums of ``d = r − shift`` (a per-combination
reference close to the mean keeps the conversion free of cancellation; 0 is fine
for strategy returns, whose per-bar mean is ~1e-2 of their standard deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class Moments:
    """Per-combination sample statistics of T returns (arrays of equal length)."""

    T: np.ndarray  # returns (int)
    mean: np.ndarray
    m2: np.ndarray  # biased central moments
    m3: np.ndarray
    m4: np.ndarray

    @property
    def sharpe(self) -> np.ndarray:
        """Non-annualised mean/std(ddof=1); NaN when T < 2 or the variance is 0."""
        T = self.T.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = self.m2 * T / (T - 1.0)
            return np.where((self.T >= 2) & (self.m2 > 0), self.mean / np.sqrt(var), np.nan)

    @property
    def skew(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.m2 > 0, self.m3 / self.m2 ** 1.5, np.nan)

    @property
    def kurtosis(self) -> np.ndarray:
        """Raw (not excess) kurtosis."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.m2 > 0, self.m4 / self.m2 ** 2, np.nan)


def moments_from_sums(T, s1, s2, s3, s4, shift=0.0) -> Moments:
    """Central moments from power sums ``s_k = Σ (r − shift)^k`` over ``T`` returns."""
    T = np.asarray(T, dtype=np.int64)
    n = T.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.asarray(s1, dtype=np.float64) / n
        b = np.asarray(s2, dtype=np.float64) / n
        c = np.asarray(s3, dtype=np.float64) / n
        d = np.asarray(s4, dtype=np.float64) / n
        m2 = np.maximum(b - a * a, 0.0)
        m3 = c - 3.0 * a * b + 2.0 * a ** 3
        m4 = d - 4.0 * a * c + 6.0 * a * a * b - 3.0 * a ** 4
    return Moments(T=T, mean=np.asarray(shift, dtype=np.float64) + a, m2=m2, m3=m3, m4=m4)


def moments_two_pass(returns: np.ndarray) -> Moments:
    """The same statistics from a materialised ``(C, T)`` returns matrix (mean first, then deviations)."""
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    mean = r.mean(axis=1)
    dev = r - mean[:, None]
    dev2 = dev * dev
    return Moments(T=np.full(len(r), r.shape[1], dtype=np.int64), mean=mean, m2=dev2.mean(axis=1),
                   m3=(dev2 * dev).mean(axis=1), m4=(dev2 * dev2).mean(axis=1))


def norm_cdf(x) -> np.ndarray:
    """Φ, elementwise, through erfc (accurate far into the lower tail); NaN stays NaN."""
    x = np.asarray(x, dtype=np.float64)
    flat = [0.5 * math.erfc(-v / math.sqrt(2.0)) if v == v else math.nan for v in x.ravel().tolist()]
    return np.array(flat, dtype=np.float64).reshape(x.shape)


def norm_ppf(p: float) -> float:
    return _STD_NORMAL.inv_cdf(p)


def psr(m: Moments, benchmark=0.0) -> np.ndarray:
    """Probabilistic Sharpe ratio against ``benchmark`` (a scalar or one per combination)."""
    sr = m.sharpe
    g3, g4 = m.skew, m.kurtosis
    T = m.T.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rad = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
        z = (sr - benchmark) * np.sqrt(T - 1.0) / np.sqrt(rad)
    ok = (m.T >= 3) & np.isfinite(sr) & (rad > 0) & np.isfinite(z)
    return np.where(ok, norm_cdf(np.where(ok, z, 0.0)), np.nan)


def expected_max_sharpe(V: float, N: int) -> float:
    """SR0: the expected maximum of N Sharpe ratios whose variance is V, under no skill."""
    if not (2 <= N <= 1e15 and V == V and V >= 0):  # past 1e15, 1 - 1/N rounds to 1
        return math.nan
    return math.sqrt(V) * ((1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / N)
                           + EULER_GAMMA * norm_ppf(1.0 - 1.0 / (N * math.e)))


@dataclass(frozen=True)
class Deflated:
    psr: np.ndarray
    dsr: np.ndarray
    sharpe: np.ndarray  # non-annualised, NaN when undefined
    V: float  # variance of the defined Sharpe ratios (NaN with fewer than 2)
    N: int
    SR0: float


def deflated_sharpe(m: Moments, trials: int | None = None, keep: np.ndarray | None = None) -> Deflated:
    """PSR against 0 and DSR against SR0 for every combination; N = ``trials`` or the combinations.
    ``keep``: the combinations whose Sharpe ratios make V (default all; duplicates left out)."""
    sr = m.sharpe
    defined = sr[np.isfinite(sr) & (True if keep is None else np.asarray(keep, dtype=bool))]
    V = float(np.var(defined, ddof=1)) if len(defined) >= 2 else math.nan
    N = int(trials) if trials is not None else len(sr)
    sr0 = expected_max_sharpe(V, N)
    dsr = psr(m, sr0) if sr0 == sr0 else np.full(len(sr), np.nan)
    return Deflated(psr=psr(m), dsr=dsr, sharpe=sr, V=V, N=N, SR0=sr0)
