"""Strategy registry: config names to classes, each checked when it is loaded."""

from __future__ import annotations

from ..errors import ConfigError
from ..signals import ENTER_LONG, ENTER_SHORT, ENTRY, EXIT, EXIT_LONG, EXIT_SHORT
from .base import POSITION_FIELDS, PRICES, Binding, Bound, Constraint, Strategy, did_you_mean
from .bollinger_reversion import BollingerReversion
from .donchian_breakout import DonchianBreakout
from .ma_crossover import MACrossover
from .rsi_reversion import RSIReversion

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (MACrossover, RSIReversion, DonchianBreakout,
                                                                  BollingerReversion)}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator that makes a user strategy available to configs by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    cls.binding()
    REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """A registered name, or ``package.module:ClassName`` for a user strategy; its rule binding checked."""
    if name in REGISTRY:
        cls = REGISTRY[name]
    elif ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"strategies: cannot import strategy {name!r} ({exc})") from None
        except Exception as exc:  # the module itself failed: a plugin's error is the user's to fix
            raise ConfigError(f"strategies: importing {name!r} failed: {type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
            raise ConfigError(f"strategies: {name!r} is not a Strategy subclass with a name")
    else:
        raise ConfigError(f"strategies: unknown strategy {name!r}{did_you_mean(name, REGISTRY)}; expected one of "
                          f"{', '.join(sorted(REGISTRY))} or package.module:ClassName")
    cls.binding()
    REGISTRY.setdefault(cls.name, cls)  # reports look strategies up by name
    return cls


__all__ = ["ENTRY", "EXIT", "ENTER_LONG", "EXIT_LONG", "ENTER_SHORT", "EXIT_SHORT", "PRICES", "POSITION_FIELDS",
           "Binding", "Bound", "Constraint", "Strategy", "REGISTRY", "register", "get_strategy", "MACrossover",
           "RSIReversion", "DonchianBreakout", "BollingerReversion"]
