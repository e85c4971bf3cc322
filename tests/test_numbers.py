"""Numbers as printed: significant digits for small values, durations in bars and time, short labels."""

from engine.report.labels import short_label
from engine.report.numbers import format_duration, format_fixed, format_sig


def test_small_values_never_print_as_zero():
    assert format_sig(0.000123) == "0.000123" and format_sig(0.0000123) == "1.23e-05" and format_sig(3.2e-12) == "3.20e-12"
    assert format_sig(0.0062) == "0.00620" and format_sig(1234.6) == "1,235" and format_sig(0.0) == "0"
    assert format_fixed(0.00004) == "4.0e-05" and format_fixed(-3e-30) == "-3.0e-30"
    assert format_fixed(0.12345) == "0.1235" and format_fixed(0.0) == "0.0000" and format_fixed(None) == "—"


def test_durations_in_bars_and_time():
    assert format_duration(18_925, 15 * 60_000) == "18,925 bars (197 d)"  # 18,925 × 15 min = 197.1 days
    assert format_duration(8, 15 * 60_000) == "8 bars (2 h)"
    assert format_duration(3, 5 * 60_000) == "3 bars (15 min)"


def test_short_labels_show_only_swept_columns():
    row = {"short_window": 25, "long_window": 70, "stop_loss": float("nan"), "size": 0.5, "rsi_period": 14}
    assert short_label("ma_crossover", ("short_window", "long_window"), row) == "ma_crossover(short=25, long=70)"
    assert short_label("ma_crossover", ("stop_loss", "size"), row) == "ma_crossover(sl=none, size=0.5)"
    assert short_label("rsi_reversion", ("rsi_period",), row) == "rsi_reversion(rsi=14)"
    assert short_label("ma_crossover", (), row) == "ma_crossover"
