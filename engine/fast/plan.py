"""A sweep's arrays for the compiled loop: its indicator nodes, each combination's view of them, its
parameters and position rules, and the per-block tables (which indicators each thread block
computes, in groups of one definition; which rows keep a margin across chunks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import StrategySweep
from ..indicators import PRICES, Definition, Indicator
from ..signals import DIRECTIONS, entry_mask, exit_masks
from . import state as S
from .rule_unit import param_layout


@dataclass(frozen=True)
class Plan:
    nodes: list[Indicator]  # the distinct indicators, inputs before the indicators that read them
    slots: np.ndarray  # (m, K) each combination's node for each indicator its rule reads
    fparams: np.ndarray  # (m, nf) float parameters the rule reads
    iparams: np.ndarray  # (m, ni) integer and boolean ones
    start_bar: np.ndarray  # (m,) first bar on which every indicator the rule reads is valid
    rules: np.ndarray  # (m, NR) stop, take-profit, trailing fractions (inf: off), size
    masks: np.ndarray  # (m, ND) entry / exit-long / exit-short masks, max_bars (NO_LIMIT: off)


def _nodes(sweep: StrategySweep, indices: np.ndarray) -> tuple[list[Indicator], np.ndarray, np.ndarray]:
    cls = sweep.strategy
    names = cls.binding().indicators
    m = len(indices)
    index: dict[Indicator, int] = {}
    slots = np.zeros((m, len(names)), dtype=np.int64)
    start_bar = np.zeros(m, dtype=np.int64)
    for k, name in enumerate(names):
        params = cls.indicator_parameters(name)
        # the distinct argument tuples among these combinations, resolved once each
        if params:
            cols = np.stack([sweep.columns[p][indices].astype(np.float64) for p in params], axis=1)
            uniq, inverse = np.unique(cols, axis=0, return_inverse=True)
        else:
            uniq, inverse = np.zeros((1, 0)), np.zeros(m, dtype=np.int64)
        rows, valid = np.empty(len(uniq), dtype=np.int64), np.empty(len(uniq), dtype=np.int64)
        for u, values in enumerate(uniq.tolist()):
            spec = cls.resolve_indicator(name, dict(zip(params, values)))
            for node in spec.nodes():
                index.setdefault(node, len(index))
            rows[u] = index[spec]
            valid[u] = spec.valid_from
        slots[:, k] = rows[inverse.ravel()]
        start_bar = np.maximum(start_bar, valid[inverse.ravel()])
    return list(index), slots, start_bar


def plan(sweep: StrategySweep, indices: np.ndarray) -> Plan:
    cls = sweep.strategy
    m = len(indices)
    nodes, slots, start_bar = _nodes(sweep, indices)
    layout = param_layout(cls)
    fparams = np.zeros((m, sum(s.array == "f" for s in layout)))
    iparams = np.zeros((m, sum(s.array == "i" for s in layout)), dtype=np.int64)
    for s in layout:
        (fparams if s.array == "f" else iparams)[:, s.column] = sweep.columns[s.name][indices]
    col = {k: v[indices] for k, v in sweep.columns.items()}
    rules = np.empty((m, S.NR))
    for c, name in ((S.R_STOP, "stop_loss"), (S.R_TAKE_PROFIT, "take_profit"), (S.R_TRAILING, "trailing_stop")):
        rules[:, c] = np.where(np.isnan(col[name]), np.inf, col[name])  # off: the level is out of reach
    rules[:, S.R_SIZE] = col["size"]
    rules[:, S.R_LEVERAGE] = col["leverage"]
    masks = np.empty((m, S.ND), dtype=np.int64)
    for d, direction in enumerate(DIRECTIONS, start=1):
        rows = col["direction"] == direction
        masks[rows, S.D_ENTRY] = entry_mask(d)
        masks[rows, S.D_EXIT_LONG], masks[rows, S.D_EXIT_SHORT] = exit_masks(d)
    masks[:, S.D_MAX_BARS] = np.where(np.isnan(col["max_bars"]), S.NO_LIMIT,
                                      np.nan_to_num(col["max_bars"])).astype(np.int64)
    return Plan(nodes, slots, fparams, iparams, start_bar, rules, masks)


def rule_functions(sweep: StrategySweep, moments: bool, perp: bool = False) -> list[str]:
    """The rule unit's functions the whole sweep can call (not a subset's: a sweep's first
    call compiles what any of its combinations needs); a perp sweep's hold loops are the ``_perp`` ones."""
    directions = set(np.unique(sweep.columns["direction"]).tolist())
    m = ("_perp" if perp else "") + ("_m" if moments else "")
    names = ["bar"]
    if "long" in directions:
        names += ["scan_long", f"hold_long{m}"]
    if "short" in directions:
        names += ["scan_short", f"hold_short{m}"]
    if "both" in directions:
        names += ["scan_both", f"hold_long_both{m}", f"hold_short_both{m}"]
    return names


def _level(node: Indicator, memo: dict) -> int:
    if node not in memo:
        memo[node] = 1 + max((_level(s, memo) for s in node.inputs if isinstance(s, Indicator)), default=-1)
    return memo[node]


def chunk_functions(sweep: StrategySweep) -> dict[Definition, list[str]]:
    """Each definition the sweep uses, with ``chunk4`` when some level holds four of it."""
    nodes, _, _ = _nodes(sweep, np.arange(len(sweep)))
    memo: dict = {}
    counts: dict[tuple[Definition, int], int] = {}
    for node in nodes:
        key = (node.definition, _level(node, memo))
        counts[key] = counts.get(key, 0) + 1
    out: dict[Definition, list[str]] = {}
    for (d, _), count in counts.items():
        names = out.setdefault(d, ["chunk1"])
        if count >= S.GROUP_MAX and "chunk4" not in names:
            names.append("chunk4")
    return out


@dataclass
class Layout:
    """The node table and the buffers' shape for one chunk width."""

    table: np.ndarray  # (k, NODE_COLS) int64
    npar: np.ndarray  # (k, MAX_PARAMS) float parameters
    margin: np.ndarray  # (k,) values kept before each chunk
    buf_len: int
    state_len: int


def layout(nodes: list[Indicator], chunk: int) -> Layout:
    k = len(nodes)
    index = {node: q for q, node in enumerate(nodes)}
    table = np.zeros((max(k, 1), S.NODE_COLS), dtype=np.int64)
    npar = np.zeros((max(k, 1), S.MAX_PARAMS))
    margin = np.zeros(k, dtype=np.int64)
    for node in nodes:
        for s in node.inputs:
            if isinstance(s, Indicator):
                margin[index[s]] = max(margin[index[s]], node.lookback)
    offset = state = 0
    for q, node in enumerate(nodes):
        d = node.definition
        if len(node.inputs) > S.MAX_INPUTS or len(node.args) > S.MAX_PARAMS:
            raise ValueError(f"indicator {node.kind}: at most {S.MAX_INPUTS} inputs and {S.MAX_PARAMS} parameters")
        row = table[q]
        row[S.N_START], row[S.N_VALID] = node.start, node.valid_from
        row[S.N_ROW], row[S.N_MARGIN] = offset + margin[q], margin[q]
        offset += margin[q] + chunk
        row[S.N_STATE], row[S.N_SIZE] = state, node.state_size
        state += node.state_size
        for i, s in enumerate(node.inputs):
            row[S.N_IN + i] = index[s] if isinstance(s, Indicator) else -1 - PRICES.index(s)
        ni = nf = 0
        for (_, spec), a in zip(d.params, node.args):
            if spec.type is int:
                row[S.N_IPAR + ni] = a
                ni += 1
            else:
                npar[q, nf] = a
                nf += 1
    return Layout(table, npar, margin, max(offset, 1), max(state, 1))


def blocks(slots: np.ndarray, nodes: list[Indicator], threads: int, per_thread: int, minimum: int):
    """Contiguous combination blocks and, per block, the nodes it computes (with their inputs)."""
    m = len(slots)
    nb = max(1, min(m, threads * max(1, min(per_thread, m // (threads * minimum)))))
    edges = (np.arange(nb + 1) * m) // nb
    index = {node: q for q, node in enumerate(nodes)}
    deps = [[index[x] for x in node.nodes()] for node in nodes]
    need = []
    for b in range(nb):
        wanted = set()
        for q in np.unique(slots[edges[b]:edges[b + 1]].ravel()).tolist():
            wanted.update(deps[q])
        need.append(sorted(wanted))
    return edges[:-1].copy(), edges[1:].copy(), need


def groups(nodes: list[Indicator], need: list[int], addresses: dict[Definition, dict[str, int]]) -> np.ndarray:
    """The group table of one block: nodes of one definition and level, four to a group where the
    definition has a ``chunk4``, levels in order (inputs first)."""
    memo: dict = {}
    by: dict[tuple[int, int], list[int]] = {}
    order: list[tuple[int, int]] = []
    defs: dict[int, Definition] = {}
    for q in need:
        node = nodes[q]
        key = (_level(node, memo), id(node.definition))
        defs[id(node.definition)] = node.definition
        if key not in by:
            by[key] = []
            order.append(key)
        by[key].append(q)
    rows = []
    for key in sorted(order, key=lambda k: (k[0], order.index(k))):
        qs = by[key]
        fns = addresses[defs[key[1]]]
        i = 0
        while "chunk4" in fns and len(qs) - i >= S.GROUP_MAX:
            rows.append([S.GROUP_MAX, *qs[i:i + S.GROUP_MAX], fns["chunk4"]])
            i += S.GROUP_MAX
        for q in qs[i:]:
            rows.append([1, q, 0, 0, 0, fns["chunk1"]])
    table = np.zeros((max(len(rows), 1), S.GROUP_COLS), dtype=np.int64)
    if rows:
        table[:len(rows)] = rows
    return table

