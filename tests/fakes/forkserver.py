"""A ``backtest`` interpreter that has already imported the engine, and forks one child per command.

Most of a refused command's time is interpreter start-up and imports (numpy, pandas, numba,
pyarrow: 0.3-0.9 s of CPU each time), and the suite runs the console script some 250 times.
This server pays that once per xdist worker; each command still runs in a process of its
own, with its own argv, working folder, environment, file descriptors 0-2 and exit status,
through the same ``backtest_cli.console`` the installed script calls.

What a fork cannot give is left to a real spawn (``cli_process.run_console`` decides):
environment variables read at import (``NUMBA_*``, ``HOME``...), marker variables looked for in
``/proc/<pid>/environ`` (which keeps a process's exec-time environment), and extra ``Popen``
options. A child that finds its caches would move (``ensure_writable_caches``) exits with
``FALLBACK`` before doing anything, and the client then spawns for real.

Protocol (one SOCK_SEQPACKET connection per command): the client sends a JSON request
``{argv, cwd, env, drop_caps}`` with three descriptors (stdin, stdout, stderr); the server
answers ``{"pid": n}`` once the child is forked, then ``{"code": c}`` when it has exited
(``c`` as ``subprocess`` reports it: negative for a signal).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import traceback

FALLBACK = 197

#: Imported before the first fork: what ``backtest run``/``data``/``batch`` load, minus the
#: kernels generated per strategy (they load from numba's cache in the child).
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "numba", "yaml", "scipy.stats", "boto3",
           "backtest_cli.run", "backtest_cli.runs", "backtest_cli.data", "backtest_cli.cloud",
           "backtest_cli.universe", "backtest_cli.preflight", "engine.pipeline", "engine.sweep",
           "engine.report.writer", "engine.report.plots", "engine.validation.evaluate",
           "batch_jobs.shard", "batch_jobs.reduce", "batch_jobs.submit")


def preload() -> None:
    from backtest_cli.caches import ensure_writable_caches

    ensure_writable_caches()  # as the console script does, before numba is imported
    for name in PRELOAD:
        importlib.import_module(name)
    sys.stdout.flush()
    sys.stderr.flush()


def drop_capabilities() -> None:
    """What ``setpriv --inh-caps=-all --bounding-set=-all`` gives an exec'd root process: no capability
    at all, so file permissions apply to root as to anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP = 24
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3, all zero
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def child(request: dict, fds: list[int], console_script: str) -> None:
    """In the forked child: become the command, run it, never return."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from backtest_cli.caches import ensure_writable_caches

        if ensure_writable_caches(dict(os.environ)):
            os._exit(FALLBACK)  # numba was imported with other caches: only a real spawn is faithful
        if request.get("drop_caps"):
            drop_capabilities()
        sys.argv = [console_script, *request["argv"]]
        sys.path.insert(0, os.path.dirname(console_script))  # as a console script's interpreter has it
        tempfile.tempdir = None  # found again from TMPDIR
        import backtest_cli

        backtest_cli.console()  # leaves through os._exit
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, then exit 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def serve(path: str, console_script: str) -> None:
    preload()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(16)
    parent = os.getppid()
    waiting: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while os.getppid() == parent:  # the pytest worker that started us is gone: so are we
        ready, _, _ = select.select([server], [], [], 0.02)
        if ready:
            conn, _ = server.accept()
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                child(request, fds, console_script)
            for fd in fds:
                os.close(fd)
            conn.send(json.dumps({"pid": pid}).encode())
            waiting[pid] = conn
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.send(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode())
                except OSError:
                    pass  # the client gave up (timeout) and closed
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
