"""Chip pulse (root-raised cosine) and the harmonic-null comb of the transmitter.

The chip pulse is the unit-energy root-raised-cosine g(t) with roll-off 0.25, t in chips; at any
instant the transmitter sums the 13 chips nearest to it (n within 6 of floor(t + 0.5)). The transmitter then
sends s(t) = u(t) - u(t - T0), where u is the
modulated spread signal and T0 the grid period the hub measured just before the burst. In the
frequency domain that is U(f) (1 - exp(-j 2 pi f T0)): an exact zero at every harmonic k/T0 of
the real grid frequency, with the energy moved to the half-way points, so nothing is injected
where the harmonics sit and the receiver's comb filter removes nothing wanted.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.air import params as P
from dsp.numba_settings import jit


@jit
def rrc(t: float, beta: float) -> float:
    """Unit-energy root-raised-cosine pulse at time ``t`` (in symbol/chip periods)."""
    if abs(t) < 1e-12:
        return 1.0 - beta + 4.0 * beta / math.pi
    if beta > 0.0 and abs(abs(t) - 1.0 / (4.0 * beta)) < 1e-9:
        a = math.pi / (4.0 * beta)
        return beta / math.sqrt(2.0) * ((1.0 + 2.0 / math.pi) * math.sin(a) + (1.0 - 2.0 / math.pi) * math.cos(a))
    num = math.sin(math.pi * t * (1.0 - beta)) + 4.0 * beta * t * math.cos(math.pi * t * (1.0 + beta))
    den = math.pi * t * (1.0 - (4.0 * beta * t) ** 2)
    return num / den


@jit
def rrc_many(t, beta):
    """:func:`rrc` at every point of ``t`` (float64 array, chips): ``[rrc(v, beta) for v in t]``,
    the same values, without a call from Python per point."""
    out = np.empty(t.shape[0])
    for i in range(t.shape[0]):
        out[i] = rrc(t[i], beta)
    return out


def rrc_taps(samples_per_chip: int, span_chips: int = P.RRC_SPAN_CHIPS, beta: float = P.RRC_BETA) -> np.ndarray:
    """Sampled pulse (for receivers' matched filters), energy-normalised to 1 over the taps."""
    if samples_per_chip < 1:
        raise ValueError("samples_per_chip must be >= 1")
    t = np.arange(-span_chips * samples_per_chip, span_chips * samples_per_chip + 1) / samples_per_chip
    h = np.array([rrc(float(x), beta) for x in t])
    return h / np.sqrt(np.sum(h**2))


def comb_response(f_hz: np.ndarray, grid_period_s: float) -> np.ndarray:
    """Complex response of the harmonic-null comb 1 - exp(-j 2 pi f T0)."""
    return 1.0 - np.exp(-2j * np.pi * np.asarray(f_hz) * grid_period_s)
