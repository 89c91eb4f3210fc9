"""Spreader and passband modulator of the Edge Transmitter.

:func:`spread` turns data symbols into chips (chip n carries symbol n // 4 times code chip
n mod 127). :func:`modulate_kernel` evaluates the transmitted current

    s(t) = A [u(t) - u(t - T0)],   u(t) = Re{ sum_n a_n g(t/Tc - n) exp(j (2 pi fc t + phi)) }

exactly (no interpolation) at arbitrary receiver sample instants, with the transmitter's own
clock running (1 + ppm 1e-6) fast: its chip rate and carrier are both scaled by that factor.
With A = 1 the burst has unit RMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.air import params as P
from dsp.air.codes import chip_code
from dsp.numba_settings import jit
from dsp.tx.shaping import rrc


def spread(symbols: np.ndarray, channel: int, code: int) -> np.ndarray:
    """Chips (complex128) for ``symbols``; the code phase starts at chip 0 of the burst."""
    symbols = np.asarray(symbols, dtype=np.complex128)
    if symbols.ndim != 1:
        raise ValueError("symbols must be one-dimensional")
    c = chip_code(channel, code)
    n = symbols.size * P.CHIPS_PER_SYMBOL
    idx = np.arange(n)
    return symbols[idx // P.CHIPS_PER_SYMBOL] * c[idx % P.CODE_LENGTH]


@jit
def _envelope(chips, tau_chips, span, beta):
    n_c = int(math.floor(tau_chips + 0.5))
    lo = max(n_c - span, 0)
    hi = min(n_c + span, chips.shape[0] - 1)
    acc = 0.0 + 0.0j
    for n in range(lo, hi + 1):
        acc += chips[n] * rrc(tau_chips - n, beta)
    return acc


@jit
def modulate_kernel(
    chips,
    first_sample,
    n_samples,
    fs_hz,
    t_start_s,
    chip_rate_hz,
    fc_hz,
    phase_rad,
    grid_period_s,
    clock_scale,
    amplitude,
    span,
    beta,
):
    """Samples ``first_sample .. first_sample + n_samples - 1`` of one burst (float64)."""
    out = np.zeros(n_samples, dtype=np.float64)
    two_pi_fc = 2.0 * math.pi * fc_hz
    for k in range(n_samples):
        t_true = (first_sample + k) / fs_hz - t_start_s
        tau = t_true * clock_scale  # transmitter time since the centre of chip 0
        v = 0.0
        for d in range(2):
            tt = tau - d * grid_period_s
            e = _envelope(chips, tt * chip_rate_hz, span, beta)
            if e.real != 0.0 or e.imag != 0.0:
                ph = two_pi_fc * tt + phase_rad
                val = e.real * math.cos(ph) - e.imag * math.sin(ph)
                v += val if d == 0 else -val
        out[k] = amplitude * v
    return out


@dataclass(frozen=True)
class BurstTiming:
    """Where a burst lands on the receiver's sample grid."""

    first_sample: int
    n_samples: int


def burst_extent(
    n_chips: int,
    *,
    fs_hz: float,
    t_start_s: float,
    grid_period_s: float,
    clock_ppm: float = 0.0,
    chip_rate_hz: float = P.CHIP_RATE_HZ,
    span_chips: int = P.RRC_SPAN_CHIPS,
) -> BurstTiming:
    scale = 1.0 + clock_ppm * 1e-6
    t0 = t_start_s - (span_chips / chip_rate_hz) / scale
    t1 = t_start_s + ((n_chips - 1 + span_chips) / chip_rate_hz + grid_period_s) / scale
    first = int(math.floor(t0 * fs_hz))
    last = int(math.ceil(t1 * fs_hz))
    return BurstTiming(first, last - first + 1)


def checked_extent(
    chips: np.ndarray,
    *,
    fs_hz: float,
    fc_hz: float,
    t_start_s: float,
    grid_period_s: float,
    clock_ppm: float,
    chip_rate_hz: float,
) -> tuple[np.ndarray, BurstTiming]:
    """The chips as complex128 and the burst's extent, after the checks every modulator of the
    air interface makes on its arguments (ValueError naming the bad one)."""
    chips = np.asarray(chips, dtype=np.complex128)
    if chips.ndim != 1 or chips.size == 0:
        raise ValueError("chips must be a non-empty one-dimensional array")
    if not (fs_hz > 2 * (fc_hz + chip_rate_hz)):
        raise ValueError(f"fs_hz={fs_hz} too low for a carrier at {fc_hz} Hz")
    if abs(clock_ppm) > 1000:
        raise ValueError(f"clock_ppm={clock_ppm} is not a crystal offset")
    if not 0.0 < grid_period_s < 0.1:
        raise ValueError(f"grid_period_s={grid_period_s} is not a grid period")
    ext = burst_extent(
        chips.size,
        fs_hz=fs_hz,
        t_start_s=t_start_s,
        grid_period_s=grid_period_s,
        clock_ppm=clock_ppm,
        chip_rate_hz=chip_rate_hz,
    )
    return chips, ext


def modulate(
    chips: np.ndarray,
    *,
    fs_hz: float,
    fc_hz: float,
    t_start_s: float,
    grid_period_s: float,
    clock_ppm: float = 0.0,
    phase_rad: float = 0.0,
    amplitude: float = 1.0,
    chip_rate_hz: float = P.CHIP_RATE_HZ,
) -> tuple[int, np.ndarray]:
    """Passband burst on the receiver's sample grid.

    ``t_start_s`` is the true time (receiver clock, seconds from receiver sample 0) at which the
    centre of chip 0 is sent. Returns (index of the first sample, samples).
    """
    chips, ext = checked_extent(
        chips,
        fs_hz=fs_hz,
        fc_hz=fc_hz,
        t_start_s=t_start_s,
        grid_period_s=grid_period_s,
        clock_ppm=clock_ppm,
        chip_rate_hz=chip_rate_hz,
    )
    scale = 1.0 + clock_ppm * 1e-6
    samples = modulate_kernel(
        chips,
        ext.first_sample,
        ext.n_samples,
        float(fs_hz),
        float(t_start_s),
        float(chip_rate_hz),
        float(fc_hz),
        float(phase_rad),
        float(grid_period_s),
        scale,
        float(amplitude),
        P.RRC_SPAN_CHIPS,
        P.RRC_BETA,
    )
    return ext.first_sample, samples
