"""Exceptions that the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: config, data file, HTTP answer or argument."""


class ConfigError(UserError):
    """The YAML config is invalid."""


class DataError(UserError):
    """A candle file or dataset is unreadable or breaks a validation rule."""


class ResourceError(UserError):
    """The input needs more than the machine can give: disk space, memory, file size."""
