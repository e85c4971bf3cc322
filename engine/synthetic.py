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
arithmetic. Normal, Student-t and exponential variates are built here from those
uniforms with ``+ - * /`` and ``sqrt``, which IEEE 754 rounds exactly on every
platform; ``exp`` and ``log`` are evaluated by the polynomial kernels below instead
of libm or numpy's CPU-specific SIMD loops, and recursions use ``cumsum``/``cumprod``
(sequential, never pairwise or reordered). Work is done in slices of a fixed number
of bars with the state carried across, so every value at bar ``t`` depends only on
bars ``0..t`` and a shorter series is an exact prefix of a longer one. The one outside
dependency is numpy's PCG64 stream behind ``Generator.random``, which numpy keeps
stable across versions; ``tests/test_synthetic.py`` pins a fingerprint of the output.
"""

from __future__ import annotations

import math

import numpy as np

from .candles import Candles
from .errors import UserError
from .candles import gap_report

__all__ = ["generate_candles", "DEFAULT_BARS"]

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


# --- deterministic elementary functions -----------------------------------------------
# fdlibm's split of ln 2: _LN2_HI has its low bits zero, so k * _LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_SQRT2 = 1.4142135623730951
_TINY = 2.2250738585072014e-308                                       # smallest normal double
_EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(13))[::-1]   # Taylor, |f| <= ln2/2
_LOG_COEF = tuple(1.0 / (2 * k + 1) for k in range(10))[::-1]         # atanh series, |s| <= 0.172
_CHUNK = 1 << 15   # bars per slice of the pipeline: temporaries stay in cache


def _horner(coef: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    """Polynomial with coefficients from the highest degree down, in a fixed order."""
    p = z * coef[0]
    p += coef[1]
    for c in coef[2:]:
        p *= z
        p += c
    return p


def _chunked(kernel):
    """Apply an in-place elementwise kernel slice by slice (keeps temporaries in cache)."""
    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        for i in range(0, x.size, _CHUNK):
            kernel(x[i:i + _CHUNK])
        return x
    run.__doc__ = kernel.__doc__
    return run


def _exp_kernel(x: np.ndarray) -> None:
    """exp(x) in place, within ~1 ulp, from exactly rounded operations only."""
    np.clip(x, -700.0, 700.0, out=x)
    k = np.rint(x * _INV_LN2)
    x -= k * _LN2_HI
    x -= k * _LN2_LO
    p = _horner(_EXP_COEF, x)
    scale = ((k.astype(np.int64) + 1023) << 52).view(np.float64)   # 2**k, exact
    np.multiply(p, scale, out=x)


def _log_kernel(x: np.ndarray) -> None:
    """Natural log in place (inputs clamped to normal positive doubles), within ~1 ulp."""
    np.maximum(x, _TINY, out=x)
    bits = x.view(np.int64)
    mant = bits & 0x000FFFFFFFFFFFFF
    big = mant > 0x6A09E667F3BCD                        # mantissa of sqrt(2): scale to [0.707, 1.414)
    ef = (bits >> 52) - 1023                          # unbiased exponent
    ef += big
    mant |= (1023 - big) << 52
    m = mant.view(np.float64)
    s = m - 1.0
    m += 1.0
    s /= m
    p = _horner(_LOG_COEF, s * s)
    p *= s + s
    e = ef.astype(np.float64)
    p += e * _LN2_LO
    e *= _LN2_HI
    np.add(p, e, out=x)


_EXP_SMALL_COEF = _EXP_COEF[-5:]


def _round_into(x: np.ndarray, scale: float, out: np.ndarray) -> None:
    """``np.round(x, decimals)`` for scale = 10**decimals, same operations, written to out."""
    np.multiply(x, scale, out=out)
    np.rint(out, out=out)
    out /= scale


def _exp_small(x: np.ndarray) -> None:
    """exp(x) in place for |x| well below 1: 1 + x + x^2/2 + x^3/6 + x^4/24."""
    np.copyto(x, _horner(_EXP_SMALL_COEF, x))


_exp_inplace = _chunked(_exp_kernel)
_log_inplace = _chunked(_log_kernel)


def _exp(x) -> np.ndarray:
    return _exp_inplace(np.array(x, dtype=np.float64))


def _log(x) -> np.ndarray:
    return _log_inplace(np.array(x, dtype=np.float64))


def _exp_scalar(x: float) -> float:
    return float(_exp([x])[0])


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


def _normal_kernel(p: np.ndarray) -> None:
    """Uniforms in [0, 1) -> standard normals in place (0 is treated as 2**-54)."""
    np.maximum(p, 2.0 ** -54, out=p)
    q = p - 0.5
    r = q * q
    z = _horner(_ACK_A, r)
    z *= q
    z /= _horner(_ACK_B, r)
    tail = np.flatnonzero(np.abs(q) > 0.5 - _ACK_LOW)
    if tail.size:
        pt = p[tail]
        upper = pt > 0.5
        pt[upper] = 1.0 - pt[upper]                      # exact (Sterbenz)
        _log_kernel(pt)
        s = np.sqrt(pt * -2.0)
        zt = _horner(_ACK_C, s) / _horner(_ACK_D, s)
        zt[upper] = -zt[upper]
        z[tail] = zt
    p[:] = z


_normal_inplace = _chunked(_normal_kernel)


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return _normal_inplace(rng.random(n))


def _exponential(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.random(n)
    np.subtract(1.0, u, out=u)                           # (0, 1]
    _log_inplace(u)
    return np.negative(u, out=u)


def _student_t(z: np.ndarray, chi_streams, dof: int) -> np.ndarray:
    """Student-t scaled to unit variance, in place over normals ``z``.

    t = Z / sqrt(chi2 / dof) with chi2_dof = -2 log(product of dof/2 uniforms) (dof even),
    then times sqrt((dof - 2) / dof) for unit variance.
    """
    n = z.size
    prod = chi_streams[0].random(n)                     # a 0 (p = 2**-53) is clamped by the log
    for g in chi_streams[1: dof // 2]:
        prod *= g.random(n)
    _log_inplace(prod)                                  # log(prod) = -chi2 / 2
    np.multiply(prod, -2.0 / (dof - 2.0), out=prod)     # chi2 / (dof - 2)
    np.maximum(prod, 1e-300, out=prod)
    np.sqrt(prod, out=prod)
    z /= prod
    np.minimum(z, _SHOCK_CAP, out=z)
    return np.maximum(z, -_SHOCK_CAP, out=z)


def _ar1_plan(phi: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Block length L (a power of two, at most 4096, with phi**-L below 1e150) and the
    powers phi**1..phi**L and their reciprocals."""
    plan = _AR1_PLANS.get(phi)
    if plan is None:
        block, phi_block = 1, phi
        while block < 4096 and phi_block * phi_block > 1e-150:
            phi_block *= phi_block
            block *= 2
        powers = np.cumprod(np.full(block, phi))
        plan = _AR1_PLANS[phi] = (block, powers, 1.0 / powers)
    return plan


_AR1_PLANS: dict[float, tuple[int, np.ndarray, np.ndarray]] = {}


def _ar1(e: np.ndarray, phi: float, x0: float = 0.0, *, overwrite: bool = False) -> np.ndarray:
    """``x[t] = phi * x[t-1] + e[t]`` with ``x[-1] = x0``, vectorised in blocks.

    Within a block of length L the recursion is ``phi**j * cumsum(e * phi**-j)``; the
    block-end carries follow a short scalar recursion. Rounding error stays of order
    eps / (1 - phi). With ``overwrite`` the result may be written into ``e``.
    """
    if not 0.0 < phi < 1.0:
        raise ValueError(f"AR coefficient {phi!r} must be in (0, 1)")
    block, powers, inv = _ar1_plan(phi)
    n = e.size
    rows = -(-n // block)
    if n == rows * block:
        x = e if overwrite else e.copy()
    else:
        x = np.zeros(rows * block)
        x[:n] = e
    x = x.reshape(rows, block)
    x *= inv
    np.cumsum(x, axis=1, out=x)
    x *= powers
    ends = x[:, -1].tolist()
    phi_l = float(powers[-1])
    carry, c = [0.0] * rows, float(x0)
    for i in range(rows):
        carry[i] = c
        c = ends[i] + phi_l * c
    if rows == 1:
        x += powers * carry[0]
    else:
        x += powers[None, :] * np.asarray(carry)[:, None]
    return x.reshape(-1)[:n]


def _decay(half_life_bars: float) -> float:
    """Per-bar AR coefficient for a half-life given in bars of the target interval."""
    return max(_exp_scalar(-_LN2_HI * (1.0 / half_life_bars) - _LN2_LO * (1.0 / half_life_bars)), 1e-6)


def _regimes(rng: np.random.Generator, n: int, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Semi-Markov regime segments covering n bars: (end index, regime id, drift per bar)."""
    state = _RANGE
    states, ends, drifts = [], [], []
    total = 0
    while total < n:                                    # fixed-size draws: prefix-stable
        u = rng.random(2 * 256).reshape(256, 2).tolist()
        e = _exponential(rng, 256).tolist()
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
        self.phi = _decay(half_life_bars)
        self.innov = sd * math.sqrt(12.0 * (1.0 - self.phi * self.phi))
        self.last = sd * math.sqrt(12.0) * (float(rng.random()) - 0.5)

    def next(self, m: int) -> np.ndarray:
        z = self.rng.random(m)
        z -= 0.5
        z *= self.innov
        x = _ar1(z, self.phi, self.last, overwrite=True)
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
    seg_log_vol_v = _log(seg_vol) * _VOLUME_VOL_BETA     # volume's share of the regime factor
    seg_trend = seg_state != _RANGE
    season_p, weekend_p = _weekly_profile(start_ms, n, interval_ms)
    period = season_p.size
    log_season_v_p = _log(season_p)                     # volume: season link + weekend offset
    log_season_v_p *= _VOLUME_VOL_BETA
    log_season_v_p[weekend_p] += _LOG_WEEKEND_VOLUME
    if period < n:                                      # tile so each slice is a plain view
        season_p = np.resize(season_p, period + _CHUNK)
        log_season_v_p = np.resize(log_season_v_p, period + _CHUNK)
    sv = [_AR1Stream(streams[_S_SV + i], hl / dt, sd) for i, (hl, sd) in enumerate(_SV_FACTORS)]
    sv_mean = -sum(sd * sd for _, sd in _SV_FACTORS)    # E[exp(2 log_vol)] = 1
    vol_ar = _AR1Stream(streams[_S_VOL_AR], _VOLUME_AR[0] / dt, _VOLUME_AR[1])
    phi_range = _decay(_RANGE_HALF_LIFE / dt)
    kappa = 1.0 - phi_range
    alpha = 1.0 - _decay(_ANCHOR_HALF_LIFE / dt)
    wick = 2.0 * _WICK_SCALE * _WICK_SCALE

    open_, high, low, close, volume = (np.empty(n) for _ in range(5))
    dev_last = 0.0           # OU deviation at the previous bar
    cum_last = 0.0           # cumulative log return at the previous bar
    ema_last = 0.0           # slow average of the cumulative log return
    y_last = 0.0             # log(close / start_price) at the previous bar
    close_raw_last = start_price
    close_last = max(round(start_price, 2), 0.01)

    for i0 in range(0, n, _CHUNK):                      # slices start at fixed multiples
        i1 = min(n, i0 + _CHUNK)
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
        sigma = _exp(log_vol)
        sigma *= per_bar(seg_vol)
        sigma *= season
        sigma *= base_sigma

        # returns: Student-t shocks; trend drift or OU mean reversion inside ranges
        shock = _student_t(_normal(streams[_S_Z], m), streams[_S_CHI:], _T_DOF)
        r = shock * sigma
        dev = _ar1(r, phi_range, dev_last)
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
        ema = _ar1(alpha * cum, 1.0 - alpha, ema_last)
        ema_last = float(ema[-1])
        y = cum
        y -= ema
        b = np.empty(m)                                 # log(close / open) of each bar
        b[0] = y[0] - y_last
        np.subtract(y[1:], y[:-1], out=b[1:])
        y_last = float(y[-1])
        _exp_kernel(y)
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
        _log_kernel(g)
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
        _exp_small(up)
        up *= np.maximum(open_raw, close_raw)
        np.negative(dn, out=dn)
        _exp_small(dn)
        dn *= np.minimum(open_raw, close_raw)

        # tick rounding, then the OHLC rules again
        c = close[i0:i1]
        _round_into(close_raw, 100.0, c)
        np.maximum(c, 0.01, out=c)
        o = open_[i0:i1]
        o[0] = close_last
        o[1:] = c[:-1]
        close_last = float(c[-1])
        h = high[i0:i1]
        _round_into(up, 100.0, h)
        np.maximum(h, np.maximum(o, c), out=h)
        lo = low[i0:i1]
        _round_into(dn, 100.0, lo)
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
        _exp_kernel(log_v)
        log_v *= _VOLUME_SCALE * dt
        v = volume[i0:i1]
        _round_into(log_v, 100000.0, v)
        np.maximum(v, 0.00001, out=v)

    open_time = start_ms + np.arange(n, dtype=np.int64) * interval_ms
    return Candles(open_time=open_time, open=open_, high=high, low=low, close=close,
                   volume=volume, interval_ms=interval_ms, symbol=symbol,
                   source=f"synthetic(seed={seed}, bars={n_bars})",
                   gaps=gap_report(open_time, interval_ms))
