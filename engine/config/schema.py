"""Every config key in one table: its type, its range, its default and what it means.

The parser (``engine.config.parse``) checks a document against this table and nothing
else; ``backtest validate-config`` prints the effective config from it, marking the
values that came from a default; the README's config section lists the same keys.

A key with ``sweep=True`` is a grid axis: one value, a list of values, or a range
``{start, stop, step}`` (stop included). A ``nullable`` key accepts ``null``: the
setting is off. There are no hidden defaults: a key's default is the value shown
here, and a rule such as a stop-loss is off unless the config gives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..execution import FILL_MODES
from ..grid_budget import DEFAULT_MAX_COMBINATIONS, DEFAULT_MAX_FOLDS, MAX_COMBINATIONS_CEILING, MAX_FOLDS_CEILING
from ..metrics import RANKABLE
from ..perp.config import BASES, MARGIN_MODES
from ..signals import DIRECTIONS
from .model import AGGREGATES, RUNS_CHOICES


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given when its section is.
REQUIRED = _Required()

#: ``data.market``: spot, or USDⓈ-M perpetual futures
MARKETS = ("spot", "um")

#: Bounds on values that size work or memory, or that overflow later arithmetic.
CAPITAL_MAX = 1e15
SYNTHETIC_BARS_MAX = 20_000_000  # ~1.5 GB of candles and indicators; 570 years of 15m bars
TOP_K_MAX = 1_000  # two charts and one JSON file each
#: ``report.runs: all`` writes one JSON file (with its trades) per combination: above this many, refused
RUNS_ALL_MAX = 10_000
MIN_BLOCKS, MAX_BLOCKS = 4, 32
#: beyond this 1 - 1/N rounds towards 1 and the deflated Sharpe's quantiles lose their meaning
MAX_TRIALS = 10**12


@dataclass(frozen=True)
class Section:
    path: str
    #: absent or null turns the whole section off (None), rather than giving its keys their defaults
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Key:
    path: str  # section.key
    type: str  # str | int | float | bool | choice | time | interval | symbol | span | strategies
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    sweep: bool = False  # a grid axis: a value, a list or a range
    nullable: bool = True  # null is accepted (the setting is off)
    zero_is_none: bool = False  # 0 also means off (the seed's stop_loss: 0)
    even: bool = False
    doc: str = ""
    off: str = ""  # what null means for this key (printed beside a null default)

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]


SECTIONS: tuple[Section, ...] = (
    Section("experiment"),
    Section("data"),
    Section("execution"),
    Section("portfolio"),
    Section("risk", doc="position rules: each off unless given"),
    Section("strategies", doc="strategy name or package.module:ClassName -> parameters"),
    Section("parallel"),
    Section("report"),
    Section("limits"),
    Section("perp", optional=True, doc="USDⓈ-M perpetual futures (data.market: um); absent: the defaults"),
    Section("validation", optional=True, doc="out-of-sample evidence; absent: none"),
    Section("validation.walk_forward", optional=True),
    Section("validation.cscv", optional=True),
)

KEYS: tuple[Key, ...] = (
    Key("experiment.name", "str", "experiment", nullable=False, doc="names the run folder"),
    Key("data.source", "str", "synthetic", nullable=False,
        doc="synthetic, a CSV/Parquet file, a dataset folder or s3://bucket/candles/ (alias: data.path)"),
    Key("data.symbol", "symbol", doc="the symbol to read from a dataset holding several",
        off="the data's only symbol"),
    Key("data.interval", "interval", doc="the interval to read", off="inferred from the data"),
    Key("data.symbols", "symbols", doc="a universe: a list of symbols, or all (every symbol of the dataset)",
        off="one series: data.symbol"),
    Key("data.intervals", "intervals", doc="a universe: a list of intervals", off="data.interval"),
    Key("data.start", "time", doc="first candle time, UTC, inclusive", off="from the first candle"),
    Key("data.end", "time", doc="end time, UTC, exclusive", off="to the last candle"),
    Key("data.synthetic_bars", "int", 70_080, low=2, high=SYNTHETIC_BARS_MAX, nullable=False,
        doc="synthetic data only: number of candles"),
    Key("data.seed", "int", 42, low=0, nullable=False, doc="synthetic data only: its random seed"),
    Key("data.market", "choice", "spot", choices=MARKETS, nullable=False,
        doc="spot, or um: USDⓈ-M perpetual futures (leverage, funding, liquidation)"),
    Key("data.max_input_bytes", "int", None, low=1, high=2**50, doc="a candle file's size once decompressed",
        off="1 GiB"),
    Key("execution.commission", "float", 0.001, low=0, high=0.1, high_open=True, nullable=False,
        doc="fraction of notional, per fill"),
    Key("execution.slippage", "float", 0.0005, low=0, high=0.1, high_open=True, nullable=False,
        doc="buys at ref*(1+s), sells at ref*(1-s)"),
    Key("execution.fill", "choice", "close", choices=FILL_MODES, nullable=False),
    Key("portfolio.capital", "float", 100_000.0, low=0, low_open=True, high=CAPITAL_MAX, nullable=False),
    Key("portfolio.direction", "choice", "long", choices=DIRECTIONS, sweep=True, nullable=False),
    Key("portfolio.size", "float", 1.0, low=0, low_open=True, high=1, sweep=True, nullable=False,
        doc="fraction of equity committed per entry"),
    Key("portfolio.leverage", "float", 1.0, low=1, high=125, sweep=True, nullable=False,
        doc="data.market: um only: position notional per unit of margin"),
    Key("risk.stop_loss", "float", None, low=0, low_open=True, high=1, high_open=True, sweep=True,
        zero_is_none=True, doc="fraction below a long's (above a short's) entry fill; null or 0: none",
        off="no stop-loss"),
    Key("risk.take_profit", "float", None, low=0, low_open=True, sweep=True,
        doc="fraction above a long's (below a short's) entry fill", off="no take-profit"),
    Key("risk.trailing_stop", "float", None, low=0, low_open=True, high=1, high_open=True, sweep=True,
        doc="fraction below the peak (above the trough) since the entry", off="no trailing stop"),
    Key("risk.max_bars", "int", None, low=1, sweep=True, doc="bars a position is held at most",
        off="no time limit"),
    Key("strategies", "strategies", REQUIRED, nullable=False),
    Key("perp.margin", "choice", "isolated", choices=MARGIN_MODES, nullable=False,
        doc="isolated (cross is not supported yet)"),
    Key("perp.brackets", "brackets", None, doc="[{max_notional, mmr, cum}, ...], increasing",
        off="the committed table for BTCUSDT and ETHUSDT"),
    Key("perp.liquidation_price", "choice", None, choices=BASES, doc="the price liquidation is checked on",
        off="mark when mark klines exist, else last"),
    Key("perp.funding", "bool", True, nullable=False, doc="false: no funding (said in the report's header)"),
    Key("parallel.workers", "int", None, low=1, off="every CPU"),
    Key("report.top_k", "int", 10, low=1, high=TOP_K_MAX, nullable=False,
        doc="combinations drawn in detail (charts, trades)"),
    Key("report.rank_by", "choice", "sharpe", choices=RANKABLE, nullable=False,
        doc="any metric; psr and dsr need a validation section"),
    Key("report.aggregate", "choice", "median", choices=AGGREGATES, nullable=False,
        doc="a universe run ranks by this aggregate of rank_by over its series"),
    Key("report.min_trades", "int", 1, low=0, nullable=False, doc="fewer closed trades: left unranked"),
    Key("report.png", "bool", False, nullable=False, doc="also PNG charts in plots/"),
    Key("report.runs", "choice", "top", choices=RUNS_CHOICES, nullable=False,
        doc=f"runs/<id>.json for the top K, every combination (at most {RUNS_ALL_MAX:,}), or none"),
    Key("limits.max_combinations", "int", DEFAULT_MAX_COMBINATIONS, low=1, high=MAX_COMBINATIONS_CEILING,
        nullable=False, doc="a larger grid is refused before it is built"),
    Key("limits.max_folds", "int", DEFAULT_MAX_FOLDS, low=1, high=MAX_FOLDS_CEILING, nullable=False,
        doc="a walk-forward of more folds is refused before the sweep"),
    Key("validation.holdout", "float", None, low=0, low_open=True, high=1, high_open=True,
        doc="the last fraction of bars, held out of the ranking", off="no holdout"),
    Key("validation.walk_forward.train", "span", REQUIRED, nullable=False, doc="a duration (m, h, d, w) or bars"),
    Key("validation.walk_forward.test", "span", REQUIRED, nullable=False),
    Key("validation.walk_forward.step", "span", None, off="the test length"),
    Key("validation.walk_forward.anchored", "bool", False, nullable=False,
        doc="true: every train window starts at the first bar"),
    Key("validation.cscv.blocks", "int", 16, low=MIN_BLOCKS, high=MAX_BLOCKS, even=True, nullable=False,
        doc="S: half the blocks form each in-sample set"),
    Key("validation.cross_series", "bool", False, nullable=False,
        doc="a universe of 4 or more series: the cross-sectional PBO over splits of the series"),
    Key("validation.trials", "int", None, low=2, high=MAX_TRIALS, doc="N for the deflated Sharpe",
        off="the number of combinations"),
)

#: ``data.path`` is another name for ``data.source`` (the seed's key)
ALIASES = {"data.path": "data.source"}

BY_PATH: dict[str, Key] = {k.path: k for k in KEYS}
SECTION_BY_PATH: dict[str, Section] = {s.path: s for s in SECTIONS}


def keys_of(section: str) -> tuple[Key, ...]:
    return tuple(k for k in KEYS if k.section == section)


def names_of(section: str) -> set[str]:
    """Every key a section accepts: its keys, its sub-sections and its aliases."""
    names = {k.name for k in keys_of(section)}
    names |= {s.path.rpartition(".")[2] for s in SECTIONS if s.path.rpartition(".")[0] == section and "." in s.path}
    names |= {a.rpartition(".")[2] for a in ALIASES if a.rpartition(".")[0] == section}
    return names
