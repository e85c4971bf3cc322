"""The user's strategy modules, shipped with a Batch run so that its jobs can import them.

A config may name strategies by path (``mypkg.strategies:TrendRSI``), but the image ships
``engine``, ``batch_jobs`` and ``backtest_cli`` only. So ``backtest submit`` packs the
source of the user's strategy modules into ``runs/<run_id>/strategies.zip`` and records
its SHA-256 in the run (the jobs' environment and ``submission.json``); no image rebuild
is needed. Each job downloads the archive, refuses it unless its SHA-256 is the one
recorded, unpacks it into a folder of its own for the run, and appends that folder to
``sys.path``: after every installed package, so the uploaded code shadows nothing. A
strategy module that an installed package shadows on the job's machine is then refused
in one line, as is one that cannot be shipped (an installed package, compiled code).

What is packed: for each strategy module outside the image's packages, the folder it was
imported from (its ``sys.path`` entry) is its source root, and every module loaded from
that root, whose file lies where its name says, is packed (the strategy modules, their
packages' ``__init__.py`` files, and the helpers they import when the config is loaded).
Python source only, at most ``MAX_FILES`` files and ``MAX_BYTES`` bytes; the archive is
byte-identical for the same sources (sorted names, fixed times and permissions).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import shutil
import site
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from engine.errors import UserError

#: The packages the image holds: their strategies (the built-ins) need no upload.
IMAGE_PACKAGES = frozenset({"engine", "batch_jobs", "backtest_cli"})
MAX_FILES = 500
MAX_BYTES = 20 * 2**20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class CodeBundle:
    archive: bytes
    sha256: str
    files: tuple[str, ...]  # paths inside the archive (relative to the source root)
    modules: tuple[str, ...]  # the strategy modules it was packed for


def user_strategy_modules(strategy_paths: Iterable[str]) -> list[str]:
    """The modules of ``package.module:ClassName`` paths that the image does not hold, in order."""
    out: list[str] = []
    for path in strategy_paths:
        module = path.partition(":")[0]
        if module.split(".")[0] not in IMAGE_PACKAGES and module not in out:
            out.append(module)
    return out


def bundle_strategies(strategy_paths: Iterable[str]) -> CodeBundle | None:
    """The archive of the user strategy modules behind ``strategy_paths`` (already imported by the
    config's loading), or None when every strategy is the image's."""
    modules = user_strategy_modules(strategy_paths)
    if not modules:
        return None
    files: dict[str, Path] = {}
    for name in modules:
        module = sys.modules.get(name) or importlib.import_module(name)
        root = source_root(module)
        for loaded_name, loaded in sorted(list(sys.modules.items())):
            rel = _relative_source(loaded_name, loaded, root)
            if rel is not None and rel.split("/")[0] not in IMAGE_PACKAGES:
                files.setdefault(rel, root / rel)
    if len(files) > MAX_FILES:
        raise UserError(f"strategy code: {len(files)} source files to upload with the run (at most {MAX_FILES}); "
                        "keep strategy packages small")
    return CodeBundle(*_zip(files), modules=tuple(modules))


def source_root(module) -> Path:
    """The folder ``module`` was imported from (its ``sys.path`` entry); UserError when it cannot be shipped."""
    name = module.__name__
    file = getattr(module, "__file__", None)
    if not file:
        raise UserError(f"strategy module {name!r} has no source file; Batch jobs import strategies from the "
                        "source uploaded with the run")
    path = Path(file).resolve()
    if path.suffix != ".py":
        raise UserError(f"strategy module {name!r} is {path.name}, not Python source; only source can be "
                        "uploaded with a Batch run")
    base = path.parent if path.name == "__init__.py" else path.with_suffix("")
    parts = name.split(".")
    root = base.parents[len(parts) - 1]
    if root.joinpath(*parts) != base:
        raise UserError(f"strategy module {name!r} lives at {path}, not where its name says; name it from the "
                        "folder that holds its package")
    if _installed(root):
        raise UserError(f"strategy module {name!r} comes from an installed package ({root}); a Batch job cannot "
                        "install it: name the strategy from a source folder (run from the folder holding its "
                        "package)")
    return root


def _installed(root: Path) -> bool:
    paths = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    resolved = {Path(p).resolve() for p in paths if p}
    return root in resolved or any(part in ("site-packages", "dist-packages") for part in root.parts)


def _relative_source(name: str, module, root: Path) -> str | None:
    """``module``'s file relative to ``root`` when it was loaded from there under its own name, else None."""
    file = getattr(module, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return None
    path = Path(file).resolve()
    parts = name.split(".")
    base = path.parent if path.name == "__init__.py" else path.with_suffix("")
    if root.joinpath(*parts) != base:
        return None
    return path.relative_to(root).as_posix()


def _zip(files: dict[str, Path]) -> tuple[bytes, str, tuple[str, ...]]:
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for rel in sorted(files):
            data = files[rel].read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise UserError(f"strategy code: more than {MAX_BYTES // 2**20} MB of source to upload with the "
                                "run; keep strategy packages small")
            info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    archive = buf.getvalue()
    return archive, hashlib.sha256(archive).hexdigest(), tuple(sorted(files))


# --------------------------------------------------------------------------- in the job

def install_code(archive: bytes, sha256: str, folder: Path) -> Path:
    """Check ``archive`` against the recorded ``sha256``, unpack it into ``folder`` (once: a folder
    already there holds the same bytes) and append ``folder`` to ``sys.path``. Returns ``folder``."""
    digest = hashlib.sha256(archive).hexdigest()
    if digest != sha256:
        raise UserError(f"strategy code: the uploaded archive's SHA-256 is {digest[:16]}…, not the {sha256[:16]}… "
                        "recorded when the run was submitted; submit the run again")
    folder = Path(folder)
    if not folder.is_dir():
        _unpack(archive, folder)
    entry = str(folder)
    if entry not in sys.path:
        sys.path.append(entry)  # last: an installed package is never shadowed
        importlib.invalidate_caches()
    return folder


def _unpack(archive: bytes, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if any(p in ("", ".", "..") or "\\" in p for p in parts) or not parts[-1].endswith(".py"):
                    raise UserError(f"strategy code: refusing archive entry {info.filename!r} (not a plain .py "
                                    "path)")
                target = tmp.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, folder)
    except OSError:  # another job of this run on the same machine unpacked it first
        if not folder.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def check_imported_from(strategy_paths: Iterable[str], folder: Path) -> None:
    """Every user strategy module was imported from ``folder`` (the uploaded code), not from elsewhere."""
    root = Path(folder).resolve()
    for name in user_strategy_modules(strategy_paths):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file is None or not Path(file).resolve().is_relative_to(root):
            top = name.split(".")[0]
            raise UserError(f"strategy module {name!r} was imported from {file}, not from the code uploaded with "
                            f"the run: an installed package of this image takes the name {top!r}; rename the "
                            "strategy's package")
