"""The suite's fork server (tests/fakes/forkserver.py) must give what a freshly started console script
gives: the same exit code, stdout and stderr, with the caller's folder, environment, stdin and
capabilities. Each command here runs both ways and the two answers are compared."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fakes import cli_process, forkserver_client
from fakes.cli_process import REPO, SETPRIV, command, faithful_when_forked, is_root, snapshot

#: (arguments, extra environment, stdin)
CASES = {
    "refused config": (["run", "--config", "missing.yaml", "--out", "res"], {}, None),
    "valid config": (["validate-config", str(REPO / "configs" / "default.yaml")], {}, None),
    "bad argument": (["run", "--workers", "zero"], {}, None),
    "config on stdin": (["validate-config", "/dev/stdin"], {}, "experiment: {name: x}\nstrategies: {nope: {}}\n"),
    "environment reaches the command": (["batch", "shard"], {"RUN_ID": "r1", "BUCKET_NAME": "b"}, None),
}


def _spawned(args, cwd: Path, env: dict, stdin: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(command(args), cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", list(CASES))
def test_a_forked_command_answers_as_a_spawned_one(name, tmp_path):
    args, extra, stdin = CASES[name]
    env = {**os.environ, **extra}
    (tmp_path / "forked").mkdir()
    (tmp_path / "spawned").mkdir()
    forked = forkserver_client.run(args, cwd=tmp_path / "forked", env=env, timeout=120, input=stdin)
    assert forked is not None, "the fork server did not take the command"
    spawned = _spawned(args, tmp_path / "spawned", env, stdin)
    assert (forked.returncode, forked.stdout, forked.stderr) == (spawned.returncode, spawned.stdout, spawned.stderr)
    assert forked.returncode in (0, 2)
    assert snapshot(tmp_path / "forked") == snapshot(tmp_path / "spawned")


@pytest.mark.skipif(not (is_root() and SETPRIV), reason="capabilities only matter to root, and setpriv drops them")
def test_a_forked_command_without_capabilities_cannot_read_a_mode_000_file(tmp_path):
    secret = tmp_path / "candles.csv"
    secret.write_text("open_time,open,high,low,close,volume\n")
    secret.chmod(0)
    args = ["data", "inspect", secret]
    forked = forkserver_client.run(args, cwd=tmp_path, env=dict(os.environ), timeout=120, drop_caps=True)
    spawned = subprocess.run([SETPRIV, "--inh-caps=-all", "--bounding-set=-all", *command(args)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert forked.returncode == spawned.returncode == 2
    assert forked.stderr == spawned.stderr and "permission" in forked.stderr.lower()
    with_caps = forkserver_client.run(args, cwd=tmp_path, env=dict(os.environ), timeout=120)
    assert "permission" not in with_caps.stderr.lower()


def test_variables_read_at_start_send_the_command_to_a_real_spawn():
    base = dict(forkserver_client.BASE_ENV)
    assert faithful_when_forked(base, {})
    assert not faithful_when_forked({**base, "NUMBA_CACHE_DIR": "/elsewhere"}, {})
    assert not faithful_when_forked({**base, "BACKTEST_TEST_MARKER": "x"}, {})
    assert not faithful_when_forked(base, {"preexec_fn": print})
    assert faithful_when_forked({**base, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, {"input": "x"})
    # CI (BACKTEST_TEST_PROFILE=ci) starts every command as a new interpreter
    assert cli_process.SPAWN_ONLY == (os.environ.get("BACKTEST_TEST_PROFILE") == "ci"
                                      or os.environ.get("BACKTEST_TEST_SPAWN") == "real")
    assert cli_process._forkable(base, {}) == (not cli_process.SPAWN_ONLY)
