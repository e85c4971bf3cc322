"""Exceptions that the CLI turns into a one-line message and exit code 2."""

import reprlib

_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6
_short.maxlevel = 3


def shown(value) -> str:
    """``repr`` cut to a few dozen characters: messages stay one short line whatever the value."""
    return _short.repr(value)


class UserError(Exception):
    """Bad input from the user: config, data file, HTTP answer or argument."""


class ConfigError(UserError):
    """The YAML config is invalid."""


class DataError(UserError):
    """A candle file or dataset is unreadable or breaks a validation rule."""


class ResourceError(UserError):
    """The input needs more than the machine can give: disk space, memory, file size."""


class StrategyError(Exception):
    """A strategy's own code failed during a run (its rule raised): one line, exit code 1."""
