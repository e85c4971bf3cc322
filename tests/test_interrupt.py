"""Ctrl-C stops a run within 2 s, even while the kernel is inside a rule that would run for hours
(issue 22): the calling thread only waits on the kernel's threads, so the signal reaches it, and the
kernel's blocks stop at their next chunk. Nothing is left in the results folder."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from fakes.cli_process import as_foreground_job, command

SPIN = '''
from numba import njit
from engine.strategies import ENTER_LONG, EXIT_LONG, Strategy

@njit(cache=True)
def spin_signal(close, position, bars_held, after):
    x = close
    if position == 1 and bars_held > after:  # hours of work, once held long enough
        for i in range(10 ** 12):
            x = x * 1.0000001 + 1.0
    return ENTER_LONG | (EXIT_LONG if x < 0 else 0)

class Spin(Strategy):
    name = "spin"
    after: int = 100
    signal = staticmethod(spin_signal)
'''


def test_ctrl_c_inside_a_long_kernel_call_stops_within_2_s(tmp_path):
    (tmp_path / "spinmod.py").write_text(SPIN)
    (tmp_path / "c.yaml").write_text("strategies: {'spinmod:Spin': {after: [100, 101]}}\n"
                                     "data: {synthetic_bars: 300}\nreport: {png: false}\n")
    proc = subprocess.Popen(command(["run", "--config", "c.yaml", "--out", "res"]), cwd=tmp_path,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            preexec_fn=as_foreground_job)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while "fast sweep" not in "".join(err):  # the progress bar: the sweep has started
            assert proc.poll() is None and time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the spinning kernel call
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    text = "".join(err)
    assert proc.returncode == 130 and took < 2.0, (took, text)
    assert text.rstrip().splitlines()[-1] == "interrupted" and "Traceback" not in text
    res = tmp_path / "res"
    assert not res.exists() or [p.name for p in res.iterdir()] == []  # no run, no hidden partial folder
