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


#: Keys of the validation sums in a sweep's metric columns (both engines produce them on a window):
#: Σr, Σr², Σr³, Σr⁴ per combination, and Σr, Σr² per CSCV block.
POWER_SUMS, BLOCK_R, BLOCK_R2 = "_power_sums", "_block_r", "_block_r2"
