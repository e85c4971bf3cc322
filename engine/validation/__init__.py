"""Research validity: the statistics of out-of-sample evidence for a sweep.

One module per concern, all pure (NumPy arrays in, NumPy arrays or frozen
dataclasses out); nothing here simulates, reads or writes. The run pipeline
(``engine.pipeline``) feeds it, and ``engine.report`` presents what it finds.

* ``windows`` -- bar windows: the holdout cut, walk-forward folds, CSCV blocks
* ``plan``    -- the ``validation`` config section resolved against the data (bar counts, checks)
* ``columns`` -- the per-combination sums a sweep produces for the figures
* ``accumulate`` -- the same sums from a materialised equity curve (the reference engine's way)
* ``evaluate`` -- every figure from those sums (walk-forward's test runs injected)
* ``walk_forward`` -- each fold's choice, the stitched equity, efficiency
* ``cscv``    -- probability of backtest overfitting by combinatorially symmetric
  cross-validation, from per-block sufficient statistics
* ``sharpe_stats`` -- streamed moments, probabilistic and deflated Sharpe ratios
* ``rank_stats`` -- average ranks and the Spearman correlation
"""
