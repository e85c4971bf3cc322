"""An honest count of trials: duplicate series and effective trials on constructed returns."""

from __future__ import annotations

import numpy as np

from engine.validation.trials import distinct, duplicate_of, effective_trials


def test_duplicate_of_points_at_the_lowest_identical_row():
    f = np.array([[1.0, 2.0], [3.0, np.nan], [1.0, 2.0], [3.0, np.nan], [1.0, 2.5], [-0.0, 0.0], [0.0, 0.0]])
    assert duplicate_of(f).tolist() == [0, 1, 0, 1, 4, 5, 5]
    assert distinct(duplicate_of(f)).tolist() == [0, 1, 4, 5]


def test_effective_trials_counts_constructed_clusters():
    rng = np.random.default_rng(7)
    T = 2_000
    bases = rng.standard_normal((3, T))  # three independent sources: correlations near 0
    series = []
    for k in range(3):  # each source with 4 near-copies: ρ = 1/√(1 + 0.3²) ≈ 0.958 with their source
        series += [bases[k] + 0.3 * rng.standard_normal(T) for _ in range(4)]
    series.append(np.zeros(T))  # flat: a cluster of its own
    series.append(np.zeros(T))
    assert effective_trials(series) == 4
    # noise of 1.0: ρ ≈ 0.5 with the source and ≈ 0.5 between copies, below 0.8: every series its own trial
    loose = [bases[0] + rng.standard_normal(T) for _ in range(5)]
    assert effective_trials(loose) == 5
    # the threshold decides: at ρ ≥ 0.4 the loose copies are one cluster
    assert effective_trials(loose, rho=0.4) == 1
    # a series and its negative are different trials (ρ = -1)
    assert effective_trials([bases[0], -bases[0]]) == 2
