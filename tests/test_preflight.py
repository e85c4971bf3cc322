"""``backtest run`` checks its results folder before any work: one line, exit 2, nothing computed."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtest_cli import main
from backtest_cli.preflight import _unwritable, check_output_root
from engine.errors import UserError

REPO = Path(__file__).resolve().parent.parent
READ_ONLY_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def run_cli(out: Path, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "backtest_cli", "run", "--out", str(out), "--no-progress"]
    return subprocess.run([*(wrap or []), *cmd], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_missing_results_folder_is_created(tmp_path):
    check_output_root(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the write probe leaves nothing behind


@pytest.mark.parametrize("out, needle", [("file", "is a file, not a folder"),
                                         ("file/sub", "a parent of it is a file")])
def test_a_file_in_the_way_is_one_line_and_exit_2(tmp_path, capsys, out, needle):
    (tmp_path / "file").write_text("x")
    assert main(["run", "--out", str(tmp_path / out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and str(tmp_path / out) in err


def test_an_unwritable_results_folder_stops_before_the_data_and_the_sweep(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    if os.getuid() == 0:  # root writes anywhere: a read-only mount, as `docker run -v …:ro` gives
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_MOUNT, str(out)]
        probe = subprocess.run([*wrap, "sh", "-c", f"! touch {out}/probe"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here (unshare/mount): {probe.stderr.decode()[-200:]}")
        needle = "read-only file system; mount it read-write"
    else:
        out.chmod(0o555)
        wrap, needle = None, '--user "$(id -u):$(id -g)"'
    done = run_cli(out, wrap)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: results folder {out}") and needle in done.stderr
    assert "data:" not in done.stderr and done.stdout == ""  # no data loaded, no sweep
    assert list(out.iterdir()) == []


def test_permission_denied_names_the_uid_and_the_container_fix(tmp_path):
    msg = _unwritable(tmp_path, PermissionError(errno.EACCES, "Permission denied"))
    assert f"uid {os.getuid()}" in msg and '--user "$(id -u):$(id -g)"' in msg and "chown" in msg
    assert "\n" not in msg


def test_check_raises_user_error_not_os_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError):
        check_output_root(tmp_path / "f")
