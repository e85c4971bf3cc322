"""Call ``engine.cli.main`` in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

import sys
import types


def _ensure_cli_importable() -> None:
    # engine/cli/__init__.py imports engine.cli.run, which the engine lead owns; until it
    # exists, a stub keeps the data commands testable.
    try:
        import engine.cli.run  # noqa: F401
    except ImportError:
        import engine.cli

        stub = types.ModuleType("engine.cli.run")
        stub.register = lambda sub: None
        sys.modules["engine.cli.run"] = stub
        engine.cli.run = stub


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    _ensure_cli_importable()
    from engine.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
