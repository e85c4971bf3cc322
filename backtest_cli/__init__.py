"""The ``backtest`` command.

Each sub-module registers its sub-commands; every handler parses its arguments
once and calls the engine. User errors (config, data, HTTP answers, arguments)
end with one line on stderr and exit code 2; anything else is an internal error
(exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.child_process import count_interrupts
from engine.errors import StrategyError, UserError

from .caches import ensure_writable_caches

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a one-line user error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from . import cloud, data, run, runs

    parser = _Parser(prog="backtest", description="Config-driven grid backtester for Binance candles.")
    parser.add_argument("--debug", action="store_true", help="on an error, also print the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run.register(sub)
    runs.register(sub)
    data.register(sub)
    cloud.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _import_from_cwd()
    count_interrupts()  # a Ctrl-C that numpy or pandas swallows still stops a run before it is published
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # a global flag, read before the rest so a failure in parsing obeys it too
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as exc:
        _traceback(debug)
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER
    except StrategyError as exc:  # the user's strategy code failed during the run
        _traceback(debug)
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _traceback(debug: bool) -> None:
    """With ``--debug``, the full traceback (the user's code included) before the one-line error."""
    if debug:
        import traceback

        traceback.print_exc()


def _import_from_cwd() -> None:
    """Make the current folder importable: ``strategies: {mypkg.strategies:TrendRSI: …}`` then finds ``./mypkg``.

    It goes last on ``sys.path``, so a file in the current folder never shadows an installed package.
    (Naming a strategy by path runs that module's code, as any plugin does.)"""
    try:
        cwd = os.getcwd()
    except OSError:  # the folder was deleted under us: nothing to import from it
        return
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def one_line(message: str, limit: int = 1000) -> str:
    """A message as one line of at most ``limit`` characters (a path or value may hold newlines); a long one
    loses its middle, so the problem and the fix at its end survive a very long path."""
    text = " ".join(message.split("\n")).replace("\r", " ")
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + "…" + text[len(text) - (limit - head - 1):]


def console() -> None:
    """The console script: ``main``, then leave without tearing the interpreter down.

    Every file is closed and every worker joined by then; the teardown (unloading
    numba's compiled code, freeing pandas' and matplotlib's objects) took ~0.4 s of a
    ~5 s ``backtest run``.
    """
    try:
        ensure_writable_caches()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        os._exit(EXIT_USER)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
