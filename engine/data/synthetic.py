"""Deterministic synthetic BTCUSDT-like candles: the product's embedded offline data.

``generate_candles()`` (defaults: two years of 15-minute bars from 2023-01-01 UTC)
returns the same bytes for the same arguments on any machine, so a backtest run on
the default data is reproducible everywhere without a network.

Model (all parameters are expressed per 15 minutes and rescaled for other intervals)
-----------------------------------------------------------------------------------
* **Regimes** - a semi-Markov chain over *range*, *up-trend* and *down-trend*
  segments (one-day minimum plus an exponential part: mean 14 days for ranges, 9 for
  trends; a trend ends in a range 65 % of the time, else reverses). A trend segment
  draws one drift of 4-16 % per week; a range segment replaces the drift by mean
  reversion: log price follows an Ornstein-Uhlenbeck process with a 12-hour half-life
  around a level near where the range began. Down-trends are the most volatile
  regime, ranges the calmest.
* **Volatility clustering** - log-volatility is the sum of three AR(1) factors with
  half-lives of 45 minutes, 12 hours and 10 days (a multi-scale stochastic-volatility
  model whose |r| autocorrelation decays slowly, as in real BTC), times the regime
  factor and an intraday/weekend seasonality profile measured on Binance BTCUSDT
  (US-open peak around 14:00 UTC, quieter weekends).
* **Fat tails** - innovations are Student-t with 8 degrees of freedom scaled to unit
  variance; the volatility mixing fattens the tails further (excess kurtosis of 15m
  returns is about 15, as for real BTCUSDT 2024-2025).
* **Long-run anchor** - log price is measured against its own 2-year-half-life
  exponential average, a pull too weak to matter over a few years that keeps prices
  in a sane band for very long series (10 million bars = 285 years).
* **Candles** - ``open[t] == close[t-1]``. High and low come from the exact
  Brownian-bridge distribution of the extremes between open and close given the
  bar's volatility. Volume (base asset, about 200 BTC per 15 minutes at the median)
  rises with volatility and with the size of the bar's move, has its own persistent
  and i.i.d. noise, and is lower at weekends. Prices are rounded to 0.01 and volume
  to 0.00001, then the OHLC rules are re-imposed.

Determinism
-----------
Only ``numpy.random.default_rng(seed)`` (and children from its ``spawn``) is used,
and only through ``Generator.random`` - raw 53-bit uniforms, pure integer
arithmetic. Normal, Student-t and exponential variates, ``exp``, ``log`` and the AR(1)
recursions come from :mod:`engine.data.portable_math`, which gives the same bits on
every platform. Work is done in slices of a fixed number
of bars with the state carried across, so every value at bar ``t`` depends only on
bars ``0..t`` and a shorter series is an exact prefix of a longer one. The one outside
dependency is numpy's PCG64 stream behind ``Generator.random``, which numpy keeps
stable across versions; ``tests/test_synthetic.py`` pins a fingerprint of the output.
"""

from __future__ import annotations

import math

import numpy as np

from ..candles import Candles, gap_report
from ..errors import UserError
from .portable_math import (CHUNK, ar1, decay, exp, exp_kernel, exp_small, exponential, log, log_kernel, normal,
                            round_into, student_t)


#: Two years of 15-minute bars.
DEFAULT_BARS = 70_080
_BARS_15M_PER_DAY = 96.0
_BARS_15M_PER_WEEK = 672.0

# --- model parameters (per 15-minute bar) ------------------------------------------
_SIGMA = 0.0033              # base volatility per bar, before the multipliers below
_T_DOF = 8                   # Student-t degrees of freedom (even: chi-square from uniforms)
_SHOCK_CAP = 15.0            # cap on a unit-variance innovation (guards 2**-53 events)
#: (half-life in 15m bars, stationary standard deviation of the log-vol factor)
_SV_FACTORS = ((3.0, 0.40), (48.0, 0.25), (960.0, 0.30))
#: regime -> volatility multiplier: range, up, down
_REGIME_VOL = (0.8, 1.0, 1.2)
_RANGE, _UP, _DOWN = 0, 1, 2
#: mean (exponential part) and minimum segment length, in 15m bars
_REGIME_MEAN = {_RANGE: 13.0 * _BARS_15M_PER_DAY, _UP: 8.0 * _BARS_15M_PER_DAY, _DOWN: 8.0 * _BARS_15M_PER_DAY}
_REGIME_MIN = 1.0 * _BARS_15M_PER_DAY
#: cumulative transition probabilities out of each regime (no self-transitions)
_NEXT = {_RANGE: ((0.5, _UP), (1.0, _DOWN)),
         _UP: ((0.65, _RANGE), (1.0, _DOWN)),
         _DOWN: ((0.65, _RANGE), (1.0, _UP))}
_TREND_WEEKLY = (0.04, 0.16)  # |drift| per week of a trend segment, uniform
_RANGE_HALF_LIFE = 0.5 * _BARS_15M_PER_DAY
_ANCHOR_HALF_LIFE = 2 * 365 * _BARS_15M_PER_DAY
#: weekday volatility by UTC hour (RMS 1), measured on Binance BTCUSDT 15m 2024-2025
_HOURLY_VOL = (1.01, 1.10, 0.97, 0.80, 0.71, 0.70, 0.86, 0.83, 0.81, 0.78, 0.75, 0.76,
               0.94, 1.23, 1.50, 1.35, 1.20, 1.18, 1.08, 1.05, 1.02, 0.96, 0.98, 0.87)
_WEEKEND_VOL = 0.63
_WICK_SCALE = 0.97            # bridge volatility relative to the bar's volatility
_VOLUME_SCALE = 460.0         # base-asset volume scale per 15m bar (median about 200)
_VOLUME_VOL_BETA = 1.2        # log volume per log volatility
_VOLUME_SHOCK = 0.30          # log volume per unit |innovation| (demeaned)
_VOLUME_AR = (8.0, 0.30)      # persistent log-volume noise: half-life, sd
_VOLUME_NOISE = 0.22          # i.i.d. log-volume noise
_LOG_WEEKEND_VOLUME = -0.6    # extra weekend log volume on top of the volatility link
_ABS_T_MEAN = 0.77            # E|t| of the unit-variance Student-t innovation (8 dof)


def _regimes(rng: np.random.Generator, n: int, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Semi-Markov regime segments covering n bars: (end index, regime id, drift per bar)."""
    state = _RANGE
    states, ends, drifts = [], [], []
    total = 0
    while total < n:                                    # fixed-size draws: prefix-stable
        u = rng.random(2 * 256).reshape(256, 2).tolist()
        e = exponential(rng, 256).tolist()
        for (u_next, u_drift), ex in zip(u, e):
            total += max(1, int((_REGIME_MIN + _REGIME_MEAN[state] * ex) / dt + 0.5))
            weekly = _TREND_WEEKLY[0] + (_TREND_WEEKLY[1] - _TREND_WEEKLY[0]) * u_drift
            drift = {_RANGE: 0.0, _UP: weekly, _DOWN: -weekly}[state] / _BARS_15M_PER_WEEK * dt
            states.append(state)
            ends.append(total)
            drifts.append(drift)
            state = next(nxt for cum, nxt in _NEXT[state] if u_next < cum)
            if total >= n:
                break
    return (np.asarray(ends, dtype=np.int64), np.asarray(states, dtype=np.int64),
            np.asarray(drifts, dtype=np.float64))


def _weekly_profile(start_ms: int, n: int, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """One period of the volatility seasonality (UTC-hour profile x weekend factor) and the
    weekend mask; both depend only on the open time modulo one week."""
    week = 7 * 86_400_000
    m = min(n, week // math.gcd(week, interval_ms))
    t = start_ms + np.arange(m, dtype=np.int64) * interval_ms
    season = np.ones(m)
    if interval_ms < 86_400_000:
        mid = t + interval_ms // 2
        hour = (mid % 86_400_000).astype(np.float64) / 3_600_000.0 - 0.5     # knots at hh:30
        hour[hour < 0] += 24.0
        lo = np.floor(hour)
        w = hour - lo
        lo_i = lo.astype(np.int64)
        knots = np.asarray(_HOURLY_VOL + (_HOURLY_VOL[0],))
        season = knots[lo_i] * (1.0 - w) + knots[lo_i + 1] * w
    weekend = np.zeros(m, dtype=bool)
    if interval_ms < week:
        weekend = (t // 86_400_000 + 3) % 7 >= 5         # 1970-01-01 was a Thursday; 0 = Monday
        season[weekend] *= _WEEKEND_VOL
    return season, weekend


class _AR1Stream:
    """A stationary AR(1) factor drawn slice by slice from its own stream.

    Innovations are uniform with the right variance (cheap; the AR sum makes the factor
    close to Gaussian); the start value is drawn with the stationary variance.
    """

    def __init__(self, rng: np.random.Generator, half_life_bars: float, sd: float):
        self.rng = rng
        self.phi = decay(half_life_bars)
        self.innov = sd * math.sqrt(12.0 * (1.0 - self.phi * self.phi))
        self.last = sd * math.sqrt(12.0) * (float(rng.random()) - 0.5)

    def next(self, m: int) -> np.ndarray:
        z = self.rng.random(m)
        z -= 0.5
        z *= self.innov
        x = ar1(z, self.phi, self.last, overwrite=True)
        self.last = float(x[-1])
        return x


# Child streams of default_rng(seed).spawn(_N_STREAMS), one per drawn array, so that
# every array's draws are independent of n_bars (a shorter series is a prefix).
_N_STREAMS = 16
_S_REGIME, _S_Z, _S_SV, _S_WICK, _S_VOL_AR, _S_VOL_NOISE, _S_CHI = 0, 1, 2, 5, 8, 9, 11
# _S_SV..: one per volatility factor; _S_WICK..: 3; _S_VOL_NOISE..: 2; _S_CHI..: _T_DOF // 2


def generate_candles(n_bars: int = DEFAULT_BARS, *, seed: int = 42, interval_ms: int = 900_000,
                     start_ms: int = 1_672_531_200_000, start_price: float = 30_000.0,
                     symbol: str = "BTCUSDT") -> Candles:
    """Seeded synthetic candles; identical bytes for identical arguments on any machine.

    The defaults give two years (70,080 bars) of 15-minute BTCUSDT-like candles from
    2023-01-01 00:00 UTC starting at 30,000. ``generate_candles(n)`` is an exact prefix
    of ``generate_candles(m)`` for n < m with the other arguments equal.
    """
    n = int(n_bars)
    if n < 1:
        raise UserError(f"synthetic data: n_bars={n_bars!r} must be at least 1")
    if int(interval_ms) <= 0 or int(interval_ms) % 1000:
        raise UserError(f"synthetic data: interval_ms={interval_ms!r} must be a positive whole number of seconds")
    if not (math.isfinite(start_price) and start_price >= 1.0):
        raise UserError(f"synthetic data: start_price={start_price!r} must be a finite price of at least 1")
    interval_ms, start_ms, start_price = int(interval_ms), int(start_ms), float(start_price)
    dt = interval_ms / 900_000.0                        # bar length in 15-minute units
    base_sigma = _SIGMA * math.sqrt(dt)                 # sqrt is correctly rounded everywhere
    streams = np.random.default_rng(seed).spawn(_N_STREAMS)

    seg_end, seg_state, seg_drift = _regimes(streams[_S_REGIME], n, dt)
    seg_start = np.concatenate(([0], seg_end[:-1]))
    seg_vol = np.asarray(_REGIME_VOL)[seg_state]
    seg_log_vol_v = log(seg_vol) * _VOLUME_VOL_BETA     # volume's share of the regime factor
    seg_trend = seg_state != _RANGE
    season_p, weekend_p = _weekly_profile(start_ms, n, interval_ms)
    period = season_p.size
    log_season_v_p = log(season_p)                     # volume: season link + weekend offset
    log_season_v_p *= _VOLUME_VOL_BETA
    log_season_v_p[weekend_p] += _LOG_WEEKEND_VOLUME
    if period < n:                                      # tile so each slice is a plain view
        season_p = np.resize(season_p, period + CHUNK)
        log_season_v_p = np.resize(log_season_v_p, period + CHUNK)
    sv = [_AR1Stream(streams[_S_SV + i], hl / dt, sd) for i, (hl, sd) in enumerate(_SV_FACTORS)]
    sv_mean = -sum(sd * sd for _, sd in _SV_FACTORS)    # E[exp(2 log_vol)] = 1
    vol_ar = _AR1Stream(streams[_S_VOL_AR], _VOLUME_AR[0] / dt, _VOLUME_AR[1])
    phi_range = decay(_RANGE_HALF_LIFE / dt)
    kappa = 1.0 - phi_range
    alpha = 1.0 - decay(_ANCHOR_HALF_LIFE / dt)
    wick = 2.0 * _WICK_SCALE * _WICK_SCALE

    open_, high, low, close, volume = (np.empty(n) for _ in range(5))
    dev_last = 0.0           # OU deviation at the previous bar
    cum_last = 0.0           # cumulative log return at the previous bar
    ema_last = 0.0           # slow average of the cumulative log return
    y_last = 0.0             # log(close / start_price) at the previous bar
    close_raw_last = start_price
    close_last = max(round(start_price, 2), 0.01)

    for i0 in range(0, n, CHUNK):                      # slices start at fixed multiples
        i1 = min(n, i0 + CHUNK)
        m = i1 - i0
        s0, s1 = np.searchsorted(seg_end, [i0, i1 - 1], side="right").tolist()
        seg_len = (np.minimum(seg_end[s0:s1 + 1], i1) - np.maximum(seg_start[s0:s1 + 1], i0))
        def per_bar(values, _s=slice(s0, s1 + 1), _len=seg_len):
            return np.repeat(values[_s], _len)
        off = i0 % period if period < n else i0
        season = season_p[off:off + m]

        # volatility: multi-scale stochastic volatility x regime x seasonality
        log_vol = sv[0].next(m)
        for f in sv[1:]:
            log_vol += f.next(m)
        log_vol += sv_mean
        sigma = exp(log_vol)
        sigma *= per_bar(seg_vol)
        sigma *= season
        sigma *= base_sigma

        # returns: Student-t shocks; trend drift or OU mean reversion inside ranges
        shock = student_t(normal(streams[_S_Z], m), streams[_S_CHI:], _T_DOF, _SHOCK_CAP)
        r = shock * sigma
        dev = ar1(r, phi_range, dev_last)
        prev_dev = np.empty(m)
        prev_dev[0] = dev_last
        prev_dev[1:] = dev[:-1]
        dev_last = float(dev[-1])
        prev_dev *= kappa
        prev_dev[per_bar(seg_trend)] = 0.0
        r -= prev_dev
        r += per_bar(seg_drift)
        r[0] += cum_last                                # sequential cumsum across slices
        cum = np.cumsum(r, out=r)
        cum_last = float(cum[-1])

        # log price = cumulative return minus its slow exponential average (long-run anchor)
        ema = ar1(alpha * cum, 1.0 - alpha, ema_last)
        ema_last = float(ema[-1])
        y = cum
        y -= ema
        b = np.empty(m)                                 # log(close / open) of each bar
        b[0] = y[0] - y_last
        np.subtract(y[1:], y[:-1], out=b[1:])
        y_last = float(y[-1])
        exp_kernel(y)
        close_raw = y
        close_raw *= start_price
        open_raw = np.empty(m)
        open_raw[0] = close_raw_last
        open_raw[1:] = close_raw[:-1]
        close_raw_last = float(close_raw[-1])

        # high/low: extremes of a Brownian bridge from open to close with the bar's sigma:
        # max = (b + sqrt(b^2 + 2 s^2 E1)) / 2, min = (b - sqrt(b^2 + 2 s^2 E2)) / 2 with
        # E1, E2 i.i.d. Exp(1) drawn as G U and G (1 - U) from G = -log(U1 U2) ~ Gamma(2).
        g = streams[_S_WICK].random(m)
        np.subtract(1.0, g, out=g)
        u = streams[_S_WICK + 1].random(m)
        np.subtract(1.0, u, out=u)
        g *= u
        log_kernel(g)
        g *= -wick
        sigma *= sigma
        g *= sigma
        streams[_S_WICK + 2].random(out=u)
        bb = b * b
        up = g * u
        g -= up
        dn = g
        up += bb
        dn += bb
        np.sqrt(up, out=up)
        np.sqrt(dn, out=dn)
        bpos = np.maximum(b, 0.0)
        up += b
        up *= 0.5
        up -= bpos                                      # upper wick: bar max - max(b, 0) >= 0
        dn -= b
        dn *= 0.5
        bpos -= b                                       # max(-b, 0)
        dn -= bpos                                      # lower wick: min(b, 0) - bar min >= 0
        np.maximum(up, 0.0, out=up)
        np.maximum(dn, 0.0, out=dn)
        # high = max(open, close) e^up, low = min(open, close) e^-dn; the wicks are a few
        # sigma at most, so a 4th-order series is exact to far below one tick.
        exp_small(up)
        up *= np.maximum(open_raw, close_raw)
        np.negative(dn, out=dn)
        exp_small(dn)
        dn *= np.minimum(open_raw, close_raw)

        # tick rounding, then the OHLC rules again
        c = close[i0:i1]
        round_into(close_raw, 100.0, c)
        np.maximum(c, 0.01, out=c)
        o = open_[i0:i1]
        o[0] = close_last
        o[1:] = c[:-1]
        close_last = float(c[-1])
        h = high[i0:i1]
        round_into(up, 100.0, h)
        np.maximum(h, np.maximum(o, c), out=h)
        lo = low[i0:i1]
        round_into(dn, 100.0, lo)
        np.maximum(lo, 0.01, out=lo)
        np.minimum(lo, np.minimum(o, c), out=lo)

        # volume: volatility link, size of the move, persistent and i.i.d. noise, weekends
        log_v = log_vol                                 # beta log(sigma / base) + weekend:
        log_v *= _VOLUME_VOL_BETA                       #   beta log_vol
        log_v += per_bar(seg_log_vol_v)                 #   + beta log regime factor
        log_v += log_season_v_p[off:off + m]            #   + beta log season + weekend
        np.abs(shock, out=shock)
        shock -= _ABS_T_MEAN
        shock *= _VOLUME_SHOCK
        log_v += shock
        log_v += vol_ar.next(m)
        noise = streams[_S_VOL_NOISE].random(m)       # triangular: u1 - u2, variance 1/6
        noise -= streams[_S_VOL_NOISE + 1].random(m)
        noise *= _VOLUME_NOISE * math.sqrt(6.0)
        log_v += noise
        exp_kernel(log_v)
        log_v *= _VOLUME_SCALE * dt
        v = volume[i0:i1]
        round_into(log_v, 100000.0, v)
        np.maximum(v, 0.00001, out=v)

    open_time = start_ms + np.arange(n, dtype=np.int64) * interval_ms
    return Candles(open_time=open_time, open=open_, high=high, low=low, close=close,
                   volume=volume, interval_ms=interval_ms, symbol=symbol,
                   source=f"synthetic(seed={seed}, bars={n_bars})",
                   gaps=gap_report(open_time, interval_ms))
