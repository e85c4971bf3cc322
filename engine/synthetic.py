"""Deterministic synthetic BTCUSDT-like candles: the product's embedded offline data.

``generate_candles()`` (defaults: two years of 15-minute bars from 2023-01-01 UTC)
returns the same bytes for the same arguments on any machine, so a backtest run on
the default data is reproducible everywhere without a network.

Model (all parameters are expressed per 15 minutes and rescaled for other intervals)
-----------------------------------------------------------------------------------
* **Regimes** - a semi-Markov chain over *range*, *up-trend* and *down-trend*
  segments (exponential durations with a one-day minimum; mean 12 days for
  ranges and 9 days for trends). A trend segment draws one drift of 3-14 % per
  week; a range segment replaces the drift by mean reversion: log price follows an
  Ornstein-Uhlenbeck process with a 1.5-day half-life around a level near where
  the range began. Down-trends are more volatile than up-trends, ranges calmer.
* **Volatility clustering** - log-volatility is the sum of three Gaussian AR(1)
  factors with half-lives of 30 minutes, 12 hours and 10 days (a multi-scale
  stochastic-volatility model whose |r| autocorrelation decays slowly, as in real
  BTC), times the regime factor and an intraday/weekend seasonality profile
  measured on Binance BTCUSDT (US-open peak around 14:00 UTC, quieter weekends).
* **Fat tails** - innovations are Student-t with 6 degrees of freedom, scaled to
  unit variance; the volatility mixing fattens the tails further.
* **Long-run anchor** - log price is measured against its own 2-year-half-life
  exponential average, a pull too weak to matter over a few years that keeps
  prices in a sane band for very long series (10 million bars = 285 years).
* **Candles** - ``open[t] == close[t-1]``. High and low come from the exact
  Brownian-bridge distribution of the extremes between open and close given the
  bar's volatility. Volume (base asset, about 220 BTC per 15 minutes at the median)
  rises with volatility and the size of the bar's move, with its own persistent
  noise and the same seasonality. Prices are rounded to 0.01 and volume to
  0.00001 after which the OHLC rules are re-imposed.

Determinism
-----------
Only ``numpy.random.default_rng(seed)`` (and children from its ``spawn``) is used,
and only through ``Generator.random`` - raw 53-bit uniforms, pure integer
arithmetic. Normal, Student-t and exponential variates are built here from those
uniforms with ``+ - * /`` and ``sqrt``, which IEEE 754 rounds exactly on every
platform; ``exp`` and ``log`` are evaluated by the polynomial kernels below instead
of libm or numpy's CPU-specific SIMD loops, and recursions use ``cumsum``/``cumprod``
(sequential, never pairwise or reordered). Every value at bar ``t`` depends only on
bars ``0..t``, so a shorter series is an exact prefix of a longer one.
"""

from __future__ import annotations

import math

import numpy as np

from .candles import Candles
from .errors import UserError
from .validation import gap_report

__all__ = ["generate_candles", "DEFAULT_BARS"]

#: Two years of 15-minute bars.
DEFAULT_BARS = 70_080
_BARS_15M_PER_DAY = 96.0
_BARS_15M_PER_WEEK = 672.0

# --- model parameters (per 15-minute bar) ------------------------------------------
_SIGMA = 0.0031              # base volatility per bar, before the multipliers below
_T_DOF = 8                   # Student-t degrees of freedom (even: chi-square from uniforms)
_SHOCK_CAP = 15.0            # cap on a unit-variance innovation (guards 2**-53 events)
#: (half-life in 15m bars, stationary standard deviation of the log-vol factor)
_SV_FACTORS = ((3.0, 0.40), (48.0, 0.25), (960.0, 0.30))
#: regime -> volatility multiplier: range, up, down
_REGIME_VOL = (0.85, 1.0, 1.2)
_RANGE, _UP, _DOWN = 0, 1, 2
#: mean (exponential part) and minimum segment length, in 15m bars
_REGIME_MEAN = {_RANGE: 11.0 * _BARS_15M_PER_DAY, _UP: 8.0 * _BARS_15M_PER_DAY, _DOWN: 8.0 * _BARS_15M_PER_DAY}
_REGIME_MIN = 1.0 * _BARS_15M_PER_DAY
#: cumulative transition probabilities out of each regime (no self-transitions)
_NEXT = {_RANGE: ((0.5, _UP), (1.0, _DOWN)),
         _UP: ((0.65, _RANGE), (1.0, _DOWN)),
         _DOWN: ((0.65, _RANGE), (1.0, _UP))}
_TREND_WEEKLY = (0.03, 0.14)  # |drift| per week of a trend segment, uniform
_RANGE_HALF_LIFE = 1.5 * _BARS_15M_PER_DAY
_ANCHOR_HALF_LIFE = 2 * 365 * _BARS_15M_PER_DAY
#: weekday volatility by UTC hour (RMS 1), measured on Binance BTCUSDT 15m 2024-2025
_HOURLY_VOL = (1.01, 1.10, 0.97, 0.80, 0.71, 0.70, 0.86, 0.83, 0.81, 0.78, 0.75, 0.76,
               0.94, 1.23, 1.50, 1.35, 1.20, 1.18, 1.08, 1.05, 1.02, 0.96, 0.98, 0.87)
_WEEKEND_VOL = 0.63
_WICK_SCALE = 0.97            # bridge volatility relative to the bar's volatility
_VOLUME_MEDIAN = 460.0        # base-asset volume per 15m bar
_VOLUME_VOL_BETA = 1.2        # log volume per log volatility
_VOLUME_SHOCK = 0.30          # log volume per unit |innovation| (demeaned)
_VOLUME_AR = (8.0, 0.30)      # persistent log-volume noise: half-life, sd
_VOLUME_NOISE = 0.22          # i.i.d. log-volume noise
_WEEKEND_VOLUME = 0.55        # extra weekend volume multiplier on top of the volatility link


# --- deterministic elementary functions -----------------------------------------------
# fdlibm's split of ln 2: _LN2_HI has its low bits zero, so k * _LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_SQRT_HALF = 0.70710678118654757
_EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(13))[::-1]   # Taylor, |f| <= ln2/2
_LOG_COEF = tuple(1.0 / (2 * k + 1) for k in range(12))[::-1]         # atanh series, |s| <= 0.172


def _horner(coef: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    p = np.full_like(z, coef[0])
    for c in coef[1:]:
        p *= z
        p += c
    return p


def _exp(x: np.ndarray) -> np.ndarray:
    """exp(x) to ~1 ulp using only exactly rounded operations."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x * _INV_LN2)
    f = x - k * _LN2_HI
    f -= k * _LN2_LO
    return np.ldexp(_horner(_EXP_COEF, f), k.astype(np.int32))


def _log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite x to ~1 ulp using only exactly rounded operations."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))   # x = m * 2**e, 0.5 <= m < 1
    low = m < _SQRT_HALF
    m[low] *= 2.0
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    p = _horner(_LOG_COEF, s * s)
    p *= 2.0 * s
    p += e * _LN2_LO
    p += e * _LN2_HI
    return p


def _exp_scalar(x: float) -> float:
    return float(_exp(np.array([x]))[0])


# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9).
_ACK_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
          1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_ACK_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
          6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_ACK_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
          -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_ACK_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
          3.754408661907416e+00, 1.0)
_ACK_LOW = 0.02425


def _uniform_open(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniforms in (0, 1): ``random()`` is in [0, 1); 0 is moved to 2**-54."""
    u = rng.random(n)
    u[u == 0.0] = 2.0 ** -54
    return u


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    p = _uniform_open(rng, n)
    q = p - 0.5
    r = q * q
    z = _horner(_ACK_A, r)
    z *= q
    z /= _horner(_ACK_B, r)
    tail = np.flatnonzero(np.minimum(p, 1.0 - p) < _ACK_LOW)
    if tail.size:
        pt = p[tail]
        upper = pt > 0.5
        pt[upper] = 1.0 - pt[upper]                      # exact (Sterbenz)
        s = np.sqrt(-2.0 * _log(pt))
        zt = _horner(_ACK_C, s) / _horner(_ACK_D, s)
        zt[upper] = -zt[upper]
        z[tail] = zt
    return z


def _exponential(rng: np.random.Generator, n: int) -> np.ndarray:
    return -_log(1.0 - rng.random(n))                   # 1 - U is in (0, 1]


def _student_t(rng_z: np.random.Generator, rng_chi: np.random.Generator, n: int, dof: int) -> np.ndarray:
    """Student-t scaled to unit variance: Z / sqrt(chi2/dof), chi2_dof = -2 log(prod of dof/2 uniforms)."""
    prod = 1.0 - rng_chi.random(n)
    for _ in range(dof // 2 - 1):
        prod *= 1.0 - rng_chi.random(n)
    chi2 = _log(prod)
    chi2 *= -2.0
    np.maximum(chi2, 1e-300, out=chi2)
    t = _normal(rng_z, n)
    t *= np.sqrt((dof - 2.0) / chi2)                     # = t_dof * sqrt((dof-2)/dof)
    return np.clip(t, -_SHOCK_CAP, _SHOCK_CAP, out=t)


def _ar1(e: np.ndarray, phi: float, x0: float = 0.0) -> np.ndarray:
    """``x[t] = phi * x[t-1] + e[t]`` with ``x[-1] = x0``, vectorised in blocks.

    Within a block of length L the recursion is ``phi**j * cumsum(e * phi**-j)``; the
    block-end carries follow a short scalar recursion. L is chosen so that
    ``phi**-L`` stays below 1e150; rounding error stays of order eps / (1 - phi).
    """
    n = e.size
    if not 0.0 < phi < 1.0:
        raise ValueError(f"AR coefficient {phi!r} must be in (0, 1)")
    block, phi_block = 1, phi
    while block < 4096 and phi_block * phi_block > 1e-150:
        phi_block *= phi_block
        block *= 2
    rows = -(-n // block)
    x = np.zeros(rows * block)
    x[:n] = e
    x = x.reshape(rows, block)
    powers = np.cumprod(np.full(block, phi))             # phi**1 .. phi**L
    x *= 1.0 / powers
    np.cumsum(x, axis=1, out=x)
    x *= powers
    ends = x[:, -1].tolist()
    phi_l = float(powers[-1])
    carry, c = [0.0] * rows, float(x0)
    for b in range(rows):
        carry[b] = c
        c = ends[b] + phi_l * c
    x += powers[None, :] * np.asarray(carry)[:, None]
    return x.reshape(-1)[:n]


def _decay(half_life_bars: float) -> float:
    """Per-bar AR coefficient for a half-life given in bars of the target interval."""
    return max(_exp_scalar(-_LN2_HI * (1.0 / half_life_bars) - _LN2_LO * (1.0 / half_life_bars)), 1e-6)


def _regimes(rng: np.random.Generator, n: int, dt: float):
    """Per-bar regime id and drift per bar. dt = bar length in 15-minute units."""
    state = _RANGE
    chunk = 256
    states, lengths, drifts = [], [], []
    total = 0
    while total < n:
        u = rng.random(3 * chunk).reshape(chunk, 3).tolist()
        e = _exponential(rng, chunk).tolist()
        for (u_next, u_drift, _spare), ex in zip(u, e):
            bars = max(1, int((_REGIME_MIN + _REGIME_MEAN[state] * ex) / dt + 0.5))
            if state == _RANGE:
                drift = 0.0
            else:
                weekly = _TREND_WEEKLY[0] + (_TREND_WEEKLY[1] - _TREND_WEEKLY[0]) * u_drift
                drift = (weekly if state == _UP else -weekly) / _BARS_15M_PER_WEEK * dt
            states.append(state)
            lengths.append(bars)
            drifts.append(drift)
            total += bars
            for cum, nxt in _NEXT[state]:
                if u_next < cum:
                    state = nxt
                    break
            if total >= n:
                break
    lengths_a = np.asarray(lengths, dtype=np.int64)
    regime = np.repeat(np.asarray(states, dtype=np.int8), lengths_a)[:n]
    drift = np.repeat(np.asarray(drifts, dtype=np.float64), lengths_a)[:n]
    return regime, drift


def _seasonality(open_time: np.ndarray, interval_ms: int) -> np.ndarray:
    """Volatility multiplier from the UTC hour (linear between hourly knots) and the weekday."""
    n = open_time.size
    season = np.ones(n)
    if interval_ms < 86_400_000:
        mid = open_time + interval_ms // 2
        hour = (mid % 86_400_000).astype(np.float64) / 3_600_000.0 - 0.5     # knots at hh:30
        hour[hour < 0] += 24.0
        lo = np.floor(hour)
        w = hour - lo
        lo_i = lo.astype(np.int64)
        knots = np.asarray(_HOURLY_VOL + (_HOURLY_VOL[0],))
        season = knots[lo_i] * (1.0 - w) + knots[lo_i + 1] * w
    if interval_ms < 7 * 86_400_000:
        dow = (open_time // 86_400_000 + 3) % 7        # 1970-01-01 was a Thursday; 0 = Monday
        season[dow >= 5] *= _WEEKEND_VOL
    return season


def generate_candles(n_bars: int = DEFAULT_BARS, *, seed: int = 42, interval_ms: int = 900_000,
                     start_ms: int = 1_672_531_200_000, start_price: float = 30_000.0,
                     symbol: str = "BTCUSDT") -> Candles:
    """Seeded synthetic candles; identical bytes for identical arguments on any machine."""
    n = int(n_bars)
    if n < 1:
        raise UserError(f"synthetic data: n_bars={n_bars!r} must be at least 1")
    if int(interval_ms) <= 0 or int(interval_ms) % 1000:
        raise UserError(f"synthetic data: interval_ms={interval_ms!r} must be a positive whole number of seconds")
    if not (math.isfinite(start_price) and start_price >= 1.0):
        raise UserError(f"synthetic data: start_price={start_price!r} must be a finite price of at least 1")
    interval_ms = int(interval_ms)
    dt = interval_ms / 900_000.0                        # bar length in 15-minute units
    sqrt_dt = math.sqrt(dt)                             # correctly rounded everywhere

    root = np.random.default_rng(seed)
    (g_regime, g_z, g_chi, g_sv, g_wick, g_vol) = root.spawn(6)

    open_time = start_ms + np.arange(n, dtype=np.int64) * interval_ms

    # regimes, volatility
    regime, drift = _regimes(g_regime, n, dt)
    log_vol = np.zeros(n)
    for half_life, sd in _SV_FACTORS:
        phi = _decay(half_life / dt)
        z = _normal(g_sv, n + 1)
        z[1:] *= sd * math.sqrt(1.0 - phi * phi)
        log_vol += _ar1(z[1:], phi, sd * float(z[0]))
    var_h = sum(sd * sd for _, sd in _SV_FACTORS)
    log_vol -= var_h                                    # E[exp(2 h - 2 var)] = 1
    sigma = _exp(log_vol)
    del log_vol
    sigma *= np.asarray(_REGIME_VOL)[regime]
    sigma *= _seasonality(open_time, interval_ms)
    sigma *= _SIGMA * sqrt_dt

    # returns: trend drift, or OU mean reversion inside ranges
    shock = _student_t(g_z, g_chi, n, _T_DOF)
    eps = shock * sigma
    dev = _ar1(eps, _decay(_RANGE_HALF_LIFE / dt))      # OU deviation driven by the same shocks
    in_range = regime == _RANGE
    r = eps + drift
    prev_dev = np.empty(n)
    prev_dev[0] = 0.0
    prev_dev[1:] = dev[:-1]
    r[in_range] -= (1.0 - _decay(_RANGE_HALF_LIFE / dt)) * prev_dev[in_range]
    del dev, prev_dev, drift, in_range

    # log price relative to the start, measured against its slow exponential average
    y = np.cumsum(r)
    a = 1.0 - _decay(_ANCHOR_HALF_LIFE / dt)
    ema = _ar1(a * y, 1.0 - a)
    y -= ema
    del ema, r

    close_raw = _exp(y)
    close_raw *= start_price
    del y
    open_raw = np.empty(n)
    open_raw[0] = start_price
    open_raw[1:] = close_raw[:-1]

    # high/low: extremes of a Brownian bridge from open to close
    b = _log(close_raw / open_raw)
    wick_var = sigma * _WICK_SCALE
    wick_var *= wick_var
    wick_var *= 2.0
    bb = b * b
    up = np.sqrt(bb + wick_var * _exponential(g_wick, n))
    up += b
    up *= 0.5
    dn = np.sqrt(bb + wick_var * _exponential(g_wick, n))
    dn -= b
    dn *= 0.5
    del bb, wick_var
    high_raw = open_raw * _exp(up)
    low_raw = open_raw * _exp(-dn)
    del up, dn

    close = np.maximum(np.round(close_raw, 2), 0.01)
    open_ = np.empty(n)
    open_[0] = max(round(float(start_price), 2), 0.01)
    open_[1:] = close[:-1]
    high = np.maximum(np.round(high_raw, 2), np.maximum(open_, close))
    low = np.minimum(np.maximum(np.round(low_raw, 2), 0.01), np.minimum(open_, close))
    del close_raw, open_raw, high_raw, low_raw

    # volume: volatility link, size of the move, persistent and i.i.d. noise, weekends
    season_vol = sigma / (_SIGMA * sqrt_dt)
    log_v = _log(season_vol)
    log_v *= _VOLUME_VOL_BETA
    log_v += _VOLUME_SHOCK * (np.abs(shock) - 0.7500)   # E|t6 scaled to unit variance| ~ 0.75
    hl, sd = _VOLUME_AR
    phi = _decay(hl / dt)
    z = _normal(g_vol, n + 1)
    z[1:] *= sd * math.sqrt(1.0 - phi * phi)
    log_v += _ar1(z[1:], phi, sd * float(z[0]))
    log_v += _VOLUME_NOISE * _normal(g_vol, n)
    dow = (open_time // 86_400_000 + 3) % 7
    if interval_ms < 7 * 86_400_000:
        log_v[dow >= 5] += _log(np.array([_WEEKEND_VOLUME]))[0]
    volume = _exp(log_v)
    volume *= _VOLUME_MEDIAN * dt
    volume = np.maximum(np.round(volume, 5), 0.00001)

    return Candles(open_time=open_time, open=open_, high=high, low=low, close=close,
                   volume=volume, interval_ms=interval_ms, symbol=symbol,
                   source=f"synthetic(seed={seed}, bars={n_bars})",
                   gaps=gap_report(open_time, interval_ms))
