"""What one simulated combination produces, on either engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .trade import Trade


@dataclass(frozen=True)
class RunResult:
    equity: np.ndarray  # E[0] = capital, E[i] = equity at the close of bar i-1
    trades: list[Trade]
    metrics: dict
