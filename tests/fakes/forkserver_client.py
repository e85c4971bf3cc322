"""The test side of tests/fakes/forkserver.py: one server per test process, started on first use.

``run`` and ``start`` return None when the server cannot take the command (it failed to start, or
the child found it must not run forked): the caller then spawns the console script for real.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import forkserver

#: The environment the server was started with (this process's, at import): what a forked child's
#: imports saw.
BASE_ENV = dict(os.environ)
CONSOLE = Path(sys.executable).parent / "backtest"

_lock = threading.Lock()
_server: dict = {}


def _socket_path() -> str | None:
    with _lock:
        if "path" in _server:
            return _server["path"]
        _server["path"] = None
        folder = tempfile.mkdtemp(prefix="backtest-forkserver-")
        path = os.path.join(folder, "socket")
        proc = subprocess.Popen([sys.executable, "-P", forkserver.__file__, path, str(CONSOLE)], env=BASE_ENV,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        atexit.register(_stop, proc, folder)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            print(f"forkserver did not start ({proc.stderr.read()[-500:]}): spawning instead", file=sys.stderr)
            return None
        _server["path"] = path
        return path


def _stop(proc: subprocess.Popen, folder: str) -> None:
    proc.kill()
    proc.wait()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


def _text(data: bytes) -> str:
    """As ``subprocess`` decodes captured output with ``text=True``."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


class ForkedConsole:
    """A forked ``backtest`` command: the subset of ``Popen`` the tests use. As with ``subprocess``,
    stdout and stderr are pipes read to their end, and stdin is a pipe fed ``input`` or this process's own."""

    def __init__(self, args: list, conn: socket.socket, pipes: list[int], input: str | None):
        self.args = args
        self._conn = conn
        self.pid = json.loads(conn.recv(4096))["pid"]
        self.returncode: int | None = None
        self._chunks: list[list[bytes]] = [[], []]
        self._threads = [threading.Thread(target=self._drain, args=(fd, chunks), daemon=True)
                         for fd, chunks in zip(pipes[1:], self._chunks)]
        if pipes[0] is not None:
            self._threads.append(threading.Thread(target=self._feed, args=(pipes[0], input or ""), daemon=True))
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(fd: int, chunks: list[bytes]) -> None:
        with open(fd, "rb", buffering=0) as pipe:
            while data := pipe.read(1 << 16):
                chunks.append(data)

    @staticmethod
    def _feed(fd: int, text: str) -> None:
        with open(fd, "wb") as pipe:
            try:
                pipe.write(text.encode())
            except BrokenPipeError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                reply = self._conn.recv(4096)
            except socket.timeout:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            self.returncode = json.loads(reply)["code"]
            self._conn.close()
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.wait(timeout)
            for thread in self._threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if thread.is_alive():  # a process the command started still holds the pipe
                    raise subprocess.TimeoutExpired(self.args, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise
        return _text(b"".join(self._chunks[0])), _text(b"".join(self._chunks[1]))


def start(args: list, *, cwd, env: dict, drop_caps: bool = False, input: str | None = None) -> ForkedConsole | None:
    path = _socket_path()
    if path is None:
        return None
    argv = [str(a) for a in args]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if input is not None:
        in_r, in_w = os.pipe()
    else:
        in_r, in_w = os.dup(0), None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.connect(path)
    request = {"argv": argv, "cwd": str(cwd), "env": env, "drop_caps": drop_caps}
    try:
        socket.send_fds(conn, [json.dumps(request).encode()], [in_r, out_w, err_w])
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    return ForkedConsole([str(CONSOLE), *argv], conn, [in_w, out_r, err_r], input)


def run(args: list, *, cwd, env: dict, timeout: float, drop_caps: bool = False,
        input: str | None = None) -> subprocess.CompletedProcess | None:
    started = time.monotonic()
    proc = start(args, cwd=cwd, env=env, drop_caps=drop_caps, input=input)
    if proc is None:
        return None
    out, err = proc.communicate(timeout=max(0.0, timeout - (time.monotonic() - started)))
    if proc.returncode == forkserver.FALLBACK:
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
