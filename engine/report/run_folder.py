"""The one writer of a run folder, shared by ``backtest run`` and the Batch ``reduce`` step.

It ranks the summary, re-simulates what the report needs, writes every file
(``engine.report.writer``), the interactive ``report.html`` (``engine.report.html``)
and writes ``manifest.json`` last: its presence means the folder is complete.
Every file goes under the one folder the caller gives, so the caller decides where
that folder lives (a temporary folder renamed into place, an upload, ...).

A local run writes into a hidden partial folder beside its destination
(``PartialRunFolder``): ``<root>/.partial-<pid>-<run_id>/``, renamed to
``<root>/<run_id>/`` only once every file is written, so a folder under its run id
is always complete. A run that is killed or fails (a full disk included) leaves
only the partial folder; ``clean_partial_folders`` removes those whose writer has
ended, and never one whose writer is alive. The writer holds an exclusive ``flock``
on a lock file beside its folder, ``<root>/.partial-lock-<pid>-<run_id>``, taken
before the folder exists: the kernel releases it when the process ends, however it
ends, so "the lock can be taken" means "the writer is gone", even if its pid has
been reused.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .. import __version__
from ..candles import Candles
from ..config import Config
from ..errors import ResourceError
from ..result import RunResult
from ..run_id import check_run_id
from ..sweep import run_detail
from ..timeutil import format_time
from ..validation import report as vr
from ..validation.evaluate import ValidationOutcome
from .html import REPORT, TopCombination, build_payload, plotly_js_path, write_html_report
from .ranking import rank, ranked_rows
from .writer import JSON_ALL_LIMIT, PARQUET_LIMIT, ChartPool, RunContext, config_text, swept_axes, write_report

MANIFEST = "manifest.json"


def _write_validation(out: Path, cfg: Config, outcome: ValidationOutcome, ranked: pd.DataFrame, candles: Candles,
                      pool: ChartPool | None) -> dict:
    """validation.json, walk_forward.csv and (with report.png) the charts; returns the report.html section."""
    doc = vr.document(outcome, ranked, candles, holdout_fraction=cfg.validation.holdout)
    vr.write_json(out / vr.VALIDATION_JSON, doc)
    folds_frame = None
    if outcome.walk_forward is not None:
        folds_frame = vr.walk_forward_frame(outcome, cfg.grid, candles)
        folds_frame.to_csv(out / vr.WALK_FORWARD_CSV, index=False, lineterminator="\n")
    if pool is not None:
        (out / "plots").mkdir(exist_ok=True)
        for chart in vr.charts(outcome, out / "plots", ranked):
            pool.submit(chart)
    return vr.html_section(outcome, ranked, folds_frame)


def _compact(section: dict) -> dict:
    """What the manifest keeps of a report.html section: everything but chart data."""
    return {k: v for k, v in section.items() if k != "charts"}


@dataclass(frozen=True)
class RunFolder:
    path: Path
    ranked: pd.DataFrame
    manifest: dict


def data_summary(c: Candles) -> dict:
    return {
        "source": c.source, "symbol": c.symbol, "interval": c.interval, "rows": len(c),
        "first_open_time": format_time(c.open_time[0]), "last_open_time": format_time(c.open_time[-1]),
        "gaps": c.gaps.count if c.gaps else 0,
        "gaps_detail": c.gaps.describe(c.interval_ms) if c.gaps else "no gaps",
        "fingerprint": c.fingerprint(),
    }


def best_of(ranked: pd.DataFrame, rank_by: str) -> dict | None:
    """The combination ranked first, with its rank metric (None when nothing is ranked)."""
    top = ranked_rows(ranked)
    if not len(top):
        return None
    row = top.iloc[0]
    value = row[rank_by]
    return {"strategy_id": str(row["strategy_id"]), "metric": rank_by,
            "value": None if pd.isna(value) else float(value),
            "n_trades": None if pd.isna(row["n_trades"]) else int(row["n_trades"])}


def _header(cfg: Config, data: dict, engine: str, ranked: pd.DataFrame, notices: tuple[str, ...]) -> dict:
    ex = cfg.execution
    return {
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": cfg.digest(),
        "data": data,
        "execution": {"capital": ex.capital, "commission": ex.commission, "slippage": ex.slippage, "fill": ex.fill},
        "risk": {"stop_loss": list(cfg.stop_loss), "take_profit": list(cfg.take_profit),
                 "trailing_stop": list(cfg.trailing_stop), "max_bars": list(cfg.max_bars)},
        "portfolio": {"direction": list(cfg.direction), "size": list(cfg.size)},
        "strategies": [sw.strategy.name for sw in cfg.grid],
        "combinations": len(cfg.grid),
        "filtered_by_constraints": cfg.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(ranked["rank"].notna().sum()),
        "top_k": cfg.report.top_k,
        "notices": list(notices),
    }


def write_run_folder(out: Path, cfg: Config, summary: pd.DataFrame, candles: Candles, *, run_id: str,
                     engine: str = "fast", notices: tuple[str, ...] = (), timings: dict | None = None,
                     extra: dict | None = None, charts: ChartPool | None = None, workers: int = 1,
                     validation: dict | None = None, outcome: ValidationOutcome | None = None) -> RunFolder:
    """Write the report of ``summary`` (one row per combination of ``cfg.grid``) into ``out``.

    PNG charts (``report.png``) render on ``charts`` if given, else on a pool of ``workers``.

    ``validation``: optional research-validation results, drawn as their own section of
    report.html (see :mod:`engine.report.html` for the shape) and kept in the manifest.

    ``outcome``: the figures of a ``validation`` config section (``engine.validation.finish``).
    The summary's metrics are then the in-sample window's, so the top combinations are drawn
    and re-simulated on it; ``validation.json``, ``walk_forward.csv`` and the validation
    charts are written, and the report.html section is built from it.
    """
    t0 = time.perf_counter()
    created_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders runs made in one second
    data = data_summary(candles)
    ctx = RunContext(cfg.digest(), data["fingerprint"], cfg.raw, cfg.report.rank_by, cfg.report.top_k,
                     cfg.execution.capital)
    ranked = rank(summary, cfg.report.rank_by, cfg.report.min_trades)
    top: list[TopCombination] = []
    # the bars the summary's metrics come from: a run on [0, cut) is a run on those bars alone
    view = candles if outcome is None else candles.slice(0, outcome.plan.in_sample.b)

    def detail(g: int) -> RunResult:
        sw, i = cfg.grid.locate(g)
        return run_detail(cfg, sw, i, view, engine=engine)

    def keep(row: dict, result: RunResult) -> None:
        sw, _ = cfg.grid.locate(int(row["combination"]))
        top.append(TopCombination(row, sw.param_names, result))

    if not cfg.report.png:
        pool_cm = nullcontext(None)
    else:
        pool_cm = nullcontext(charts) if charts is not None else ChartPool(workers)
    with pool_cm as pool:
        write_report(out, ranked, view, ctx, detail, charts=pool, on_top=keep)
        if outcome is not None:
            validation = _write_validation(out, cfg, outcome, ranked, candles, pool)
        t_html = time.perf_counter()
        payload = build_payload(header=_header(cfg, data, engine, ranked, notices), ranked=ranked,
                                swept=swept_axes(ranked), candles=view, capital=cfg.execution.capital, top=top,
                                rank_by=cfg.report.rank_by, config_text=config_text(ctx), validation=validation)
        del top[:]  # the equity curves are no longer needed
        write_html_report(out, payload, {"run_id": run_id, "created_at": created_at, "timings": dict(timings or {})})
        t_html = time.perf_counter() - t_html
        if pool is not None:
            pool.wait()
    manifest = {
        "run_id": run_id,
        "created_at": created_at,
        "experiment": cfg.name,
        "engine": engine,
        "engine_version": __version__,
        "config_hash": ctx.config_hash,
        "data": data,
        "combinations": len(cfg.grid),
        "filtered_by_constraints": cfg.grid.filtered,
        "rank_by": cfg.report.rank_by,
        "min_trades": cfg.report.min_trades,
        "ranked": int(ranked["rank"].notna().sum()),
        "best": best_of(ranked, cfg.report.rank_by),
        "report": REPORT,
        "notices": list(notices),
        **({"validation": _compact(validation)} if validation is not None else {}),
        **(extra or {}),
        "timings": {**(timings or {}), "report_s": round(time.perf_counter() - t0, 3),
                    "report_html_s": round(t_html, 3)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return RunFolder(out, ranked, manifest)


# --- run ids and partial folders -------------------------------------------------------------------
PARTIAL_PREFIX = ".partial-"
LOCK_PREFIX = ".partial-lock-"
_PARTIAL = re.compile(r"^\.partial-(\d+)-(.+)$")
_LOCK = re.compile(r"^\.partial-lock-(\d+)-(.+)$")


class PartialRunFolder:
    """A run folder being written, hidden until ``publish`` renames it into place."""

    def __init__(self, root: Path, base: str, run_id: str, lock_fd: int) -> None:
        self.root, self.base, self.run_id, self._lock_fd = root, base, run_id, lock_fd
        self.path = root / f"{PARTIAL_PREFIX}{os.getpid()}-{run_id}"
        self.lock_path = root / f"{LOCK_PREFIX}{os.getpid()}-{run_id}"

    @classmethod
    def create(cls, root: Path, base: str) -> "PartialRunFolder":
        """Lock, then create, a partial folder for run ``base`` (or ``base-2``… if that name is taken)."""
        check_run_id(base)
        root.mkdir(parents=True, exist_ok=True)
        run_id = _free_name(root, base)
        lock_path = root / f"{LOCK_PREFIX}{os.getpid()}-{run_id}"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:  # a filesystem without locks: its partial folders are never cleaned
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
            os.write(fd, f"{os.getpid()}\n".encode())
            folder = cls(root, base, run_id, fd)
            folder.path.mkdir()
        except BaseException:
            os.close(fd)
            lock_path.unlink(missing_ok=True)
            raise
        return folder

    def publish(self, manifest: dict | None = None) -> Path:
        """Rename the finished folder to ``<root>/<run_id>``; if another run took that name meanwhile, to the
        next free ``<base>-k``, correcting ``manifest.json`` (and ``manifest``) first. Returns the final path."""
        for _ in range(1000):
            try:
                os.rename(self.path, self.root / self.run_id)  # fails on an existing non-empty folder or a file
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise
                self._rename_run(_free_name(self.root, self.base, own={self.path.name, self.lock_path.name}),
                                 manifest)
                continue
            self.path = self.root / self.run_id
            self.release()
            return self.path
        raise ResourceError(f"{self.root}: no free run folder name for {self.base}")

    def _rename_run(self, name: str, manifest: dict | None) -> None:
        """Take the name ``name`` instead: the lock file and manifest follow (the partial folder keeps its name)."""
        self.run_id = name
        path = self.path / MANIFEST
        if path.exists():
            doc = json.loads(path.read_text())
            doc["run_id"] = name
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            os.replace(tmp, path)
        if manifest is not None:
            manifest["run_id"] = name

    def release(self) -> None:
        """Give up the folder: unlock it (a failed run's folder is then left for ``clean_partial_folders``)."""
        if self._lock_fd is not None:
            if not self.path.name.startswith(PARTIAL_PREFIX):  # published: the lock file has no folder to guard
                self.lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None


def _free_name(root: Path, base: str, own: set[str] = frozenset()) -> str:
    """``base``, or the first ``base-k`` that neither a finished run nor another partial folder uses."""
    taken = set()
    try:
        entries = os.listdir(root)
    except OSError:  # not listable: the rename in ``publish`` still refuses a taken name
        entries = []
    for entry in entries:
        if entry in own:
            continue
        m = _PARTIAL.match(entry) or _LOCK.match(entry)
        taken.add(m.group(2) if m else entry)
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        if name not in taken:
            return name
    raise ResourceError(f"{root}: no free run folder name {base}, {base}-2 … {base}-999")


@dataclass(frozen=True)
class StaleFolder:
    path: Path
    pid: int


def clean_partial_folders(root: Path) -> list[StaleFolder]:
    """Remove the partial folders under ``root`` whose writer has ended; return what was removed.

    A folder whose lock is held, or whose lock file is missing while its pid is alive
    (a writer between creating its lock and its folder), is left alone.
    """
    try:
        entries = os.listdir(root)
    except OSError:  # missing, not a folder, or not listable: nothing this run can clean
        return []
    removed = []
    for entry in sorted(entries):
        m = _PARTIAL.match(entry)
        if m and (root / entry).is_dir() and not (root / entry).is_symlink():
            lock = root / f"{LOCK_PREFIX}{m.group(1)}-{m.group(2)}"
            held = _take_lock(lock)
            if held is None and (lock.exists() or _pid_alive(int(m.group(1)))):
                continue
            try:
                shutil.rmtree(root / entry, ignore_errors=True)
                if not (root / entry).exists():
                    removed.append(StaleFolder(root / entry, int(m.group(1))))
            finally:
                _drop_lock(lock, held)
        elif _LOCK.match(entry) and not (root / _LOCK.sub(r".partial-\1-\2", entry)).exists():
            held = _take_lock(root / entry)  # a lock left without its folder
            if held is not None:
                _drop_lock(root / entry, held)
    return removed


def _take_lock(path: Path) -> int | None:
    """An fd holding ``path``'s lock, or None if it is held by a live process (or does not exist)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _drop_lock(path: Path, fd: int | None) -> None:
    if fd is not None:
        path.unlink(missing_ok=True)
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- disk space --------------------------------------------------------------------------------------
#: Lower bounds of what each file takes. Measured on the default run (70,080 candles, 64 combinations,
#: 29,056 trades in its JSON): a summary row 466 bytes, a JSON header 1,216 bytes, a trade line 279 bytes,
#: report.html 677 KB, trades/*.csv 69 KB each, a PNG chart 74-78 KB; plotly.min.js is copied whole.
SUMMARY_ROW_BYTES = 150
PARQUET_ROW_BYTES = 12
JSON_HEAD_BYTES = 1_000
TRADE_LINE_BYTES = 200
REPORT_HTML_BYTES = 50_000
CHART_BYTES = 40_000
BLOCK = 4096
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def estimate_run_folder_bytes(combinations: int, top_k: int, strategies: int = 1, trade_lines: int = 0, *,
                              png: bool = False) -> int:
    """A lower bound of the size of a run folder: a disk with less free space cannot hold it.

    ``trade_lines`` is the number of trades its JSON files will list, when known (after the sweep).
    """
    top = min(top_k, combinations)
    json_files = combinations if combinations <= JSON_ALL_LIMIT else top

    def blocks(n: int) -> int:
        return math.ceil(n / BLOCK) * BLOCK

    summary = blocks(SUMMARY_ROW_BYTES * combinations)
    if combinations > PARQUET_LIMIT:
        summary += blocks(PARQUET_ROW_BYTES * combinations)
    files = json_files * blocks(JSON_HEAD_BYTES) + trade_lines * TRADE_LINE_BYTES + top * BLOCK  # + trades/*.csv
    files += blocks(REPORT_HTML_BYTES) + blocks(_plotly_bytes())
    if png:
        files += (2 * top + strategies) * blocks(CHART_BYTES)
    return summary + files + 3 * BLOCK  # config.yaml, manifest.json, the lock file


def _plotly_bytes() -> int:
    try:
        return plotly_js_path().stat().st_size
    except (OSError, RuntimeError):
        return 0


def trade_lines_in_report(summary: pd.DataFrame, top_k: int) -> int:
    """How many trade lines the run's JSON files will hold (the top K's, estimated, above ``JSON_ALL_LIMIT``)."""
    if not len(summary) or "n_trades" not in summary:
        return 0
    trades = summary["n_trades"].fillna(0)
    if len(summary) <= JSON_ALL_LIMIT:
        return int(trades.sum())
    return int(trades.median() * min(top_k, len(summary)))


def is_disk_full(exc: BaseException) -> bool:
    """An error that means the filesystem (or the file size limit) has no room for what is being written."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    text = str(exc)
    return isinstance(exc, OSError) and ("No space left on device" in text or "File too large" in text)


def disk_full_error(partial: PartialRunFolder, exc: BaseException) -> ResourceError:
    reason = getattr(exc, "strerror", None) or "no space left on device"
    return ResourceError(f"{partial.root}: {reason.lower()} while writing run {partial.run_id}; its incomplete "
                         f"folder {partial.path.name} is left there and the next run removes it; free some space "
                         "and run again")
