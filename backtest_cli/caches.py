"""Writable numba and matplotlib caches for whoever runs the CLI, chosen before numba is imported.

numba caches compiled code only in a folder it can write to, and a ``cache=True`` function
cannot even be imported when no folder qualifies; matplotlib rebuilds its font list (and
warns) when ``MPLCONFIGDIR`` is not writable. The Docker image bakes both caches, writable by
its user and by group 0 (OpenShift-style arbitrary uids). Any other uid (``--user``), or a
``--read-only`` container, gets a private copy in the temp folder: the compiled kernels come
along, so nothing recompiles.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import MutableMapping

from engine.errors import UserError

#: Cache variables and the name of their private copy.
CACHE_VARIABLES = {"NUMBA_CACHE_DIR": "numba", "MPLCONFIGDIR": "matplotlib"}


def ensure_writable_caches(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Point every cache variable at a folder this process can write; return the ones changed.

    Call before numba or matplotlib is imported: both read their variable once, at import.
    """
    changed = {}
    for var, name in CACHE_VARIABLES.items():
        configured = environ.get(var)
        if configured and writable(Path(configured)):
            continue
        if not configured and _DEFAULT_IS_WRITABLE[var](environ):
            continue  # unset, and the library's own default works
        target = private_cache_root() / name
        if not writable(target.parent):
            raise UserError(f"{var}: no writable folder for the {name} cache ({configured or 'default'} and "
                            f"{target.parent} are read-only); give the container a temp folder, e.g. --tmpfs /tmp")
        environ[var] = changed[var] = str(target)  # before seed(), which imports numba
        if configured and Path(configured).is_dir() and not target.exists():
            seed(Path(configured), target)
        target.mkdir(parents=True, exist_ok=True)
    return changed


def writable(path: Path) -> bool:
    """Whether this process can create files in ``path`` (created if missing). A real write, not
    os.access(): that ignores read-only mounts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def private_cache_root() -> Path:
    """``$TMPDIR/backtest-<uid>``, owned by this uid and closed to others (numba's cache holds
    pickles and generated code: a folder someone else controls must never be used)."""
    root = Path(tempfile.gettempdir()) / f"backtest-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        st = root.lstat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
            return root
        return Path(tempfile.mkdtemp(prefix="backtest-"))
    except OSError:
        return root  # no writable temp folder at all: the caller says so


def seed(baked: Path, target: Path) -> None:
    """Copy a read-only cache to ``target`` (atomically: a killed copy leaves nothing behind).

    numba files a function's cache under ``<folder>_<sha1 of the source folder>``. Sources that
    live inside the cache (the units engine.fast.units generates) move with the copy, so
    their entries are renamed to the name numba computes for the new place.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(baked, staging, dirs_exist_ok=True, ignore_dangling_symlinks=True,
                        ignore=shutil.ignore_patterns("*.tmp"))
        for source_dir in {p.parent for p in staging.rglob("*.py")}:
            old = _numba_subpath(baked / source_dir.relative_to(staging))
            entries = staging / old
            if entries.is_dir():
                entries.rename(staging / _numba_subpath(target / source_dir.relative_to(staging)))
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            raise


def _numba_subpath(source_dir: Path) -> str:
    """The cache sub-folder numba uses for sources in ``source_dir`` (numba.core.caching)."""
    from numba.core.caching import _CacheLocator

    return _CacheLocator.get_suitable_cache_subpath(str(source_dir / "module.py"))


def _home_dir(environ: MutableMapping[str, str], xdg: str, fallback: str) -> Path:
    return Path(environ.get(xdg) or Path(environ.get("HOME") or os.path.expanduser("~")) / fallback)


def _numba_default_is_writable(environ: MutableMapping[str, str]) -> bool:
    """Without NUMBA_CACHE_DIR, numba writes beside the sources (``__pycache__``) or under
    ``~/.cache/numba``; a root-owned install run by a uid without a home has neither."""
    import engine

    package = Path(engine.__file__).resolve().parent
    home = _home_dir(environ, "XDG_CACHE_HOME", ".cache") / "numba"
    return writable(package / "__pycache__") or (home.is_absolute() and writable(home))


def _matplotlib_default_is_writable(environ: MutableMapping[str, str]) -> bool:
    """Without MPLCONFIGDIR, matplotlib uses ~/.config/matplotlib and ~/.cache/matplotlib."""
    dirs = (_home_dir(environ, "XDG_CONFIG_HOME", ".config"), _home_dir(environ, "XDG_CACHE_HOME", ".cache"))
    return all(d.is_absolute() and writable(d / "matplotlib") for d in dirs)


_DEFAULT_IS_WRITABLE = {"NUMBA_CACHE_DIR": _numba_default_is_writable,
                        "MPLCONFIGDIR": _matplotlib_default_is_writable}
