"""What can be checked of the image without building it (`make image-check` builds and runs it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from backtest_cli import main
from backtest_cli.caches import CACHE_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
_UNCOMMENTED = "\n".join(line for line in DOCKERFILE.splitlines() if not line.startswith("#"))
INSTRUCTIONS = [" ".join(line.split()) for line in re.sub(r"\\\n", " ", _UNCOMMENTED).splitlines() if line.strip()]
DOCKERIGNORE = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]


def _instr(name: str) -> list[str]:
    return [line[len(name) + 1:].strip() for line in INSTRUCTIONS if line.startswith(name + " ")]


def _env() -> dict[str, str]:
    (env,) = _instr("ENV")
    return dict(re.findall(r"(\w+)=(\S+)", env))


def test_base_is_python_3_11_slim_unless_a_stand_in_is_given():
    assert _instr("ARG") == ["BASE=python:3.11-slim"]
    assert _instr("FROM") == ["${BASE}"]
    assert INSTRUCTIONS.index("ARG BASE=python:3.11-slim") < INSTRUCTIONS.index("FROM ${BASE}")


def test_dependencies_are_a_layer_of_their_own_before_the_code():
    copies = _instr("COPY")
    assert copies[0] == "requirements.txt ./"
    run_pip = next(i for i, line in enumerate(INSTRUCTIONS) if "pip install -r requirements.txt" in line)
    first_code = min(INSTRUCTIONS.index(f"COPY {d}/ {d}/") for d in ("engine", "batch_jobs", "backtest_cli"))
    assert INSTRUCTIONS.index("COPY requirements.txt ./") < run_pip < first_code


def test_every_copy_source_exists_and_is_in_the_build_context():
    for args in _instr("COPY"):
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} is missing"
            assert not _ignored(src.rstrip("/") + ("/x.py" if src.endswith("/") else ""), DOCKERIGNORE), src


def test_warmup_compiles_into_the_image_for_a_portable_cpu():
    env = _env()
    assert env["NUMBA_CPU_NAME"] == "generic"  # the cache key must not depend on the build machine's CPU
    warm = DOCKERFILE.index("python -m engine.fast.warmup")
    assert DOCKERFILE.index("COPY engine/ engine/") < warm < DOCKERFILE.index("\nUSER ")


def test_runs_as_uid_10001_in_group_0_with_group_writable_caches_and_volumes():
    assert _instr("USER") == ["10001:0"]
    assert json.loads(_instr("VOLUME")[0]) == ["/app/data", "/app/results"]
    env = _env()
    assert set(CACHE_VARIABLES) <= set(env)  # the variables the CLI keeps writable for other uids
    caches = [env[v] for v in CACHE_VARIABLES]
    assert all(c.startswith("/opt/backtest/cache/") for c in caches)
    setup = DOCKERFILE[DOCKERFILE.index("useradd"):DOCKERFILE.index("\nUSER ")]
    assert "--uid 10001 --gid 0" in setup
    assert "chown -R 10001:0 /opt/backtest /app/results" in setup
    assert "chmod -R g=u /opt/backtest /app/results" in setup  # OpenShift: arbitrary uid, group 0
    assert setup.index("engine.fast.warmup") < setup.index("chown")  # what warmup wrote changes hands too


def test_requirements_are_runtime_only():
    names = {re.split(r"[=<>\[ ]", line)[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"numpy", "pandas", "pyarrow", "numba", "matplotlib", "awswrangler", "boto3"} <= names
    assert not names & {"aws-cdk-lib", "constructs", "cdk-nag", "pytest", "moto", "hypothesis", "cfn-lint"}


def _pattern(pat: str) -> re.Pattern:
    """Docker's .dockerignore pattern (Go filepath.Match, plus ``**``); ``a`` also matches ``a/…``."""
    out, i = "", 0
    pat = pat.strip("/")
    while i < len(pat):
        if pat.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pat[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pat[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pat[i]), i + 1
    return re.compile(out + "(?:/.*)?$")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    verdict = False
    for pat in patterns:
        if _pattern(pat.lstrip("!")).match(path):
            verdict = not pat.startswith("!")
    return verdict


def test_build_context_is_the_code_and_nothing_else():
    for path in ("README.md", "Makefile", "cdk.json", "cdk_app.py", ".ci/run", ".git/HEAD", "tests/test_docker.py",
                 "bench/run.py", "docs/semantics.md", "stacks/batch_stack.py", "lambdas/ingest/worker.py",
                 "scripts/image_check.sh", ".venv/bin/python", "node_modules/aws-cdk/package.json", "cdk.out/x",
                 "results/run/summary.csv", "data/symbol=BTCUSDT/x", "engine/__pycache__/x.pyc",
                 "backtest_engine.egg-info/PKG-INFO", "package.json", "requirements-dev.txt"):
        assert _ignored(path, DOCKERIGNORE), path
    for path in ("engine/fast/kernel.py", "engine/data/dataset.py", "backtest_cli/__init__.py",
                 "batch_jobs/shard.py", "configs/default.yaml", "requirements.txt", "pyproject.toml"):
        assert not _ignored(path, DOCKERIGNORE), path


def test_pattern_helper_follows_docker_semantics():
    assert _ignored("a/b.txt", ["*"]) and _ignored("a", ["*"])
    assert not _ignored("a/b.txt", ["*", "!a/"])
    assert _ignored("a/__pycache__/x.pyc", ["*", "!a/", "**/__pycache__"])
    assert not _ignored("x/y.txt", ["*.txt"])  # * does not cross a folder


def test_entrypoint_and_default_command_run_the_cli(tmp_path, capsys, monkeypatch):
    assert json.loads(_instr("ENTRYPOINT")[0]) == ["backtest"]
    cmd = json.loads(_instr("CMD")[0])
    assert cmd[0] == "run"
    # the image's WORKDIR is the repo root; results go to the /app/results volume, here a temp dir
    assert _instr("WORKDIR") == ["/app"]
    monkeypatch.chdir(ROOT)
    args = [str(tmp_path) if a == "/app/results" else a for a in cmd] + ["--no-progress"]
    assert main(args) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]  # index.html lies beside it
    assert len(pd.read_csv(run_dir / "summary.csv")) == 64
    assert (run_dir / "report.html").is_file() and (tmp_path / "index.html").is_file()
    assert "results:" in capsys.readouterr().out


def test_readme_docker_lines_are_the_ones_image_check_runs():
    """`make image-check` runs every `docker run` line of the README's Docker section verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Docker\n"):readme.index("\n## ", readme.index("## Docker\n") + 1)]
    joined = re.sub(r"\\\n\s*", " ", section)
    runs = [line for line in joined.splitlines() if line.startswith("docker run ")]
    assert len(runs) == 3
    assert all('--user "$(id -u):$(id -g)"' in r and '"$PWD/results:/app/results"' in r for r in runs)
    assert any("--read-only --tmpfs /tmp" in r for r in runs)
    assert any('"$PWD/data:/app/data:ro"' in r for r in runs)
    assert "docker run" in (ROOT / "scripts" / "image_check.sh").read_text()
