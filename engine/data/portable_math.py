"""Portable floating point: the same bits from the same inputs on every machine.

The synthetic market (:mod:`engine.data.synthetic`) is built from these pieces only.
Every value is made from ``numpy.random.Generator.random`` uniforms (raw 53-bit
draws, pure integer arithmetic) with ``+ - * /`` and ``sqrt``, which IEEE 754 rounds
exactly on every platform; ``exp`` and ``log`` are evaluated by the polynomial kernels
below instead of libm or numpy's CPU-specific SIMD loops, and recursions use
``cumsum``/``cumprod`` (sequential, never pairwise or reordered). Elementwise kernels
run in slices of :data:`CHUNK` values so their temporaries stay in cache.
"""

from __future__ import annotations

import math

import numpy as np

# fdlibm's split of ln 2: _LN2_HI has its low bits zero, so k * _LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_TINY = 2.2250738585072014e-308                                       # smallest normal double
_EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(13))[::-1]   # Taylor, |f| <= ln2/2
_LOG_COEF = tuple(1.0 / (2 * k + 1) for k in range(10))[::-1]         # atanh series, |s| <= 0.172
CHUNK = 1 << 15   # bars per slice of the pipeline: temporaries stay in cache


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
        for i in range(0, x.size, CHUNK):
            kernel(x[i:i + CHUNK])
        return x
    run.__doc__ = kernel.__doc__
    return run


def exp_kernel(x: np.ndarray) -> None:
    """exp(x) in place, within ~1 ulp, from exactly rounded operations only."""
    np.clip(x, -700.0, 700.0, out=x)
    k = np.rint(x * _INV_LN2)
    x -= k * _LN2_HI
    x -= k * _LN2_LO
    p = _horner(_EXP_COEF, x)
    scale = ((k.astype(np.int64) + 1023) << 52).view(np.float64)   # 2**k, exact
    np.multiply(p, scale, out=x)


def log_kernel(x: np.ndarray) -> None:
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


def round_into(x: np.ndarray, scale: float, out: np.ndarray) -> None:
    """``np.round(x, decimals)`` for scale = 10**decimals, same operations, written to out."""
    np.multiply(x, scale, out=out)
    np.rint(out, out=out)
    out /= scale


def exp_small(x: np.ndarray) -> None:
    """exp(x) in place for |x| well below 1: 1 + x + x^2/2 + x^3/6 + x^4/24."""
    np.copyto(x, _horner(_EXP_SMALL_COEF, x))


_exp_inplace = _chunked(exp_kernel)
log_inplace = _chunked(log_kernel)


def exp(x) -> np.ndarray:
    return _exp_inplace(np.array(x, dtype=np.float64))


def log(x) -> np.ndarray:
    return log_inplace(np.array(x, dtype=np.float64))


def _exp_scalar(x: float) -> float:
    return float(exp([x])[0])


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
        log_kernel(pt)
        s = np.sqrt(pt * -2.0)
        zt = _horner(_ACK_C, s) / _horner(_ACK_D, s)
        zt[upper] = -zt[upper]
        z[tail] = zt
    p[:] = z


_normal_inplace = _chunked(_normal_kernel)


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return _normal_inplace(rng.random(n))


def exponential(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.random(n)
    np.subtract(1.0, u, out=u)                           # (0, 1]
    log_inplace(u)
    return np.negative(u, out=u)


def student_t(z: np.ndarray, chi_streams, dof: int, cap: float) -> np.ndarray:
    """Student-t scaled to unit variance, in place over normals ``z``.

    t = Z / sqrt(chi2 / dof) with chi2_dof = -2 log(product of dof/2 uniforms) (dof even),
    then times sqrt((dof - 2) / dof) for unit variance, clipped to ``[-cap, cap]``.
    """
    n = z.size
    prod = chi_streams[0].random(n)                     # a 0 (p = 2**-53) is clamped by the log
    for g in chi_streams[1: dof // 2]:
        prod *= g.random(n)
    log_inplace(prod)                                  # log(prod) = -chi2 / 2
    np.multiply(prod, -2.0 / (dof - 2.0), out=prod)     # chi2 / (dof - 2)
    np.maximum(prod, 1e-300, out=prod)
    np.sqrt(prod, out=prod)
    z /= prod
    np.minimum(z, cap, out=z)
    return np.maximum(z, -cap, out=z)


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


def ar1(e: np.ndarray, phi: float, x0: float = 0.0, *, overwrite: bool = False) -> np.ndarray:
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


def decay(half_life_bars: float) -> float:
    """Per-bar AR coefficient for a half-life given in bars."""
    return max(_exp_scalar(-_LN2_HI * (1.0 / half_life_bars) - _LN2_LO * (1.0 / half_life_bars)), 1e-6)
