"""Chip codes: Gold sequences of length 127.

Two m-sequences of degree 7 form a preferred pair:
  u: a[n+7] = a[n+3] ^ a[n]                  (x^7 + x^3 + 1)
  v: b[n+7] = b[n+3] ^ b[n+2] ^ b[n+1] ^ b[n] (x^7 + x^3 + x^2 + x + 1)
both started from the all-ones state (a[0..6] = b[0..6] = 1). The Gold sequence with shift
s (0..126) is g_s[n] = u[n] ^ v[(n + s) mod 127]. Every pair of such sequences has periodic
cross-correlation in {-17, -1, +15} of 127 at every lag (-17.5 dB at worst).

Chip values are mapped 0 -> +1, 1 -> -1. Channel c uses the Gold sequences
``code_shift(c, k)``, k = 0..3: the (4c + k)-th *balanced* sequence (64 ones, 63 zeros)
in order of increasing shift; the table is printed in docs/air-interface.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dsp.air import params as P


def m_sequence(taps: tuple[int, ...], degree: int = 7) -> np.ndarray:
    """Binary m-sequence with a[n+degree] = XOR of a[n+t] for t in taps, all-ones start."""
    n = (1 << degree) - 1
    a = np.ones(n + degree, dtype=np.uint8)
    for i in range(n):
        x = 0
        for t in taps:
            x ^= a[i + t]
        a[i + degree] = x
    return a[:n].copy()


U_TAPS = (0, 3)
V_TAPS = (0, 1, 2, 3)


@lru_cache(maxsize=1)
def _pair() -> tuple[np.ndarray, np.ndarray]:
    return m_sequence(U_TAPS), m_sequence(V_TAPS)


def gold_code(shift: int) -> np.ndarray:
    """Gold sequence (0/1, length 127) with the given shift of v."""
    if not 0 <= shift < P.CODE_LENGTH:
        raise ValueError(f"Gold shift must be in 0..126, got {shift}")
    u, v = _pair()
    return u ^ np.roll(v, -shift)


@lru_cache(maxsize=1)
def balanced_shifts() -> tuple[int, ...]:
    return tuple(s for s in range(P.CODE_LENGTH) if int(gold_code(s).sum()) == 64)


def code_shift(channel: int, code: int) -> int:
    if not 0 <= code < P.CODES_PER_CHANNEL:
        raise ValueError(f"code index must be in 0..{P.CODES_PER_CHANNEL - 1}, got {code}")
    shifts = balanced_shifts()
    i = channel * P.CODES_PER_CHANNEL + code
    if channel < 0 or i >= len(shifts):
        raise ValueError(f"no chip code for channel {channel} (at most {len(shifts) // 4} channels)")
    return shifts[i]


@lru_cache(maxsize=64)
def chip_code(channel: int, code: int) -> np.ndarray:
    """Chip values (+1/-1 float64, length 127) of code ``code`` on channel ``channel``."""
    c = 1.0 - 2.0 * gold_code(code_shift(channel, code)).astype(np.float64)
    c.setflags(write=False)
    return c


def preamble_bits() -> np.ndarray:
    """The 64 preamble bits: the degree-6 m-sequence a[n+6] = a[n+1] ^ a[n] (all-ones start),
    63 bits, followed by one 0."""
    return _preamble_bits().copy()


@lru_cache(maxsize=1)
def _preamble_bits() -> np.ndarray:
    return np.concatenate([m_sequence((0, 1), degree=6), np.zeros(1, dtype=np.uint8)])
