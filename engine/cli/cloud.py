"""``backtest submit|status|results|batch …``: AWS Batch sweeps. (Filled in by the AWS work.)"""

from __future__ import annotations


def register(sub) -> None:
    return None
