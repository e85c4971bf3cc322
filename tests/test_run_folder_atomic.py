"""Atomic run folders: a run is visible under its name only when complete; a killed run leaves a hidden
partial folder that the next run removes (never a live run's); chart workers die with their parent."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes.cli_process import as_foreground_job, command, live_processes_with, marker_env, run_console

from engine.child_process import count_interrupts
from engine.cpus import available_cpus
from engine.errors import UserError
from engine.run_store import (LOCK_PREFIX, MANIFEST, PARTIAL_PREFIX, PartialRunFolder, clean_partial_folders,
                              store_run)
from engine.report.charts import ChartPool
from engine.run_id import check_run_id

REPO = Path(__file__).resolve().parent.parent

# PNG charts: their worker processes are what must not outlive a killed run. Two of the nine combinations
# get charts (five PNGs), enough to keep both workers busy while the folder is written.
CONFIG = """
data: {source: synthetic, synthetic_bars: 20000, seed: 11}
strategies:
  ma_crossover: {short_window: [5, 10, 20], long_window: [40, 80, 120], ema_period: 50}
report: {top_k: 2, png: true}
"""
COMBINATIONS, TOP_K = 9, 2


def assert_complete(run: Path) -> None:
    """Everything a finished run folder holds, counted independently of the writer."""
    manifest = json.loads((run / MANIFEST).read_text())
    assert manifest["run_id"] == run.name
    summary = pd.read_csv(run / "summary.csv")
    assert len(summary) == COMBINATIONS
    top = sorted(f"{i}.json" for i in summary.sort_values("rank")["strategy_id"][:TOP_K])
    assert sorted(p.name for p in (run / "runs").iterdir()) == top  # report.runs: top (the default)
    for p in (run / "runs").iterdir():
        json.loads(p.read_text())  # whole, parseable
    assert sorted(p.name for p in (run / "trades").iterdir()) == sorted(
        f"{i}.csv" for i in summary.sort_values("rank")["strategy_id"][:TOP_K])
    assert (run / "report.html").read_text().rstrip().endswith("</html>")
    assert (run / "plotly.min.js").stat().st_size > 1_000_000
    plots = sorted(p.name for p in (run / "plots").iterdir())
    assert sum(p.startswith("equity_") for p in plots) == TOP_K
    assert sum(p.startswith("drawdown_") for p in plots) == TOP_K
    assert sum(p.startswith("heatmap_") for p in plots) == 1


def visible_runs(out: Path) -> list[Path]:
    """The run folders (index.html lies beside them)."""
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def wait_gone(token: str, seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := live_processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# --- run ids ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["x", "20240101-120000-abcd1234", "sweep_v2", "9-lives", "A" * 80])
def test_plain_run_ids(good):
    assert check_run_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "-x", "_x", "a\\b", "a.b", "x\n",
                                 "A" * 81, "a b", "ü"])
def test_run_ids_that_are_not_plain_names(bad):
    with pytest.raises(UserError, match="expected 1-80 letters, digits, '-' or '_', starting with a letter or digit"):
        check_run_id(bad)


# --- partial folders ----------------------------------------------------------------------------------

def test_publish_renames_the_partial_folder_into_place(tmp_path):
    part = PartialRunFolder.create(tmp_path, "r1")
    assert part.path.name == f"{PARTIAL_PREFIX}{os.getpid()}-r1" and part.path.is_dir()
    assert (tmp_path / f"{LOCK_PREFIX}{os.getpid()}-r1").exists()
    (part.path / MANIFEST).write_text(json.dumps({"run_id": "r1"}))
    final = part.publish()
    assert final == tmp_path / "r1"
    assert sorted(os.listdir(tmp_path)) == ["r1"]  # no partial folder, no lock file


def test_a_name_taken_meanwhile_gets_the_next_suffix_and_the_manifest_follows(tmp_path):
    a = PartialRunFolder.create(tmp_path, "same")
    b = PartialRunFolder.create(tmp_path, "same")  # chose "same-2": a's partial folder holds "same"
    c = PartialRunFolder.create(tmp_path, "same")
    assert (a.run_id, b.run_id, c.run_id) == ("same", "same-2", "same-3")
    (tmp_path / "same-2").mkdir()  # another process published "same-2" in the meantime
    (tmp_path / "same-2" / "x").write_text("theirs")
    manifest = {"run_id": "same-2"}
    (b.path / MANIFEST).write_text(json.dumps(manifest))
    assert b.publish(manifest) == tmp_path / "same-4"
    assert json.loads((tmp_path / "same-4" / MANIFEST).read_text())["run_id"] == "same-4" == manifest["run_id"]
    assert (tmp_path / "same-2" / "x").read_text() == "theirs"
    assert a.publish() == tmp_path / "same"
    c.release()


HOLDER = """
import sys, time
from pathlib import Path
from engine.run_store import PartialRunFolder
part = PartialRunFolder.create(Path(sys.argv[1]), sys.argv[2])
(part.path / "half.json").write_text("{")
print(part.path, flush=True)
if sys.argv[3] == "hold":
    time.sleep(600)
"""


def start_holder(root: Path, run_id: str, mode: str) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), run_id, mode], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    path = Path(proc.stdout.readline().strip())
    assert path.is_dir()
    return proc, path


def test_a_failed_write_removes_its_partial_folder_but_a_full_disk_leaves_it(tmp_path):
    def fails(error):
        def write(folder: Path, run_id: str):
            (folder / "summary.csv").write_text("half")
            raise error
        return write

    with pytest.raises(ValueError):
        store_run(tmp_path, "bad", fails(ValueError("a failure after the sweep")))
    assert os.listdir(tmp_path) == []  # no run, no partial folder, no lock file
    with pytest.raises(UserError, match="incomplete folder"):
        store_run(tmp_path, "full", fails(OSError(errno.ENOSPC, "No space left on device")))
    assert sorted(os.listdir(tmp_path)) == [f"{PARTIAL_PREFIX}{os.getpid()}-full", f"{LOCK_PREFIX}{os.getpid()}-full"]


def test_a_ctrl_c_that_a_library_swallowed_still_stops_the_publish(tmp_path):
    """numpy and pandas clear an exception raised inside some of their callbacks, a KeyboardInterrupt
    included (found by the Ctrl-C test below: a quarter of the runs it interrupted while writing CSVs
    published and exited 0). The CLI counts SIGINTs, and a run that took one does not publish."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    count_interrupts()
    try:
        def write(folder: Path, run_id: str):
            (folder / "summary.csv").write_text("half")
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # what numpy's PyErr_Clear does to it
            (folder / MANIFEST).write_text("{}")

        with pytest.raises(KeyboardInterrupt):
            store_run(tmp_path, "r", write)
        assert os.listdir(tmp_path) == []  # no run, no partial folder, no lock file
    finally:
        signal.signal(signal.SIGINT, previous)


def test_only_partial_folders_of_ended_writers_are_cleaned(tmp_path):
    dead, dead_path = start_holder(tmp_path, "gone", "exit")
    dead.wait(timeout=60)
    live, live_path = start_holder(tmp_path, "busy", "hold")
    try:
        (tmp_path / "finished").mkdir()
        removed = clean_partial_folders(tmp_path)
        assert [(r.path, r.pid) for r in removed] == [(dead_path, dead.pid)]
        assert not dead_path.exists() and not (tmp_path / f"{LOCK_PREFIX}{dead.pid}-gone").exists()
        assert (live_path / "half.json").read_text() == "{"  # a live writer's folder is never touched
        assert (tmp_path / "finished").is_dir()
    finally:
        live.kill()
        live.wait()
    assert [r.path for r in clean_partial_folders(tmp_path)] == [live_path]  # SIGKILL released its lock
    assert sorted(os.listdir(tmp_path)) == ["finished"]


def test_a_partial_folder_without_its_lock_file_is_judged_by_its_pid(tmp_path):
    alive = tmp_path / f"{PARTIAL_PREFIX}{os.getpid()}-mine"
    alive.mkdir()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / f"{PARTIAL_PREFIX}{dead_pid}-theirs"
    dead.mkdir()
    assert [r.path for r in clean_partial_folders(tmp_path)] == [dead]
    assert alive.is_dir()


# --- chart workers ------------------------------------------------------------------------------------

def test_chart_pool_never_exceeds_the_cpu_count():
    import multiprocessing as mp

    before = set(mp.active_children())
    with ChartPool(48) as pool:
        started = [p for p in mp.active_children() if p not in before]
        assert pool.workers == min(48, available_cpus())
        assert len(started) == pool.workers if pool.workers > 1 else len(started) == 0


POOL_OWNER = """
import multiprocessing as mp, sys, time
from engine.report.charts import ChartPool
pool = ChartPool(2)
time.sleep(0.5)
print(" ".join(str(p.pid) for p in mp.active_children()), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(available_cpus() < 2, reason="one CPU: the chart pool draws inline and forks nothing")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_chart_workers_exit_when_their_parent_is_killed(sig):
    token, env = marker_env()
    owner = subprocess.Popen([sys.executable, "-c", POOL_OWNER], cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **env})
    workers = [int(p) for p in owner.stdout.readline().split()]
    assert len(workers) == 2
    assert set(workers) <= set(live_processes_with(token))
    owner.send_signal(sig)
    owner.wait(timeout=60)
    assert wait_gone(token) == []


# --- kills at random moments --------------------------------------------------------------------------

def _writing(proc: subprocess.Popen, out: Path) -> Path | None:
    """The run's partial folder once the run writes into it (None if the run ends first); a killed run's
    folder left from before is not this run's."""
    limit = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < limit:
        for p in (out.iterdir() if out.exists() else []):
            if p.name.startswith(f"{PARTIAL_PREFIX}{proc.pid}-") and p.is_dir() and any(p.iterdir()):
                return p
        time.sleep(0.005)
    return None


def _kill_when(proc: subprocess.Popen, out: Path, rng: random.Random, mode: str) -> None:
    if mode == "anytime":
        deadline = time.monotonic() + rng.uniform(0.0, 4.0)
    else:  # while the run folder is being written
        _writing(proc, out)
        deadline = time.monotonic() + rng.uniform(0.0, 0.4)
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_kills_at_seeded_random_moments_then_a_rerun(tmp_path):
    """SIGKILL (and SIGTERM) at seeded random points: every visible run folder is complete after every kill, no
    worker outlives the run, and the re-run completes, reports and removes the partial folders of the ended
    writers (the killed runs and a writer that exited) but not a live writer's, and leaves no other litter.
    Five kills: two at any moment (0-4 s), two SIGKILLs and a SIGTERM while the folder is written."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "results"
    rng = random.Random(20240610)
    plan = [("anytime", signal.SIGKILL)] * 2 + [("writing", signal.SIGKILL)] * 2 + [("writing", signal.SIGTERM)]
    left_partial = 0
    for mode, sig in plan:
        token, env = marker_env()
        proc = subprocess.Popen(command(["run", "--config", cfg, "--out", out, "--no-progress"]), cwd=REPO,
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _kill_when(proc, out, rng, mode)
        if proc.poll() is None:
            proc.send_signal(sig)
        proc.wait(timeout=120)
        proc.stderr.close()
        assert wait_gone(token) == [], f"orphans after {sig.name} ({mode})"
        for run in visible_runs(out) if out.exists() else []:
            assert_complete(run)
        left_partial += any(n.startswith(PARTIAL_PREFIX) for n in hidden(out)) if out.exists() else 0
    assert left_partial >= 1, "no kill landed while a run folder was being written"

    out.mkdir(exist_ok=True)
    dead, dead_path = start_holder(out, "gone", "exit")
    dead.wait(timeout=60)
    killed = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(PARTIAL_PREFIX) and p != dead_path]
    live, live_path = start_holder(out, "busy", "hold")
    try:
        token, env = marker_env()
        done = run_console(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "fresh"], env=env)
        assert done.returncode == 0, done.stderr
        for path in [dead_path, *killed]:
            pid = dead.pid if path == dead_path else int(path.name[len(PARTIAL_PREFIX):].split("-", 1)[0])
            assert f"note: removed {path}, the incomplete folder of an interrupted run (process {pid})" in done.stderr
        assert str(live_path) not in done.stderr
        assert (live_path / "half.json").read_text() == "{"  # a live writer's folder is never touched
        assert hidden(out) == sorted([live_path.name, f"{LOCK_PREFIX}{live.pid}-busy"])  # no other litter
        assert_complete(out / "fresh")
        for run in visible_runs(out):
            assert_complete(run)
        assert wait_gone(token) == []
    finally:
        live.kill()
        live.wait()


def test_ctrl_c_while_writing_is_one_line_and_leaves_nothing(tmp_path):
    """SIGINT goes to the whole process group, as a terminal sends it: the workers leave it to the run,
    which removes its partial folder and lock file (issue 22). Sent once the run writes into its partial
    folder, with the run held (SIGSTOP) so the test sees that the folder is not yet published: the PNG
    charts keep a run writing for a second or more, against the test's 5 ms polling."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "results"
    token, env = marker_env()
    proc = subprocess.Popen(command(["run", "--config", cfg, "--out", out, "--no-progress", "--run-id", "stop"]),
                            cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=as_foreground_job)
    partial = _writing(proc, out)
    assert partial is not None, "the run ended before writing its folder"
    os.kill(proc.pid, signal.SIGSTOP)  # hold the run where it is, to see that it is still writing
    try:
        assert partial.is_dir() and visible_runs(out) == [], "the run published before Ctrl-C"
        os.killpg(proc.pid, signal.SIGINT)  # lands mid-write: the run takes it as it resumes
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error" not in err
    assert err.splitlines()[-1] == "interrupted" and err.count("interrupted") == 1, err
    assert visible_runs(out) == []
    assert hidden(out) == []
    assert wait_gone(token) == []
