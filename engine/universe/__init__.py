"""Universe sweeps: one config over many (symbol, interval) series.

* :mod:`.series`: the universe a config names, resolved against its data (one line on a bad one);
* :mod:`.runner`: every combination on every series through the run pipeline, each series loaded once;
* :mod:`.aggregate`: ``summary_by_series`` and the cross-series aggregates and ranking (pure);
* :mod:`.cross_pbo`: the cross-sectional PBO over splits of the series (pure);
The report of a universe run is ``engine.report.universe_*``; the run end to end ``engine.universe_experiment``.

The rules are docs/semantics.md's "Universe sweeps".
"""
