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


def test_per_bar_figures_also_show_the_annualised_value():
    from engine.report.numbers import format_per_bar

    # 15-minute bars: 365 × 96 = 35,040 a year, √35,040 = 187.19; 0.0062 × 187.19 = 1.1606
    assert format_per_bar(0.0062, 35_040) == "0.00620 per bar (1.16 annualised)"
    # daily bars: √365 = 19.105; 0.062 × 19.105 = 1.1845
    assert format_per_bar(0.062, 365) == "0.0620 per bar (1.18 annualised)"
    assert format_per_bar(0.062, None) == "0.0620 per bar"
    assert format_per_bar(None, 365) == "—" and format_per_bar(float("nan"), 365) == "—"
    # a tiny figure keeps its digits on both sides: 2e-7 × √35,040 = 3.744e-5
    assert format_per_bar(2e-7, 35_040) == "2.00e-07 per bar (3.74e-05 annualised)"


def test_labels_of_a_summary_frame():
    """Rules and integers as the summary holds them: NaN is no rule, a blank max_bars is none."""
    import pandas as pd

    from engine.report.labels import labels_of

    frame = pd.DataFrame({"strategy": ["ma_crossover", "ma_crossover", "rsi_reversion"],
                          "short_window": [5, 10, 0], "long_window": [50, 50, 0],
                          "stop_loss": [0.02, float("nan"), 0.05], "rsi_period": [0, 0, 14],
                          "max_bars": pd.array([96, None, 12], dtype="Int64")})
    swept = {"ma_crossover": ("short_window", "stop_loss", "max_bars"), "rsi_reversion": ("rsi_period",)}
    assert labels_of(frame, swept) == ["ma_crossover(short=5, sl=0.02, bars=96)",
                                       "ma_crossover(short=10, sl=none, bars=none)", "rsi_reversion(rsi=14)"]


def test_short_names_never_clash():
    from engine.naming import short_names, value_text

    assert short_names(["short_window", "long_window", "stop_loss", "leverage"]) == ["short", "long", "sl", "lev"]
    # two columns whose short names would be one keep their full names; so does a rule whose short
    # name is another column's full name
    assert short_names(["rsi_period", "rsi_length", "size"]) == ["rsi_period", "rsi_length", "size"]
    assert short_names(["sl", "stop_loss", "fast_window"]) == ["sl", "stop_loss", "fast"]
    # values: the shortest exact text, no trailing .0, none for an unset rule
    assert [value_text(x) for x in (1.0, 0.02, 0.1 + 0.2, float("nan"), None, 96, "both")] == \
        ["1", "0.02", "0.30000000000000004", "none", "none", "96", "both"]
    import numpy as np

    assert [value_text(x) for x in (np.float64(0.02), np.float64(50.0), np.int64(25))] == ["0.02", "50", "25"]
