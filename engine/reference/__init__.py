"""The event-driven reference engine: readable, one candle at a time.

It defines the execution semantics (see docs/semantics.md); the compiled fast
path must reproduce its trades exactly.
"""

from ..result import RunResult
from .engine import BacktestingEngine
from .execution import ExecutionEngine
from .feed import Candle, DataFeed
from .portfolio import Portfolio

__all__ = ["BacktestingEngine", "RunResult", "ExecutionEngine", "Candle", "DataFeed", "Portfolio"]
