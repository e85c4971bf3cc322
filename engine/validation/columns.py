"""Per-combination inputs to the validation figures, in grid order.

A local sweep produces them in one piece; on Batch each shard produces its slice and
``reduce`` concatenates them. They travel inside a shard's Parquet file as extra
columns (prefix ``_v.``), which float64 Parquet stores exactly, so ``reduce`` computes
the same figures, bit for bit, as a local run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PREFIX = "_v."


@dataclass(frozen=True)
class ValidationColumns:
    """Everything the validation figures need from the sweep, one row per combination.

    ``power_sums[c]`` = Σr, Σr², Σr³, Σr⁴ over the in-sample window;
    ``block_r``/``block_r2`` = Σr, Σr² per CSCV block (None without CSCV);
    ``holdout_power_sums`` and ``holdout_rank`` (the ``rank_by`` metric on the holdout
    window) exist with a holdout; ``fold_power_sums[f]``, ``fold_rank[f]`` and
    ``fold_cagr[f]`` on walk-forward fold f's train window.
    """

    power_sums: np.ndarray  # (C, 4)
    block_r: np.ndarray | None = None  # (C, S)
    block_r2: np.ndarray | None = None
    holdout_power_sums: np.ndarray | None = None  # (C, 4)
    holdout_rank: np.ndarray | None = None  # (C,)
    fold_power_sums: np.ndarray | None = None  # (F, C, 4)
    fold_rank: np.ndarray | None = None  # (F, C)
    fold_cagr: np.ndarray | None = None  # (F, C)

    def __len__(self) -> int:
        return len(self.power_sums)

    def to_frame(self) -> pd.DataFrame:
        """The columns as a flat frame (one row per combination), for a shard file."""
        cols: dict[str, np.ndarray] = {}
        _put(cols, "ps", self.power_sums)
        _put(cols, "br", self.block_r)
        _put(cols, "br2", self.block_r2)
        _put(cols, "hps", self.holdout_power_sums)
        if self.holdout_rank is not None:
            cols[f"{PREFIX}hrank"] = self.holdout_rank
        if self.fold_power_sums is not None:
            for f in range(len(self.fold_power_sums)):
                _put(cols, f"f{f}.ps", self.fold_power_sums[f])
                cols[f"{PREFIX}f{f}.rank"] = self.fold_rank[f]
                cols[f"{PREFIX}f{f}.cagr"] = self.fold_cagr[f]
        return pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in cols.items()})

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "ValidationColumns":
        """Inverse of :meth:`to_frame` (other columns are ignored)."""
        names = [c for c in df.columns if str(c).startswith(PREFIX)]
        parts = [c[len(PREFIX):].split(".") for c in names]
        folds = sorted(int(p[0][1:]) for p in parts if len(p) == 2 and p[1] == "rank")  # "f<k>.rank"
        hrank = df[f"{PREFIX}hrank"].to_numpy(np.float64) if f"{PREFIX}hrank" in df else None
        return cls(
            power_sums=_get(df, "ps"),
            block_r=_get(df, "br"),
            block_r2=_get(df, "br2"),
            holdout_power_sums=_get(df, "hps"),
            holdout_rank=hrank,
            fold_power_sums=np.stack([_get(df, f"f{f}.ps") for f in folds]) if folds else None,
            fold_rank=np.stack([df[f"{PREFIX}f{f}.rank"].to_numpy(np.float64) for f in folds]) if folds else None,
            fold_cagr=np.stack([df[f"{PREFIX}f{f}.cagr"].to_numpy(np.float64) for f in folds]) if folds else None,
        )

    @staticmethod
    def strip(df: pd.DataFrame) -> pd.DataFrame:
        """``df`` without the validation columns."""
        return df[[c for c in df.columns if not str(c).startswith(PREFIX)]]


def concat(parts: list[ValidationColumns]) -> ValidationColumns:
    """The slices of several shards, in order."""
    def cat(name: str, axis: int = 0):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values, axis=axis)

    return ValidationColumns(power_sums=cat("power_sums"), block_r=cat("block_r"), block_r2=cat("block_r2"),
                             holdout_power_sums=cat("holdout_power_sums"), holdout_rank=cat("holdout_rank"),
                             fold_power_sums=cat("fold_power_sums", 1), fold_rank=cat("fold_rank", 1),
                             fold_cagr=cat("fold_cagr", 1))


def _put(cols: dict, name: str, matrix: np.ndarray | None) -> None:
    if matrix is None:
        return
    for k in range(matrix.shape[1]):
        cols[f"{PREFIX}{name}.{k}"] = matrix[:, k]


def _get(df: pd.DataFrame, name: str) -> np.ndarray | None:
    cols = []
    k = 0
    while f"{PREFIX}{name}.{k}" in df:
        cols.append(df[f"{PREFIX}{name}.{k}"].to_numpy(np.float64))
        k += 1
    return np.column_stack(cols) if cols else None
