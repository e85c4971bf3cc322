"""engine.fast.rule_errors keeps what rules raise per thread: a report re-simulates its top combinations
on threads at once, and an error must stop the thread whose kernel raised it, naming its combination."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import pytest

from engine.fast.rule_errors import RuleRaised, watch


class _Kernel:
    """Stands for the numba function numba names when a cfunc's exception is unraisable."""

    def __repr__(self) -> str:
        return "<numba cfunc 'rule'>"


def _raise_in_kernel(error: BaseException) -> None:
    """What numba does when a rule raises inside a kernel call: report it as unraisable, in this thread."""
    sys.unraisablehook(SimpleNamespace(exc_type=type(error), exc_value=error, exc_traceback=None,
                                       err_msg=None, object=_Kernel()))


def test_an_error_belongs_to_the_thread_whose_kernel_raised_it():
    both_open = threading.Barrier(2)
    b_raised, a_closed = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def combination(name: str, raises: bool) -> None:
        try:
            with watch():
                both_open.wait(5)
                if raises:
                    _raise_in_kernel(ZeroDivisionError(f"rule of {name}"))
                    b_raised.set()
                    a_closed.wait(5)  # B's block stays open until A's has closed
                else:
                    b_raised.wait(5)  # A closes its block after B's rule has raised
            outcome[name] = "ok"
        except RuleRaised as exc:
            outcome[name] = str(exc)
        finally:
            if not raises:
                a_closed.set()

    threads = [threading.Thread(target=combination, args=("A", False)),
               threading.Thread(target=combination, args=("B", True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Before: A, closing first, took B's error (one process-wide record), and B finished as if clean.
    assert outcome == {"A": "ok", "B": "ZeroDivisionError: rule of B"}


def test_an_ignoring_block_drops_only_its_own_threads_errors():
    checking = threading.Event()
    release = threading.Event()

    def compile_check() -> None:
        with watch(ignore=True):
            checking.set()
            release.wait(5)

    t = threading.Thread(target=compile_check)
    t.start()
    checking.wait(5)
    try:
        with pytest.raises(RuleRaised, match="ValueError: bad bar"):
            with watch():  # another thread's compile check is open meanwhile: this error still counts
                _raise_in_kernel(ValueError("bad bar"))
    finally:
        release.set()
        t.join(10)
    with watch(ignore=True):
        with watch():  # inside an ignoring block of the same thread: dropped
            _raise_in_kernel(ValueError("made-up candles"))


def test_a_worker_thread_without_a_block_reports_to_the_thread_that_has_one():
    """A parallel sweep's rule runs on numba's worker threads: the sweep's block gets the error."""
    before = sys.unraisablehook
    with pytest.raises(RuleRaised, match="KeyError: 'w'"):
        with watch():
            worker = threading.Thread(target=_raise_in_kernel, args=(KeyError("w"),))
            worker.start()
            worker.join(10)
    assert sys.unraisablehook is before  # the hook is put back once no block is open
