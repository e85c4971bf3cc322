"""The experiment config: read once, checked against one table of keys, frozen.

* :mod:`.read` and :mod:`.safe_yaml`: the file, read defensively;
* :mod:`.schema`: every key with its type, range, default and meaning;
* :mod:`.parse`: a document checked against the table into a :class:`Config`;
* :mod:`.model`: the frozen dataclasses;
* :mod:`.effective`: the effective config, defaults marked (``backtest validate-config``).

The grid is not part of the config: its caller expands it (``engine.grid.build_grid``).
"""

from .effective import effective_config
from ..data.spec import DataSpec
from .model import (Config, CscvConfig, LimitsConfig, ReportConfig, Span, StrategyGrid, ValidationConfig,
                    WalkForwardConfig)
from .parse import DEFAULT_CONFIG, load_config, parse_config, parse_config_text
from .read import decode_config, read_config_bytes

__all__ = ["Config", "CscvConfig", "DataSpec", "LimitsConfig", "ReportConfig", "Span", "StrategyGrid",
           "ValidationConfig", "WalkForwardConfig", "DEFAULT_CONFIG", "load_config", "parse_config",
           "parse_config_text", "decode_config", "read_config_bytes", "effective_config"]
