"""The pandas-facing side of the fast path: unwrap, call the compiled loop, re-wrap.

``sweep`` evaluates many combinations of one strategy in one streaming pass over time chunks and
returns every metric per combination; ``detail`` re-runs one combination recording its equity
curve and trades (used for the top-K). ``prepare`` compiles (or loads) what a sweep will call.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..candles import Candles
from ..execution import Execution
from ..grid import StrategySweep
from ..perp.inputs import PerpInputs
from ..result import BLOCK_R, BLOCK_R2, POWER_SUMS, RunResult
from ..timeutil import periods_per_year
from ..trade import EXIT_REASONS, Trade
from . import plan as P
from . import state as S
from .rule_errors import RuleRaised, watch
from .units import compiled_loop, indicator_functions, rule_functions

#: Bars per time chunk. The indicator block for a chunk stays cache-resident
#: while every combination streams over it.
CHUNK = 4096
#: A sweep makes at most this many parallel calls (they drive the progress bar)…
SEGMENTS = 16
#: …each worth at least this many candle·strategies: a call costs a thread hand-off.
SEGMENT_WORK = 8_000_000
#: Large sweeps split into up to this many blocks per thread, of at least BLOCK_MIN
#: combinations, handed out one at a time: a thread slowed by other load on its core takes
#: fewer (with one block per thread the sweep waits for the slowest). Small sweeps keep one
#: block per thread: each block computes the indicators it needs, once per chunk.
BLOCKS_PER_THREAD, BLOCK_MIN = 4, 256


#: Below this many candle·strategies a sweep runs on one thread: handing blocks to several threads
#: costs more than it saves.
POOL_WORK = 1_000_000
_pools: dict[int, ThreadPoolExecutor] = {}
#: Ctrl-C waits this long for the blocks to stop at their next chunk (a rule looping forever never does)
STOP_WAIT = 0.5
_abandoned: list = []  # the buffers of blocks still running after an interrupt (their threads read them)


def _run_blocks(pool: ThreadPoolExecutor, block, nblocks: int, args: tuple, blk: "_Blocks") -> None:
    """The blocks one at a time, to whichever thread of ``pool`` is free. The calling thread only
    waits, so Ctrl-C reaches it at once even inside a long kernel call (a kernel holds a thread
    until it returns): it then raises the blocks' stop flag, which the kernel reads every chunk."""
    futures = [pool.submit(block, b, *args) for b in range(nblocks)]
    try:
        for f in futures:
            f.result()
    except BaseException:
        blk.ctxs[:, S.X_STOP] = 1
        for f in futures:
            f.cancel()
        _, running = wait(futures, timeout=STOP_WAIT)
        if running:
            _abandoned.append(blk)
        raise


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, kept for the next sweep (threads cost ~0.1 ms each to start)."""
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="sweep")
    return pool


def _init_state(m: int, capital: float) -> tuple[np.ndarray, np.ndarray]:
    F = np.zeros((m, S.NF))
    I = np.zeros((m, S.NI), dtype=np.int64)
    F[:, S.CASH] = F[:, S.PREV_E] = F[:, S.PEAK] = capital
    F[:, S.BEST] = -np.inf
    F[:, S.WORST] = np.inf
    I[:, S.AT_PEAK] = 1
    return F, I


_FUNCTIONS: dict[tuple[StrategySweep, bool, bool], tuple[np.ndarray, dict]] = {}


def _functions(sweep: StrategySweep, moments: bool, perp: bool) -> tuple[np.ndarray, dict]:
    """The rule's function table (by address) and each indicator definition's chunk functions,
    compiled or loaded for everything the whole sweep may call."""
    done = _FUNCTIONS.get((sweep, moments, perp))
    if done is None:
        done = _FUNCTIONS[sweep, moments, perp] = _compile_functions(sweep, moments, perp)
        if len(_FUNCTIONS) > 64:  # sweeps come and go (tests): keep the table small
            _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
    return done


def _compile_functions(sweep: StrategySweep, moments: bool, perp: bool) -> tuple[np.ndarray, dict]:
    addr = rule_functions(sweep.strategy, P.rule_functions(sweep, moments, perp))
    fns = np.zeros(S.NA, dtype=np.int64)
    for name, a in addr.items():
        fns[_SLOT[name.removesuffix("_m").removesuffix("_perp")]] = a
    chunks = {d: indicator_functions(d, names) for d, names in P.chunk_functions(sweep).items()}
    return fns, chunks


_SLOT = {"bar": S.A_BAR, "scan_long": S.A_SCAN_LONG, "scan_short": S.A_SCAN_SHORT, "scan_both": S.A_SCAN_BOTH,
         "hold_long": S.A_HOLD_LONG, "hold_long_both": S.A_HOLD_LONG_BOTH, "hold_short": S.A_HOLD_SHORT,
         "hold_short_both": S.A_HOLD_SHORT_BOTH}


class _Blocks:
    """Per-block buffers, state, frames and contexts (the contexts hold the others' addresses, so
    this object must outlive every call that uses them)."""

    def __init__(self, p: P.Plan, lay: P.Layout, need: list[list[int]], chunks: dict, candles: Candles):
        nb = len(need)
        self.bufs = np.full((nb, lay.buf_len), np.nan)
        self.states = np.zeros((nb, lay.state_len))
        self.frames = np.zeros((nb, S.HF))
        self.iframes = np.zeros((nb, S.HI), dtype=np.int64)
        tables = [P.groups(p.nodes, q, chunks) for q in need]
        self.groups = np.zeros((nb, max(len(t) for t in tables), S.GROUP_COLS), dtype=np.int64)
        self.ngroups = np.zeros(nb, dtype=np.int64)
        for b, t in enumerate(tables):
            self.groups[b, :len(t)] = t
            self.ngroups[b] = int((t[:, S.G_COUNT] > 0).sum())
        moves = [[q for q in qs if lay.margin[q] > 0] for qs in need]
        self.moves = np.zeros((nb, max(1, max(map(len, moves)))), dtype=np.int64)
        self.nmoves = np.array([len(x) for x in moves], dtype=np.int64)
        for b, x in enumerate(moves):
            self.moves[b, :len(x)] = x
        self.keep = (p, lay, candles)
        self.perp: tuple | None = None  # set by _perp_context
        self.ctxs = np.zeros((nb, S.CTX_SIZE), dtype=np.int64)
        c = candles
        for b in range(nb):
            x = self.ctxs[b]
            x[S.X_O], x[S.X_H], x[S.X_L], x[S.X_C], x[S.X_V] = (a.ctypes.data for a in (c.open, c.high, c.low,
                                                                                        c.close, c.volume))
            x[S.X_N] = len(c)
            x[S.X_BUF], x[S.X_STATE] = self.bufs[b].ctypes.data, self.states[b].ctypes.data
            x[S.X_NODES], x[S.X_NPAR], x[S.X_K] = lay.table.ctypes.data, lay.npar.ctypes.data, len(lay.table)
            x[S.X_GROUPS] = self.groups[b].ctypes.data
            x[S.X_SLOTS], x[S.X_KI] = p.slots.ctypes.data, p.slots.shape[1]
            x[S.X_FP], x[S.X_NFP] = p.fparams.ctypes.data, p.fparams.shape[1]
            x[S.X_IP], x[S.X_NIP] = p.iparams.ctypes.data, p.iparams.shape[1]
            x[S.X_FRAME], x[S.X_IFRAME] = self.frames[b].ctypes.data, self.iframes[b].ctypes.data


_NONE_F = np.zeros(0)


def _perp_args(perp: PerpInputs | None) -> tuple:
    """The loop's perp arguments: off (and empty arrays, one compiled type) for spot."""
    if perp is None:
        return False, _NONE_F, _NONE_F, _NONE_F, _NONE_F, _NONE_F, _NONE_F
    return True, perp.liq_high, perp.liq_low, perp.funding, perp.br_max, perp.br_mmr, perp.br_cum


def _perp_context(blk: "_Blocks", perp: PerpInputs | None) -> None:
    """The perp hold loops read the liquidation range and the funding through the block contexts."""
    if perp is not None:
        blk.ctxs[:, S.X_LIQ_HIGH] = perp.liq_high.ctypes.data
        blk.ctxs[:, S.X_LIQ_LOW] = perp.liq_low.ctypes.data
        blk.ctxs[:, S.X_FUND] = perp.funding.ctypes.data
        funded = perp.funding != 0.0
        gates = (np.where(funded, np.inf, perp.liq_high), np.where(funded, -np.inf, perp.liq_low))
        blk.ctxs[:, S.X_GATE_HIGH], blk.ctxs[:, S.X_GATE_LOW] = (g.ctypes.data for g in gates)
        blk.perp = (perp, gates)  # the addresses stay valid while the blocks live


def _contiguous(candles: Candles) -> None:
    for a in (candles.open, candles.high, candles.low, candles.close, candles.volume):
        if not (a.flags.c_contiguous and a.dtype == np.float64):
            raise ValueError("the fast path needs C-contiguous float64 price arrays")


def sweep(sweep: StrategySweep, candles: Candles, execution: Execution, *, indices: np.ndarray | None = None,
          chunk: int = CHUNK, progress=None, window: tuple[int, int] | None = None, test: bool = False,
          moments: bool = False, block_edges: np.ndarray | None = None,
          perp: PerpInputs | None = None) -> dict[str, np.ndarray]:
    """Every metric for the combinations ``indices`` of ``sweep`` (default: all), as arrays.

    Research validation (docs/semantics.md, "Windows"): ``window = (a, b)`` runs on bars
    [a, b) (indicators warm from bar 0), ``test`` makes it a test window. ``moments`` adds
    ``POWER_SUMS`` (m, 4): Σr, Σr², Σr³, Σr⁴; ``block_edges`` (S + 1 edges over the window's
    returns) adds ``BLOCK_R`` and ``BLOCK_R2`` (m, S): Σr and Σr² per block, the differences
    of the running sums at segment ends placed on the block edges (no extra work per bar)."""
    import numba

    _contiguous(candles)
    indices = np.arange(len(sweep)) if indices is None else np.asarray(indices, dtype=np.int64)
    p = P.plan(sweep, indices)
    m = len(indices)
    F, I = _init_state(m, execution.capital)
    fns, chunks = _functions(sweep, moments, perp is not None)
    c = candles
    a, n = (0, len(c)) if window is None else (int(window[0]), int(window[1]))
    chunk = max(1, min(chunk, n))
    lay = P.layout(p.nodes, chunk)
    threads = numba.get_num_threads()
    lo, hi, need = P.blocks(p.slots, p.nodes, threads, BLOCKS_PER_THREAD, BLOCK_MIN)
    blk = _Blocks(p, lay, need, chunks, candles)
    _perp_context(blk, perp)
    pargs = _perp_args(perp)
    bars = max(-(-(n - a) // SEGMENTS), SEGMENT_WORK // max(m, 1))
    segment = chunk * max(1, -(-bars // chunk))
    cuts = set(range(a, n, segment)) | {n}
    if block_edges is not None:
        block_ends = {a + int(x): k for k, x in enumerate(block_edges)}
        cuts |= set(block_ends)
        snaps = np.zeros((len(block_edges), 2, m))
    cuts = sorted(cuts)

    def call(t0, t1, blocks_hi):
        args = (t0, t1, n, chunk, blk.ctxs, blk.frames, blk.iframes, blk.groups, blk.ngroups, blk.moves,
                blk.nmoves, lo, blocks_hi, fns, c.open, c.high, c.low, c.close, p.start_bar, p.rules, p.masks,
                execution.slippage, execution.commission, execution.next_open, test, moments, F, I, *pargs)
        try:
            with watch():
                _run_blocks(pool, block, len(lo), args, blk)
        except RuleRaised as raised:
            hit = np.flatnonzero(I[:, S.RAISED])
            if len(hit):
                raised.combination, raised.bar = int(indices[hit[0]]), int(I[hit[0], S.RAISED]) - 1
            raise

    block = compiled_loop("sweep_block", 0, 0, 1, n, chunk, blk.ctxs, blk.frames, blk.iframes, blk.groups,
                          blk.ngroups, blk.moves, blk.nmoves, lo, lo, fns, c.open, c.high, c.low, c.close,
                          p.start_bar, p.rules, p.masks, execution.slippage, execution.commission,
                          execution.next_open, test, moments, F, I, *pargs)
    pool = _pool(min(threads, len(lo)) if m * (n - a) >= POOL_WORK else 1)
    # Indicators only over [0, a): no combination simulates there (empty blocks), so they are warm at a.
    for t0 in range(0, a, max(segment, chunk)):
        call(t0, min(a, t0 + max(segment, chunk)), lo)
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        call(t0, t1, hi)
        if block_edges is not None and t1 in block_ends:
            snaps[block_ends[t1], 0], snaps[block_ends[t1], 1] = F[:, S.SUM_R], F[:, S.SUM_R2]
        if progress is not None:
            progress(m * (t1 - t0) / (n - a))
    cols = finalize(F, I, (a, n), candles, periods_per_year(candles.interval_ms), execution.capital)
    if moments:
        cols[POWER_SUMS] = F[:, [S.SUM_R, S.SUM_R2, S.SUM_R3, S.SUM_R4]].copy()
    if block_edges is not None:
        cols[BLOCK_R] = np.diff(snaps[:, 0], axis=0).T.copy()
        cols[BLOCK_R2] = np.diff(snaps[:, 1], axis=0).T.copy()
    return cols


def detail(sweep: StrategySweep, i: int, candles: Candles, execution: Execution, *,
           window: tuple[int, int] | None = None, test: bool = False, perp: PerpInputs | None = None) -> RunResult:
    """Re-simulate combination ``i`` recording its equity curve and trade list (on bars
    [a, b) of ``window``, a test window if ``test``)."""
    _contiguous(candles)
    p = P.plan(sweep, np.array([i]))
    F, I = _init_state(1, execution.capital)
    c = candles
    a, n = (0, len(c)) if window is None else (int(window[0]), int(window[1]))
    fns = np.zeros(S.NA, dtype=np.int64)
    fns[S.A_BAR] = rule_functions(sweep.strategy, ["bar"])["bar"]
    chunks = {d: indicator_functions(d, ["chunk1"]) for d in {node.definition for node in p.nodes}}
    lay = P.layout(p.nodes, max(n, 1))
    blk = _Blocks(p, lay, [list(range(len(p.nodes)))], chunks, candles)
    eq = np.empty(len(c))
    tri = np.empty((n - a + 1, 4), dtype=np.int64)
    trf = np.empty((n - a + 1, S.TRF))
    with watch():
        compiled_loop("run_detail", a, n, blk.ctxs[0], blk.frames[0], blk.iframes[0], blk.groups[0], blk.ngroups[0],
                      fns, c.open, c.high, c.low, c.close, p.start_bar, p.rules, p.masks, execution.slippage,
                      execution.commission, execution.next_open, test, False, F, I, eq, tri, trf, *_perp_args(perp))
    t = c.open_time
    k = I[0, S.N_REC]
    lev = float(p.rules[0, S.R_LEVERAGE])
    trades = list(map(Trade, tri[:k, 0].tolist(), tri[:k, 1].tolist(), t[tri[:k, 0]].tolist(), t[tri[:k, 1]].tolist(),
                      *trf[:k, :6].T.tolist(), [EXIT_REASONS[r] for r in tri[:k, 2].tolist()],
                      ["long" if d == 1 else "short" for d in tri[:k, 3].tolist()], trf[:k, 6].tolist(),
                      [lev] * k))
    side = int(I[0, S.POS])
    if side != 0:
        qty, cost, entry_price, entry_fee = F[0, S.QTY], F[0, S.ENTRY_COST], F[0, S.ENTRY_PRICE], F[0, S.ENTRY_FEE]
        last = float(c.close[n - 1])
        # marked at the last close, no exit fee (the same operations as the reference)
        pnl = qty * last - 0.0 - cost if side == 1 else qty * (entry_price - last) - entry_fee - 0.0
        funding = 0.0
        if perp is not None:
            funding = float(F[0, S.TRADE_FUNDING])
            pnl = pnl + funding
            cost = F[0, S.MARGIN] + entry_fee
        e = int(I[0, S.ENTRY_BAR])
        trades.append(Trade(e, n - 1, int(t[e]), int(t[n - 1]), float(entry_price), last, float(qty),
                            float(entry_fee), float(pnl), float(pnl / cost), "open", "long" if side == 1 else "short",
                            funding, lev))
    metrics = _row(finalize(F, I, (a, n), candles, periods_per_year(c.interval_ms), execution.capital), 0)
    return RunResult(np.concatenate([[execution.capital], eq[a:n]]), trades, metrics)


def indicators(specs: list, candles: Candles, *, chunk: int = CHUNK, states: bool = False):
    """The fast path's values of the concrete indicators ``specs`` over ``candles`` (len(specs), n),
    computed chunk by chunk as a sweep computes them (tests compare them with the reference);
    with ``states``, also each spec's state array at the end."""
    _contiguous(candles)
    specs = [spec.resolve() for spec in specs]  # derived prices become indicators
    nodes: list = []
    for spec in specs:
        nodes += [x for x in spec.nodes() if x not in nodes]
    n = len(candles)
    lay = P.layout(nodes, max(1, min(chunk, n)))
    chunks = {d: indicator_functions(d, ["chunk1", "chunk4"]) for d in {x.definition for x in nodes}}
    p = P.Plan(nodes, np.zeros((1, 0), dtype=np.int64), np.zeros((1, 0)), np.zeros((1, 0), dtype=np.int64),
               np.zeros(1, dtype=np.int64), np.zeros((1, S.NR)), np.zeros((1, S.ND), dtype=np.int64))
    blk = _Blocks(p, lay, [list(range(len(nodes)))], chunks, candles)
    out = np.empty((len(specs), n))
    wanted = np.array([nodes.index(s) for s in specs], dtype=np.int64)
    compiled_loop("run_indicators", n, max(1, min(chunk, n)), blk.ctxs[0], blk.groups[0], blk.ngroups[0],
                  blk.moves[0], blk.nmoves[0], wanted, out)
    if not states:
        return out
    table = lay.table
    return out, [blk.states[0, table[q, S.N_STATE]:table[q, S.N_STATE] + table[q, S.N_SIZE]].copy() for q in wanted]


def prepare(sw: StrategySweep, *, moments: bool = False, validated: bool = False, perp: bool = False) -> None:
    """Compile, or load from the disk cache, everything a sweep of ``sw`` and its detail runs
    will call, announcing each compile (``engine.fast.announce``); ``perp``: a perp sweep's."""
    from ..data.synthetic import generate_candles
    from ..perp.brackets import Bracket
    from ..perp.inputs import build

    candles = generate_candles(64, seed=1)
    ex = Execution()
    inputs = build(candles.high, candles.low, np.zeros(len(candles)), (Bracket(1e12, 0.004, 0.0),), "last",
                   True) if perp else None
    with watch(ignore=True):  # a rule that raises is reported by the sweep, on the real candles
        sweep(sw, candles, ex, indices=np.arange(1), moments=moments, perp=inputs)
        detail(sw, 0, candles, ex, test=validated)


def _row(cols: dict[str, np.ndarray], i: int) -> dict:
    out = {}
    for k, v in cols.items():
        x = v[i].item()
        out[k] = None if isinstance(x, float) and math.isnan(x) else x
    return out


def finalize(F: np.ndarray, I: np.ndarray, window: tuple[int, int], candles: Candles, ppy: float,
             capital: float) -> dict[str, np.ndarray]:
    """Metrics from the streamed accumulators of a run on bars [a, b); NaN marks 'no defined value'."""
    a, b = window
    n = b - a
    T = float(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e0 = capital
        eT = F[:, S.PREV_E]
        busted = eT <= 0.0  # a short's bust: returns on non-positive equity mean nothing
        mean = F[:, S.SUM_R] / T
        var = (F[:, S.SUM_R2] - F[:, S.SUM_R] * F[:, S.SUM_R] / T) / (T - 1.0) if n >= 2 else np.full(len(F), np.nan)
        sd = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where((sd > 0) & ~busted, mean / sd * math.sqrt(ppy), np.nan)
        down = F[:, S.SUM_DOWN2] / T
        sortino = np.where((down > 0) & ~busted, mean / np.sqrt(down) * math.sqrt(ppy), np.nan)
        growth = eT / e0
        cagr = np.where(busted, np.nan, growth ** (ppy / T) - 1.0)
        max_dd = F[:, S.MAX_DD]
        dur = np.where(I[:, S.AT_PEAK] == 1, I[:, S.MAX_DUR], np.maximum(I[:, S.MAX_DUR], b - I[:, S.PEAK_I]))
        nc = I[:, S.N_CLOSED].astype(np.float64)
        has = nc > 0
        loss = F[:, S.LOSS_PNL]
        cols = {
            "sharpe": sharpe,
            "sortino": sortino,
            "total_return": growth - 1.0,
            "pnl": eT - e0,
            "cagr": cagr,
            "calmar": np.where(max_dd > 0, cagr / max_dd, np.nan),
            "max_drawdown": max_dd,
            "max_drawdown_abs": F[:, S.MAX_DD_ABS],
            "max_drawdown_duration": dur.astype(np.int64),
            "n_trades": I[:, S.N_CLOSED].copy(),
            "win_rate": np.where(has, I[:, S.N_WINS] / nc, np.nan),
            "profit_factor": np.where(loss < 0, F[:, S.WIN_PNL] / -loss, np.nan),
            "avg_trade_return": np.where(has, F[:, S.RET_SUM] / nc, np.nan),
            "best_trade": np.where(has, F[:, S.BEST], np.nan),
            "worst_trade": np.where(has, F[:, S.WORST], np.nan),
            "expectancy": np.where(has, F[:, S.PNL_SUM] / nc, np.nan),
            "exposure": I[:, S.EXPO] / T,
            "avg_bars_held": np.where(has, I[:, S.HELD_SUM] / nc, np.nan),
            "total_fees": F[:, S.FEES].copy(),
            "buy_and_hold_return": np.full(len(F), candles.close[b - 1] / candles.close[a] - 1.0),
            "final_equity": eT.copy(),
            "total_funding": F[:, S.TOTAL_FUNDING].copy(),
            "n_liquidations": I[:, S.N_LIQ].copy(),
        }
    for k in ("sharpe", "sortino", "cagr", "calmar", "profit_factor"):
        cols[k] = np.where(np.isfinite(cols[k]), cols[k], np.nan)
    return cols
