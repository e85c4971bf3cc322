"""The real ``backtest`` console script in a subprocess, and what tests check around it:
stored files before and after, processes left behind, small real filesystems (tmpfs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

from . import forkserver_client

REPO = Path(__file__).resolve().parent.parent.parent
CONSOLE = forkserver_client.CONSOLE
SETPRIV = shutil.which("setpriv")
#: CI (BACKTEST_TEST_PROFILE=ci) and BACKTEST_TEST_SPAWN=real start every command as a new interpreter.
SPAWN_ONLY = (os.environ.get("BACKTEST_TEST_PROFILE") == "ci" or os.environ.get("BACKTEST_TEST_SPAWN") == "real")


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
                inherit_env: bool = True, drop_caps: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``backtest <args>`` in a process of its own, output captured as text.

    ``drop_caps``: run without any capability (as ``setpriv --inh-caps=-all --bounding-set=-all``),
    so that file permissions apply when the suite runs as root. The command runs in a child forked
    from a pre-imported interpreter (tests/fakes/forkserver.py) when that is faithful, else it is
    spawned. ``env`` adds to the current environment, or with ``inherit_env=False`` is the whole of it."""
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    if _forkable(full_env, kwargs):
        done = forkserver_client.run(args, cwd=cwd, env=full_env, timeout=timeout, drop_caps=drop_caps,
                                     input=kwargs.get("input"))
        if done is not None:
            return done
    head = [SETPRIV, "--inh-caps=-all", "--bounding-set=-all"] if drop_caps and is_root() else []
    return subprocess.run(head + command(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, **kwargs)


def start_console(args: list, *, cwd: Path | str = REPO, env: dict | None = None, inherit_env: bool = True):
    """``backtest <args>`` started and left running: a ``Popen`` (or a forked child with the same
    ``pid``/``communicate``/``returncode``), stdout and stderr captured as text."""
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    if _forkable(full_env, {}):
        proc = forkserver_client.start(args, cwd=cwd, env=full_env)
        if proc is not None:
            return proc
    return subprocess.Popen(command(args), cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


#: Variables a forked child could not honour: the interpreter, numba, BLAS and the caches read them
#: at import, and ``/proc/<pid>/environ`` (where ``live_processes_with`` looks) keeps the exec-time ones.
_READ_AT_START = ("NUMBA_", "PYTHON", "MPLCONFIGDIR", "HOME", "XDG_", "OPENBLAS_", "OMP_", "MKL_", "LD_",
                  "BACKTEST_TEST_MARKER", "LANG", "LC_", "TZ")


def _forkable(full_env: dict, kwargs: dict) -> bool:
    return not SPAWN_ONLY and faithful_when_forked(full_env, kwargs)


def faithful_when_forked(full_env: dict, kwargs: dict) -> bool:
    """Whether a child forked from the server would run as a spawned console script with ``full_env`` and
    these extra ``subprocess`` arguments would."""
    if set(kwargs) - {"input"}:
        return False
    base = forkserver_client.BASE_ENV
    keys = {k for k in (*full_env, *base) if k.startswith(_READ_AT_START)}
    return all(full_env.get(k) == base.get(k) for k in keys)


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
