"""Per-strategy copies of the kernel template, so numba can inline and disk-cache them.

The copy is a real file whose name carries a hash of the template, the signal
rule's source and the numba version: editing a strategy's rule produces a new
file and therefore a fresh compilation, never a stale cached kernel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numba

from ..strategies import Strategy

_TEMPLATE = Path(__file__).with_name("kernel.py")
_MARKER = "from engine.fast._placeholder_signal import signal_fn as _rule  # SPECIALISE"
_loaded: dict[object, ModuleType] = {}


def kernel_dir() -> Path:
    """Generated kernels live beside numba's cache (NUMBA_CACHE_DIR when set), else in ~/.cache.

    When that folder cannot be written (a foreign uid, a read-only home), a temp folder private
    to this uid: generated code is imported, so a folder another user controls is never used.
    """

    def writable(path: Path, mode: int = 0o777) -> bool:
        try:
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return True
        except OSError:
            return False

    home = Path(os.path.expanduser("~"))  # stays "~" when the uid has no home
    base = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else home / ".cache" / "backtest-engine"
    shared = base / "kernels"
    if shared.is_absolute() and writable(shared):
        return shared
    private = Path(tempfile.gettempdir()) / f"backtest-engine-kernels-{os.getuid()}"
    if writable(private, 0o700) and private.stat().st_uid == os.getuid():
        return private
    raise OSError(f"no writable folder for generated kernels: {shared} nor {private}")


def kernel_for(strategy: type[Strategy]) -> ModuleType:
    """The specialised kernel module for ``strategy`` (generated once, then imported)."""
    fn = strategy.signal
    if fn in _loaded:
        return _loaded[fn]
    py = getattr(fn, "py_func", None)
    if py is None:
        raise TypeError(f"{strategy.__name__}.signal must be a numba @njit function")
    template = _TEMPLATE.read_text()
    binding = f"from {py.__module__} import {py.__qualname__} as _rule  # specialised"
    digest = hashlib.sha256("\0".join([template, binding, inspect.getsource(py), numba.__version__]).encode())
    name = f"bt_kernel_{strategy.name}_{digest.hexdigest()[:16]}"
    path = kernel_dir() / f"{name}.py"
    source = template.replace(_MARKER, binding)
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent workers never import a half-written file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[fn] = module
    return module
