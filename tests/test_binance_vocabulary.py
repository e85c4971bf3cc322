"""One Binance vocabulary: the stacks, the ingest Lambda, the CLI and the config accept exactly
the intervals and symbols of ``engine.data.binance``, and refuse the same things."""

from __future__ import annotations

import argparse
import json

import pytest

from backtest_cli import argtypes
from engine.config import parse_config_text
from engine.data.binance import INTERVAL_MS, INTERVALS, is_symbol
from engine.errors import ConfigError
from lambdas.ingest.units import UnitError, WorkUnit, parse_message
from stacks.config import IngestSettings, SettingsError

NOT_INTERVALS = ["1M", "7m", "0m", "15", "15M", "", " 15m", "1h\n"]
SYMBOLS = ["BTCUSDT", "1000SHIBUSDT", "BTCUSDT_250328", "A", "BTC-USDT", "ETH.USDT"]
NOT_SYMBOLS = ["", ".", "..", "../X", "BTC/USDT", "btc usdt", "BTCUSDT\n", "_BTC", "-BTC", ".BTC",
               "B" * 21, "BTC\x00USDT"]


def _lambda_accepts(symbol: str, interval: str) -> bool:
    """The ingest worker's message (JSON: nothing is stripped)."""
    body = json.dumps({"task": "ingest", "market": "spot", "kind": "klines", "symbol": symbol, "interval": interval,
                       "sent_ms": 0})
    try:
        return parse_message(body)[1] == WorkUnit("spot", "klines", symbol, interval)
    except UnitError:
        return False


def _stack_accepts(symbol: str, interval: str) -> bool:
    try:
        IngestSettings(symbols=(symbol,), intervals=(interval,))
        return True
    except SettingsError:
        return False


def _cli_accepts(kind, text: str) -> bool:
    try:
        kind(text)
        return True
    except argparse.ArgumentTypeError:
        return False


def _config_accepts_interval(interval: str) -> bool:
    text = f"data: {{source: synthetic, interval: {json.dumps(interval)}}}\nstrategies: {{ma_crossover: {{}}}}\n"
    try:
        parse_config_text(text, "t.yaml")
        return True
    except ConfigError:
        return False


def test_the_interval_list_is_binances_fixed_length_intervals_in_order():
    assert INTERVALS == ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
    lengths = [INTERVAL_MS[i] for i in INTERVALS]
    assert lengths == sorted(lengths)
    assert INTERVAL_MS["15m"] == 15 * 60 * 1000 and INTERVAL_MS["1w"] == 7 * 86_400_000


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_every_entry_accepts_every_interval(interval):
    assert _lambda_accepts("BTCUSDT", interval)
    assert _stack_accepts("BTCUSDT", interval)
    assert _cli_accepts(argtypes.interval, interval)
    assert _config_accepts_interval(interval)


@pytest.mark.parametrize("interval", NOT_INTERVALS)
def test_every_entry_refuses_the_same_intervals(interval):
    assert not _lambda_accepts("BTCUSDT", interval)
    assert not _stack_accepts("BTCUSDT", interval)
    assert not _cli_accepts(argtypes.interval, interval)
    if interval.strip():  # the config strips text values
        assert _config_accepts_interval(interval) == (interval.strip() in INTERVALS)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_entry_accepts_a_binance_symbol(symbol):
    assert is_symbol(symbol)
    assert _lambda_accepts(symbol, "15m")
    assert _stack_accepts(symbol, "15m")
    assert _cli_accepts(argtypes.symbol, symbol)


@pytest.mark.parametrize("symbol", NOT_SYMBOLS)
def test_every_entry_refuses_a_symbol_that_could_name_a_path(symbol):
    assert not is_symbol(symbol)
    assert not _stack_accepts(symbol, "15m")
    assert not _cli_accepts(argtypes.symbol, symbol)
    assert not _lambda_accepts(symbol, "15m")


def test_the_cli_upper_cases_a_symbol():
    assert argtypes.symbol("ethusdt") == "ETHUSDT"
