"""Bit-exact emulation of the original's float64 arithmetic on integer hundredths.

The original environment kept energy, sprint health and trust as Python floats
(``max(0.0, min(1.0, x + delta))``), so a value can sit a few ulps off its decimal: after
``0.87 - 0.06 + 0.04 - 0.25 + 0.03 - 0.30 - 0.28`` energy is ``0.0500000000000001`` and the
"energy <= 0.05" early end does *not* fire.  The golden file is the truth, so ``seed_v1``
reproduces that drift exactly; ``week_v2`` uses plain integer hundredths (offset always 0).

A float64 value ``v`` in [0, 1] is represented as ``(h, off)``: ``h`` integer hundredths and
``off`` the exact distance ``v - h/100`` in units of ``2**-60 / 25`` (an int32; every float64
in [2**-8, 1] is a multiple of ``2**-60``, so the distance is an integer in these units).
Addition of a literal ``dh/100`` is exact in these units, then rounded to the float64 grid of
the result's binade (round half to even), which needs only residues modulo ``25 * 2**k``.
"""

from __future__ import annotations

from fractions import Fraction

import jax.numpy as jnp
import numpy as np

_SCALE = 25 * 2**60  # units per 1.0


def _offset(h: int) -> int:
    """Distance of the float64 nearest h/100 from h/100, in units of 2**-60/25."""
    return int(Fraction(h / 100) * _SCALE - Fraction(h, 100) * _SCALE)


def _binade_exponent(x: Fraction) -> int:
    e = 0
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    return e


def _tables():
    off = np.array([_offset(h) for h in range(101)], np.int64)
    grid = np.ones((2, 101), np.int64)  # spacing of the float64 grid at h/100 (row 1: binade below)
    rem = np.zeros((2, 101), np.int64)  # (h * 2**58) mod spacing
    rem2 = np.zeros((2, 101), np.int64)  # (h * 2**58) mod 2 * spacing
    for h in range(1, 101):
        e = _binade_exponent(Fraction(h, 100))
        for row, ee in enumerate((e, e - 1)):
            m = 25 * 2 ** (ee + 8)  # 2**(ee - 52) in units of 2**-60/25
            grid[row, h] = m
            rem[row, h] = (h * 2**58) % m
            rem2[row, h] = (h * 2**58) % (2 * m)
    assert np.abs(off).max() < 2**31 and grid.max() < 2**31
    return (
        off.astype(np.int32),
        grid.astype(np.int32),
        rem.astype(np.int32),
        rem2.astype(np.int32),
    )


OFFSET, GRID, REM, REM2 = (jnp.asarray(t) for t in _tables())
POWERS_OF_TWO = jnp.asarray(np.isin(np.arange(101), [25, 50, 100]))


def literal_offset(h) -> jnp.ndarray:
    """Offset of the float64 literal ``h/100`` (h may be negative)."""
    h = jnp.asarray(h, jnp.int32)
    return jnp.sign(h) * OFFSET[jnp.clip(jnp.abs(h), 0, 100)]


def add(h, off, dh):
    """float64 ``clamp(v + dh/100, 0, 1)`` for ``v = (h, off)``; returns the new ``(h, off)``.

    Works elementwise on int32 arrays of equal shape.
    """
    h2 = h + dh
    exact = off + literal_offset(dh)  # exact sum = h2/100 + exact units
    hc = jnp.clip(h2, 0, 100)
    below = (POWERS_OF_TWO[hc] & (exact < 0)).astype(jnp.int32)  # value just under 2**k
    m, r, r2 = GRID[below, hc], REM[below, hc], REM2[below, hc]
    rem = jnp.mod(r + exact, m)
    lower_is_even = jnp.mod(r2 + exact, 2 * m) == rem
    up = (2 * rem > m) | ((2 * rem == m) & ~lower_is_even)
    rounded = jnp.where(up, exact - rem + m, exact - rem)
    # Results that cancel to (almost) zero are exact in float64 (Sterbenz): no rounding.
    rounded = jnp.where(h2 == 0, exact, rounded)
    too_low = (h2 < 0) | ((h2 == 0) & (rounded < 0))
    too_high = (h2 > 100) | ((h2 == 100) & (rounded > 0))
    h_new = jnp.where(too_low, 0, jnp.where(too_high, 100, h2))
    off_new = jnp.where(too_low | too_high, 0, rounded)
    return h_new.astype(jnp.int32), off_new.astype(jnp.int32)


def at_most(h, off, threshold, exact_floats) -> jnp.ndarray:
    """``v <= threshold/100`` (see :func:`at_least`)."""
    t_off = jnp.where(exact_floats, literal_offset(threshold), 0)
    return (h < threshold) | ((h == threshold) & (off <= t_off))


def at_least(h, off, threshold, exact_floats) -> jnp.ndarray:
    """``v >= threshold/100`` where the threshold is a float64 literal if ``exact_floats``."""
    t_off = jnp.where(exact_floats, literal_offset(threshold), 0)
    return (h > threshold) | ((h == threshold) & (off >= t_off))
