"""Strategies by import path: ``package.module:ClassName`` is a strategy's key everywhere.

The built-ins also answer to their short names (``ma_crossover``), and only they do: a
user strategy is always named by its path, so it is never mistaken for a built-in,
whatever its ``name``. Every class is checked when it is loaded (its rule binding), so a
misspelt argument is a one-line config error, never a failure mid-run.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from ..signals import ENTER_LONG, ENTER_SHORT, EXIT_LONG, EXIT_SHORT
from .base import POSITION_FIELDS, PRICES, Binding, Bound, Constraint, Strategy, did_you_mean
from .bollinger_reversion import BollingerReversion
from .donchian_breakout import DonchianBreakout
from .ma_crossover import MACrossover
from .rsi_reversion import RSIReversion
from .rule_types import check_rule_types

BUILTINS: tuple[type[Strategy], ...] = (MACrossover, RSIReversion, DonchianBreakout, BollingerReversion)


def strategy_path(cls: type[Strategy]) -> str:
    """Where ``cls`` is defined, as a config names it: ``package.module:ClassName``."""
    return f"{cls.__module__}:{cls.__qualname__}"


#: Every strategy loaded so far, by import path (the built-ins from the start).
REGISTRY: dict[str, type[Strategy]] = {strategy_path(cls): cls for cls in BUILTINS}
#: The built-ins' short names: the only names that are not import paths.
ALIASES: dict[str, str] = {cls.name: strategy_path(cls) for cls in BUILTINS}


def get_strategy(key: str) -> type[Strategy]:
    """A built-in's short name, or ``package.module:ClassName``; its rule binding checked."""
    path = ALIASES.get(key, key)
    cls = REGISTRY.get(path)
    if cls is None:
        if ":" not in path:
            raise ConfigError(f"strategies: unknown strategy {key!r}{did_you_mean(key, ALIASES)}; expected one of "
                              f"{', '.join(sorted(ALIASES))} or package.module:ClassName")
        cls = _import(path)
        cls.binding()
        check_rule_types(cls)  # a user rule: its types, once, at load
    cls.binding()
    REGISTRY.setdefault(strategy_path(cls), cls)
    return cls


def _import(path: str) -> type[Strategy]:
    module, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"strategies: cannot import strategy {path!r} ({exc})") from None
    except Exception as exc:  # the module itself failed: a plugin's error is the user's to fix
        raise ConfigError(f"strategies: importing {path!r} failed: {type(exc).__name__}: {exc}") from exc
    except SystemExit as exc:  # sys.exit() on import would end the run silently, having run nothing
        raise ConfigError(f"strategies: importing {path!r} called sys.exit({exc.code!r}); a strategy module must "
                          "not exit") from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
        raise ConfigError(f"strategies: {path!r} is not a Strategy subclass with a name")
    return cls


__all__ = ["ENTER_LONG", "EXIT_LONG", "ENTER_SHORT", "EXIT_SHORT", "PRICES", "POSITION_FIELDS", "Binding", "Bound",
           "Constraint", "Strategy", "BUILTINS", "REGISTRY", "ALIASES", "get_strategy", "strategy_path",
           "did_you_mean", "MACrossover", "RSIReversion", "DonchianBreakout", "BollingerReversion"]
