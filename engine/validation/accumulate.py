"""Sufficient statistics of a run's bar returns, from its materialised equity curve.

This is the reference engine's way (readable, from ``E``); the fast path streams the
same sums in its kernel without ever holding the returns. ``r[i] = E[i]/E[i-1] - 1``,
``i = 1..T``; CSCV block k holds returns ``[edges[k], edges[k+1])`` (0-based).
"""

from __future__ import annotations

import numpy as np


def bar_returns(equity: np.ndarray) -> np.ndarray:
    E = np.asarray(equity, dtype=np.float64)
    return E[1:] / E[:-1] - 1.0


def block_sums(equity: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σr and Σr² per block."""
    r = bar_returns(equity)
    e = np.asarray(edges, dtype=np.int64)
    s1 = np.array([r[e[k]:e[k + 1]].sum() for k in range(len(e) - 1)])
    s2 = np.array([(r[e[k]:e[k + 1]] ** 2).sum() for k in range(len(e) - 1)])
    return s1, s2


def power_sums(equity: np.ndarray) -> np.ndarray:
    """[Σr, Σr², Σr³, Σr⁴] over every return."""
    r = bar_returns(equity)
    r2 = r * r
    return np.array([r.sum(), r2.sum(), (r2 * r).sum(), (r2 * r2).sum()])
