"""What can be checked of the image without a Docker engine."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pandas as pd

from backtest_cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.startswith("#")]


def _instr(name: str) -> list[str]:
    return [line[len(name) + 1:].strip() for line in INSTRUCTIONS if line.startswith(name + " ")]


def test_base_image_and_dependency_layer_order():
    assert _instr("FROM") == ["python:3.11-slim"]
    copies = _instr("COPY")
    assert copies[0] == "requirements.txt ./"
    first_code = next(i for i, c in enumerate(copies) if c.startswith("engine/"))
    run_pip = next(i for i, line in enumerate(INSTRUCTIONS) if "pip install -r requirements.txt" in line)
    copy_engine = INSTRUCTIONS.index("COPY engine/ engine/")
    assert run_pip < copy_engine and first_code > 0


def test_every_copy_source_exists():
    for args in _instr("COPY"):
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} is missing"


def test_runs_as_non_root_with_volumes_and_writable_caches():
    (user,) = _instr("USER")
    assert user not in ("root", "0")
    assert json.loads(_instr("VOLUME")[0]) == ["/app/data", "/app/results"]
    caches = dict(re.findall(r"(NUMBA_CACHE_DIR|MPLCONFIGDIR)=(\S+)", DOCKERFILE))
    assert set(caches) == {"NUMBA_CACHE_DIR", "MPLCONFIGDIR"}
    chown = DOCKERFILE[DOCKERFILE.index("chown"):DOCKERFILE.index("USER ")]
    for path in caches.values():
        assert path.startswith("/home/backtest/.cache")
    assert "/home/backtest/.cache" in chown and "/app/results" in chown and "/app/data" in chown
    # the user is created before it is switched to
    assert DOCKERFILE.index("useradd") < DOCKERFILE.index("USER ")


def test_requirements_are_runtime_only():
    names = {re.split(r"[=<>\[ ]", line)[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"numpy", "pandas", "pyarrow", "numba", "matplotlib", "awswrangler", "boto3"} <= names
    assert not names & {"aws-cdk-lib", "constructs", "cdk-nag", "pytest", "moto", "hypothesis", "cfn-lint"}


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything below it."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!")
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            verdict = not neg
    return verdict


def test_dockerignore_excludes_local_state_but_keeps_the_code():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", "cdk.out/manifest.json", "results/run/summary.csv", "data/symbol=BTCUSDT/x",
                 "node_modules/aws-cdk/package.json", ".git/HEAD", "engine/__pycache__/x.pyc"):
        assert _ignored(path, patterns), path
    for path in ("backtest_cli/__init__.py", "configs/default.yaml", "requirements.txt", "pyproject.toml",
                 "batch_jobs/shard.py"):
        assert not _ignored(path, patterns), path


def test_entrypoint_and_default_command_run_the_cli(tmp_path, capsys, monkeypatch):
    assert json.loads(_instr("ENTRYPOINT")[0]) == ["backtest"]
    cmd = json.loads(_instr("CMD")[0])
    assert cmd[0] == "run"
    # the image's WORKDIR is the repo root; results go to the /app/results volume, here a temp dir
    monkeypatch.chdir(ROOT)
    args = [str(tmp_path) if a == "/app/results" else a for a in cmd] + ["--no-progress"]
    assert main(args) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]  # index.html lies beside it
    assert len(pd.read_csv(run_dir / "summary.csv")) == 64
    assert (run_dir / "report.html").is_file() and (tmp_path / "index.html").is_file()
    assert "results:" in capsys.readouterr().out
