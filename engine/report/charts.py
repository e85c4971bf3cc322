"""PNG charts for ``report.png``, drawn on worker processes while the run folder is written.

A chart is a job ``(function, path, args, kwargs)``: the function's name in
``engine.report.plots`` (or ``module.function`` for another module of this package),
so jobs cross process boundaries as plain data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..child_process import bind_to_parent
from ..cpus import available_cpus
from ..filenames import file_name


def _draw(chart) -> None:
    """``chart`` = (function, path, args, kwargs); the function is in ``plots``, or named
    ``module.function`` for another module of this package (``validation_plots.plot_logits``)."""
    import importlib

    name, path, args, kwargs = chart
    module, _, function = name.rpartition(".")
    getattr(importlib.import_module(f"{__package__}.{module or 'plots'}"), function)(path, *args, **kwargs)


def _warm_worker(parent_pid: int) -> None:
    bind_to_parent(parent_pid)
    from . import plots

    plots.warm_up()


def _ping() -> None:
    return None


class ChartPool:
    """Renders charts on worker processes (or inline with one worker); raises any failure on exit.

    Open it early: its workers are forked at once and import matplotlib while this
    process is still sweeping (forking before numba starts its thread pool is also the
    safe order). It never starts more workers than there are CPUs to run them, and its
    workers die with this process, whatever kills it.
    """

    def __init__(self, workers: int):
        self.pool = None
        self.workers = workers = max(1, min(workers, available_cpus()))
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_warm_worker,
                                            initargs=(os.getpid(),))
            for _ in range(workers):
                self.pool.submit(_ping)
        self.futures = []

    def submit(self, chart) -> None:
        if self.pool is None:
            _draw(chart)
        else:
            self.futures.append(self.pool.submit(_draw, chart))

    def wait(self) -> None:
        """Block until every chart submitted so far is drawn; raise the first failure."""
        futures, self.futures = self.futures, []
        for future in futures:
            future.result()

    def close(self) -> None:
        """Drop the charts not started, wait for those being drawn, stop the workers. Idempotent."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.futures = []

    def __enter__(self) -> "ChartPool":
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.close()


def heatmaps(folder: Path, ranked: pd.DataFrame, metric: str, axes: dict[str, list[str]]) -> list:
    charts = []
    for name, cols in axes.items():
        group = ranked[ranked["strategy"] == name]
        if len(cols) >= 2:
            x, y = cols[0], cols[1]
            png = folder / f"heatmap_{file_name(f'{name}_{x}_x_{y}')}.png"
            charts.append(("heatmap.plot_heatmap", png, (group[[x, y, metric]],),
                           {"x": x, "y": y, "value": metric, "title": f"{name}: {metric} by {x} × {y}"}))
    return charts
