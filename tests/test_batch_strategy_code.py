"""A user strategy named by path on AWS Batch: ``submit`` uploads its modules with the run, and the
shard and reduce jobs import them from there (moto server; each job its own OS process, started
from a folder that cannot see the user's package, as a container built without it would be).

Also the pieces: what is packed, what is refused before anything is submitted, and what a
job refuses (an archive that is not the one recorded, entries that are not plain paths, a
strategy module that an installed package shadows).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from batch_jobs import strategy_code as sc
from engine.data.dataset import upsert_candles
from engine.errors import UserError
from fakes.cli_process import command
from fakes.moto_server import aws, moto_aws  # noqa: F401  (fixtures)
from fakes.reports import stable_tree

REPO = Path(__file__).resolve().parent.parent
N = 2

RULES = """\
from numba import njit

from engine.strategies import ENTER_LONG, EXIT_LONG

from .levels import NEUTRAL


@njit(cache=True)
def cross(fast_sma, slow_sma):
    if fast_sma > slow_sma:
        return ENTER_LONG
    if fast_sma < slow_sma:
        return EXIT_LONG
    return NEUTRAL
"""
LEVELS = "NEUTRAL = 0\n"
STRATEGY = """\
from engine.indicators import SMA
from engine.strategies import Bound, Constraint, Strategy

from .rules import cross


class Cross(Strategy):
    # named like a built-in on purpose: keyed by its path, it is never taken for ma_crossover
    name = "ma_crossover"
    fast: int = 5
    slow: int = 30
    indicators = {"fast_sma": SMA("fast"), "slow_sma": SMA("slow")}
    signal = staticmethod(cross)
    bounds = {"fast": Bound(1), "slow": Bound(2)}
    constraints = (Constraint("fast < slow", lambda s: s.fast < s.slow),)
"""
CONFIG = """\
experiment: {{name: user_code}}
data: {{source: "s3://{bucket}/candles/", symbol: BTCUSDT, interval: 15m, start: "2023-01-15", end: "2023-03-01"}}
risk: {{stop_loss: [0.02, 0.05]}}
strategies:
  crosspkg.strategy:Cross: {{fast: [5, 10], slow: [30, 60]}}
report: {{top_k: 2}}
"""
FILES = ["crosspkg/__init__.py", "crosspkg/levels.py", "crosspkg/rules.py", "crosspkg/strategy.py"]


def write_package(folder: Path) -> Path:
    pkg = folder / "crosspkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A user strategy package."""\n')
    (pkg / "levels.py").write_text(LEVELS)
    (pkg / "rules.py").write_text(RULES)
    (pkg / "strategy.py").write_text(STRATEGY)
    return folder


def console(aws, args: list, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(args), cwd=cwd, env=aws.subprocess_env(**env), capture_output=True, text=True,
                          timeout=600)


def test_user_strategy_modules_travel_with_the_run_and_jobs_import_them(aws, tmp_path, capsys, monkeypatch):
    """The user's commands (submit, run) and the jobs run as OS processes; the download and the refused
    shard (which fail or succeed before any user code is involved) run in this process."""
    from backtest_cli import main
    from engine.data.synthetic import generate_candles

    work = write_package(tmp_path / "work")
    bucket = aws.new_bucket()
    upsert_candles(f"s3://{bucket}/candles/", "BTCUSDT", "15m", generate_candles(8_000, seed=7).to_frame())
    res = aws.batch_resources(bucket)
    (work / "sweep.yaml").write_text(CONFIG.format(bucket=bucket))

    done = console(aws, ["submit", "--config", "sweep.yaml", "--array-size", N, "--bucket", bucket, "--job-queue",
                         res.job_queue, "--job-definition", res.job_definition], work)
    assert done.returncode == 0, done.stderr
    run_id = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("run: "))
    s3, batch = aws.client("s3"), aws.client("batch")
    archive = s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/strategies.zip")["Body"].read()
    sha = hashlib.sha256(archive).hexdigest()
    assert f"strategy code: 4 file(s) for crosspkg.strategy (sha256 {sha[:16]}…)" in done.stdout
    assert sorted(zipfile.ZipFile(io.BytesIO(archive)).namelist()) == FILES  # the helpers it imports too
    sub = json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/submission.json")["Body"].read())
    assert sub["strategy_code"] == {"uri": f"s3://{bucket}/runs/{run_id}/strategies.zip", "sha256": sha,
                                    "files": FILES, "modules": ["crosspkg.strategy"]}
    job = batch.describe_jobs(jobs=[sub["shard_job_id"]])["jobs"][0]
    env = {e["name"]: e["value"] for e in job["container"]["environment"] if e["name"] != "AWS_BATCH_JOB_ID"}
    assert (env["CODE_URI"], env["CODE_SHA256"]) == (sub["strategy_code"]["uri"], sha)

    # The jobs run from the repository (the image's /app): crosspkg is nowhere on their path but in the upload.
    job_tmp = tmp_path / "job-tmp"
    job_tmp.mkdir()
    shards = [subprocess.Popen(command(["batch", "shard"]), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=aws.subprocess_env(**env, AWS_BATCH_JOB_ARRAY_INDEX=str(i),
                                                                 TMPDIR=str(job_tmp)))
              for i in range(N)]
    for p in shards:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    unpacked = job_tmp / "backtest-runs" / run_id / f"strategies-{sha[:16]}"
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.py")) == FILES
    reduce_env = {k: env[k] for k in ("RUN_ID", "BUCKET_NAME", "CONFIG_URI", "ARRAY_SIZE", "CODE_URI", "CODE_SHA256")}
    done = console(aws, ["batch", "reduce"], REPO, **reduce_env, TMPDIR=str(job_tmp))
    assert done.returncode == 0, done.stderr
    assert main(["results", run_id, "--bucket", bucket, "--out", str(tmp_path / "downloads")]) == 0, \
        capsys.readouterr().err
    remote = tmp_path / "downloads" / run_id

    # The same config run locally, from the user's folder, writes the same files.
    done = console(aws, ["run", "--config", "sweep.yaml", "--out", tmp_path / "local", "--run-id", "local",
                         "--no-progress"], work)
    assert done.returncode == 0, done.stderr
    local = tmp_path / "local" / "local"
    assert stable_tree(remote) == stable_tree(local)
    manifest = json.loads((remote / "manifest.json").read_text())
    assert manifest["batch"]["strategy_code"] == {"uri": sub["strategy_code"]["uri"], "sha256": sha}
    assert manifest["strategies"] == {"ma_crossover": "crosspkg.strategy:Cross"}
    # The report took the parameter names from the sweep: the user's, not the built-in's of the same name.
    header = (remote / "summary.csv").read_text().splitlines()[0].split(",")
    assert "fast" in header and "slow" in header and "short_window" not in header
    doc = json.loads(next((remote / "runs").glob("*.json")).read_text())
    assert set(doc["params"]) == {"fast", "slow"}

    # An archive that is not the one recorded is refused before anything is imported.
    s3.put_object(Bucket=bucket, Key=f"runs/{run_id}/strategies.zip", Body=archive + b"tampered")
    for name, value in {**env, "AWS_BATCH_JOB_ARRAY_INDEX": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t2"))
    capsys.readouterr()
    code, err = main(["batch", "shard"]), capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "strategy code: the uploaded archive's SHA-256" in err and "submit the run again" in err
    assert not (tmp_path / "t2" / "backtest-runs").exists()  # nothing unpacked


def test_a_config_of_builtins_uploads_no_code(aws, tmp_path):
    bucket = aws.new_bucket()
    res = aws.batch_resources(bucket)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(CONFIG.format(bucket=bucket).replace("crosspkg.strategy:Cross: {fast: [5, 10], slow: [30, 60]}",
                                                        "ma_crossover: {short_window: [5, 10]}"))
    done = console(aws, ["submit", "--config", cfg, "--array-size", 1, "--bucket", bucket, "--job-queue",
                         res.job_queue, "--job-definition", res.job_definition], tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("run: "))
    keys = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"]}
    assert keys == {f"runs/{run_id}/config.yaml", f"runs/{run_id}/submission.json"}
    assert "strategy code" not in done.stdout


# --------------------------------------------------------------------------- the pieces


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """``tmp_path`` on sys.path for one test; the modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_a_namespace_package_and_its_helpers_are_packed_byte_identically(importable):
    ns = importable / "nspkg"  # no __init__.py, as the README's mypkg
    ns.mkdir()
    (ns / "helper.py").write_text("LEVEL = 3\n")
    (ns / "strat.py").write_text("from nspkg.helper import LEVEL\nimport json\n")
    (importable / "unrelated.py").write_text("X = 1\n")
    import nspkg.strat  # noqa: F401  (what loading the config does)

    one = sc.bundle_strategies(["nspkg.strat:S", "engine.strategies.ma_crossover:MACrossover"])
    assert one.files == ("nspkg/helper.py", "nspkg/strat.py") and one.modules == ("nspkg.strat",)
    assert one.sha256 == hashlib.sha256(one.archive).hexdigest()
    assert sc.bundle_strategies(["nspkg.strat:S"]).archive == one.archive  # byte-identical
    assert sc.bundle_strategies(["engine.strategies.ma_crossover:MACrossover"]) is None


def test_an_installed_package_cannot_be_shipped(importable):
    site = importable / "lib" / "site-packages"
    (site / "vendored").mkdir(parents=True)
    (site / "vendored" / "__init__.py").write_text("")
    (site / "vendored" / "strat.py").write_text("")
    sys.path.insert(0, str(site))
    try:
        import vendored.strat  # noqa: F401

        with pytest.raises(UserError, match="'vendored.strat' comes from an installed package"):
            sc.bundle_strategies(["vendored.strat:S"])
    finally:
        sys.path.remove(str(site))


def _archive(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in names.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_install_checks_the_hash_and_refuses_entries_that_are_not_plain_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    good = _archive({"okpkg/__init__.py": b"", "okpkg/mod.py": b"VALUE = 42\n"})
    with pytest.raises(UserError, match="SHA-256 is .*, not the"):
        sc.install_code(good, "0" * 64, tmp_path / "code")
    assert not (tmp_path / "code").exists()
    folder = sc.install_code(good, hashlib.sha256(good).hexdigest(), tmp_path / "code")
    assert (folder / "okpkg" / "mod.py").read_bytes() == b"VALUE = 42\n" and sys.path[-1] == str(folder)
    assert sc.install_code(good, hashlib.sha256(good).hexdigest(), tmp_path / "code") == folder  # once
    assert sys.path.count(str(folder)) == 1
    for bad in ("../escape.py", "/abs.py", "okpkg/data.bin", "a/./b.py"):
        archive = _archive({bad: b"x"})
        with pytest.raises(UserError, match="refusing archive entry"):
            sc.install_code(archive, hashlib.sha256(archive).hexdigest(), tmp_path / f"c{len(bad)}")
    assert not (tmp_path / "escape.py").exists()


def test_a_strategy_module_an_installed_package_shadows_is_refused(tmp_path):
    import yaml

    (tmp_path / "yaml").mkdir()  # the uploaded code holds a package named like an installed one
    with pytest.raises(UserError, match="'yaml' was imported from .*, not from the code uploaded with the run: an "
                                        "installed package of this image takes the name 'yaml'"):
        sc.check_imported_from(["yaml:YAMLObject"], tmp_path)
    sc.check_imported_from(["engine.strategies.ma_crossover:MACrossover"], tmp_path)  # the image's: not checked
    assert yaml.__file__
