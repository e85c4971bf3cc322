"""A small synthetic universe config shared by the universe tests (4 series, 4 combinations, cross-sectional PBO)."""

SMALL_UNIVERSE = """
experiment: {name: uni}
data: {source: synthetic, symbols: [BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT], synthetic_bars: 1500}
risk: {stop_loss: 0.02}
strategies:
  ma_crossover: {short_window: [5, 10], long_window: [30, 60], ema_period: 50}
report: {top_k: 2}
validation: {holdout: 0.3, cscv: {blocks: 4}, cross_series: true}
"""
