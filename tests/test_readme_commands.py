"""Every ``backtest`` command in README.md runs as written, in README order, from the root of a fresh
clone (a folder holding only the repository's tracked files); each exits 0 and prints lines of at
most 120 columns. The commands that need the network or a deployed AWS stack are listed below,
each with its reason, and must still be in the README. The README's printed samples are what the
default config prints today.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from fakes.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 120

#: Commands not run here (matched on their start), with the reason.
EXCLUDED = {
    "backtest data backfill": "downloads monthly/daily zips from data.binance.vision (network)",
    "backtest data fetch": "pages Binance's REST API (network)",
    "backtest data build --market um --kind funding --input BTCUSDT-fundingRate":
        "reads a fundingRate zip downloaded from data.binance.vision (network)",
    "backtest data sync s3://BUCKET/": "copies from a deployed stack's bucket (S3)",
    "backtest submit": "submits to AWS Batch (a deployed stack)",
    "backtest status": "reads an AWS Batch run (a deployed stack)",
    "backtest results": "downloads an AWS Batch run from S3 (a deployed stack)",
}
#: The usage synopsis (``backtest run [--config FILE] ...``): placeholders, not a command.
PLACEHOLDER = re.compile(r"\[|\b(FILE|PATH|DIR|RUN_A|RUN_B|RUN_ID)\b")


def code_blocks(text: str) -> list[str]:
    """The bodies of the fenced code blocks, in order."""
    blocks, body = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if body is None:
                body = []
            else:
                blocks.append("\n".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return blocks


def readme_commands(text: str) -> list[str]:
    """Every ``backtest ...`` line of a code block (a ``$ `` prompt dropped, ``\\`` continuations joined)."""
    out = []
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("backtest "):
                out.append(line)
    return out


def fresh_clone(tmp_path: Path, monkeypatch) -> Path:
    """A folder with the repository's tracked top-level entries (and nothing a developer made here)."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    top = sorted({line.split("/", 1)[0] for line in tracked.stdout.splitlines() if line})
    assert "samples" in top and "configs" in top
    work = tmp_path / "clone"
    work.mkdir()
    for name in top:
        (work / name).symlink_to(ROOT / name)
    monkeypatch.chdir(work)
    return work


def test_readme_commands_parse():
    """The parser sees continuations, prompts and comments as a reader does."""
    text = "x\n```bash\n$ backtest runs\nbacktest data build --input a \\\n    --out data   # or: b\necho\n```\n"
    assert readme_commands(text) == ["backtest runs", "backtest data build --input a      --out data   # or: b"]
    assert shlex.split(readme_commands(text)[1], comments=True) == ["backtest", "data", "build", "--input", "a",
                                                                   "--out", "data"]


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    fresh_clone(tmp_path, monkeypatch)
    commands = readme_commands((ROOT / "README.md").read_text())
    ran, skipped = [], set()
    for line in commands:
        excluded = next((k for k in EXCLUDED if line.startswith(k)), None)
        if excluded:
            skipped.add(excluded)
            continue
        if PLACEHOLDER.search(line):
            continue
        code, out, err = run_cli(shlex.split(line, comments=True)[1:], capsys)
        assert code == 0, f"{line}\n{err}"
        wide = [x for x in out.splitlines() if len(x) > WIDTH]
        assert not wide, f"{line}: lines over {WIDTH} columns:\n" + "\n".join(wide)
        ran.append(line)
    assert skipped == set(EXCLUDED), f"listed as excluded but no longer in the README: {set(EXCLUDED) - skipped}"
    # the sample files, both built datasets, the synthetic universe and the perp config all ran
    assert any("--config configs/perp.yaml" in x for x in ran) and any("configs/universe.yaml" in x for x in ran)
    assert sum(x.startswith("backtest data build") for x in ran) >= 3 and any(x == "backtest runs" for x in ran)
    assert len(ran) >= 12


def _mask(text: str) -> str:
    """Run ids and creation minutes: what differs between two runs of the same config."""
    text = re.sub(r"sma_crossover_default-\d{8}-\d{6}-[0-9a-f]{6}", "RUN_ID", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d$", "CREATED", text, flags=re.M)


def test_readme_samples_are_what_the_default_config_prints(tmp_path, monkeypatch, capsys):
    """The printed top 5 and validation block of `make run`, and `backtest runs` after it, as the
    README shows them (run id and time masked); every line fits in 120 columns."""
    fresh_clone(tmp_path, monkeypatch)
    blocks = code_blocks((ROOT / "README.md").read_text())
    (printed,) = [b for b in blocks if b.startswith("Top 5 of 64 by sharpe")]
    (listing,) = [b for b in blocks if b.startswith("$ backtest runs")]

    code, out, err = run_cli(["run", "--no-progress"], capsys)  # `make run`: the default config
    assert code == 0, err
    assert _mask(out.strip()) == _mask(printed.strip())
    assert all(len(x) <= WIDTH for x in out.splitlines())
    code, out, err = run_cli(["runs"], capsys)
    assert code == 0, err
    assert _mask(out.strip()) == _mask(listing.removeprefix("$ backtest runs").strip())
    assert all(len(x) <= WIDTH for x in out.splitlines())
