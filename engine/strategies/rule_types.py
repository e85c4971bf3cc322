"""A user rule compiled once at load for the types the engines feed it, its return type checked.

Both engines call the rule with floats for prices, indicators and the position view's prices,
integers for ``position``, ``bars_held`` and integer parameters, and booleans for boolean ones;
the code it returns must be an integer. A rule that does not compile for these types (a typing
error) or returns something else (a float, an array) is a one-line :class:`ConfigError` at load,
in ``validate-config`` too, rather than numba's many-line report in the middle of a run. The
compile is numba's own (``cache=True`` rules keep it), so the fast path reuses it.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_INT_FIELDS = {"position", "bars_held"}


def argument_types(cls) -> tuple:
    from numba import types

    specs = cls.param_specs()
    out = []
    for source, name in cls.binding().arguments:
        if source == "param":
            ptype = specs[name][0]
            out.append(types.boolean if ptype is bool else types.int64 if ptype is int else types.float64)
        elif source == "position" and name in _INT_FIELDS:
            out.append(types.int64)
        else:
            out.append(types.float64)
    return tuple(out)


def check_rule_types(cls) -> None:
    """Compile ``cls``'s rule for the engines' argument types; ConfigError unless it returns an integer."""
    from numba import types
    from numba.core.errors import NumbaError

    rule = cls.binding().rule
    where = f"strategies.{cls.name}"
    fn = rule.py_func.__name__
    sig = argument_types(cls)
    try:
        rule.compile(sig)
    except NumbaError as exc:
        raise ConfigError(f"{where}: rule {fn} does not compile for the engines' argument types "
                          f"({', '.join(map(str, sig)) or 'none'}): {_first_line(str(exc))}") from exc
    ret = rule.overloads[sig].signature.return_type
    if isinstance(ret, types.Boolean) or not isinstance(ret, types.Integer):
        raise ConfigError(f"{where}: rule {fn} returns {ret}; a rule returns an integer, a bitwise OR of "
                          "ENTER_LONG, EXIT_LONG, ENTER_SHORT and EXIT_SHORT (0 for no signal)")


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in _ANSI.sub("", message).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("During:", "File ", "^"))]
    text = (useful or lines or ["typing error"])[0]
    return text if len(text) <= 240 else text[:239] + "…"
