"""The results-folder check's container advice (the refusals themselves: tests/test_bad_inputs_run.py)."""

from __future__ import annotations

import errno
import os

from backtest_cli.preflight import check_output_root, not_writable


def test_a_missing_results_folder_is_created_and_the_probe_leaves_nothing(tmp_path):
    assert check_output_root(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []


def test_permission_denied_names_the_uid_and_the_container_fix(tmp_path):
    msg = not_writable(tmp_path, PermissionError(errno.EACCES, "Permission denied"))
    assert msg.startswith(f"--out {tmp_path}: not writable (permission denied) by uid {os.getuid()}")
    assert '--user "$(id -u):$(id -g)"' in msg and f"chown {os.getuid()}" in msg and "\n" not in msg


def test_other_failures_keep_the_plain_advice(tmp_path):
    msg = not_writable(tmp_path, OSError(errno.EROFS, "Read-only file system"))
    assert msg == f"--out {tmp_path}: not writable (read-only file system); give --out a folder you can write to"
