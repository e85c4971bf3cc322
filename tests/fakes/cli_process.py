"""The real ``backtest`` console script in a subprocess, and what tests check around it:
stored files before and after, processes left behind, small real filesystems (tmpfs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent.parent
CONSOLE = Path(sys.executable).parent / "backtest"


def command(args: list) -> list[str]:
    """The installed console script (what a user runs), else ``python -m backtest_cli``."""
    head = [str(CONSOLE)] if CONSOLE.exists() else [sys.executable, "-m", "backtest_cli"]
    return head + [str(a) for a in args]


def as_foreground_job() -> None:
    """``preexec_fn`` for a child that a test interrupts: SIGINT at its default, as a terminal's
    foreground job has it. A suite started as a background job of a non-interactive shell
    (``make test &``) runs with SIGINT ignored, and a child inherits that (Python then installs
    no KeyboardInterrupt handler), so Ctrl-C would reach nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_console(args: list, *, cwd: Path | str = REPO, env: dict | None = None, timeout: float = 300,
                **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (hidden ones too): kind and content hash, or size for folders."""
    out: dict[str, tuple[str, int]] = {}
    if not root.exists():
        return out
    if root.is_file():
        return {".": ("file", hashlib.sha256(root.read_bytes()).hexdigest())}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", 0)
        else:
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def marker_env() -> tuple[str, dict]:
    """An environment variable every process the command forks inherits, to find them afterwards."""
    token = uuid.uuid4().hex
    return token, {"BACKTEST_TEST_MARKER": token}


def live_processes_with(token: str) -> list[int]:
    """Pids of running (not zombie) processes whose environment holds ``token``."""
    found = []
    needle = f"BACKTEST_TEST_MARKER={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if state not in ("Z", "X") and needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real, small tmpfs mounted at ``path`` (root only); unmounted afterwards. Raises OSError if mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"mount -t tmpfs -o {options} failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def can_mount_tmpfs(scratch: Path) -> str | None:
    """None if this process can mount a tmpfs, else why not (for a skip message)."""
    if not is_root():
        return "mounting a small tmpfs needs root"
    try:
        with tmpfs(scratch / f"probe-{uuid.uuid4().hex[:8]}", "size=64k"):
            return None
    except OSError as exc:
        return str(exc)
