"""Research validity: out-of-sample evidence for a sweep.

One module per concern, all pure (NumPy arrays in, NumPy arrays or frozen
dataclasses out):

* ``config``  -- the optional ``validation`` config section (frozen dataclasses)
* ``windows`` -- bar windows: the holdout cut, walk-forward folds, CSCV blocks
* ``plan``    -- the section resolved against the loaded data (bar counts, checks)
* ``cscv``    -- probability of backtest overfitting by combinatorially symmetric
  cross-validation, from per-block sufficient statistics
* ``sharpe_stats`` -- streamed moments, probabilistic and deflated Sharpe ratios
* ``rank_stats`` -- average ranks and the Spearman correlation
"""
