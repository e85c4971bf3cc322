"""Strategy registry: config names to classes."""

from __future__ import annotations

from ..errors import ConfigError
from .base import ENTRY, EXIT, Action, Bound, Constraint, Strategy
from .donchian_breakout import DonchianBreakout
from .ma_crossover import MACrossover
from .rsi_reversion import RSIReversion

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (MACrossover, RSIReversion, DonchianBreakout)}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator that makes a user strategy available to configs by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """A registered name, or ``package.module:ClassName`` for a user strategy."""
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
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
        REGISTRY.setdefault(cls.name, cls)  # reports look strategies up by name
        return cls
    raise ConfigError(f"strategies: unknown strategy {name!r}; expected one of {', '.join(sorted(REGISTRY))} "
                      "or package.module:ClassName")


__all__ = ["ENTRY", "EXIT", "Action", "Bound", "Constraint", "Strategy", "REGISTRY", "register", "get_strategy",
           "MACrossover", "RSIReversion", "DonchianBreakout"]
