"""Call ``backtest_cli.main`` in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

from backtest_cli import main


def run_cli(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
