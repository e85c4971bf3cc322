"""Where a ``data.market: um`` run's series come from, when not synthetic."""

from __future__ import annotations

from ..candles import Candles
from ..errors import DataError
from .spec import DataSpec


def load_perp(spec: DataSpec, start: int | None, end: int | None) -> Candles:
    """Perp datasets (trade klines, mark klines and funding under ``um/``) are not readable yet:
    a spot dataset or candle file run with ``market: um`` is refused before any work."""
    raise DataError(f"data.market: um, but {spec.source} holds spot candles with no mark klines or funding; "
                    "a perp run needs a perp dataset (or source: synthetic)")
