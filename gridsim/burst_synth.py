"""Fast burst synthesis for the simulator: the same waveform as :func:`dsp.tx.modulator.modulate`.

The reference modulator evaluates, at every receiver sample, the root-raised-cosine pulse of the
13 nearest chips (two sines, a cosine and a division each) for u(t) and again for u(t - T0), plus
the carrier: about 60 transcendental calls per sample, 0.2 s per 3.3-s burst, which made burst
modulation 2/3 of the simulator's time.

Here the pulse of chip ``n_c + j`` (j = -6..6) is, over the chip interval of the nearest chip
``n_c`` (f = tau - n_c in [-0.5, 0.5)), a smooth function of f; it is replaced by its Chebyshev
series in s = 2 f, truncated at degree ``_DEG`` (the pulse is entire: the coefficients fall
fast). The envelope over one chip interval is then one complex
Chebyshev series whose coefficients (13 chips x ``_DEG + 1``) are built once per chip, and every
sample costs one Clenshaw evaluation per envelope (degree 16: the coefficients reach the
rounding floor there). The carrier of the delayed copy is the direct one rotated by the constant
2 pi fc T0. The result is within ~2e-14 of the burst's peak of a 40-digit evaluation; the
reference loses up to ~1e-9 of the peak at samples that fall near the pulse's removable
singularities (t = 0, +-1 chip), so the two differ by that much there
(tests/test_gridsim_kernels.py). At the levels bursts have in a capture (-90 dB and under re the
fundamental) that is far below one LSB of 24-bit PCM: captures regenerate byte for byte.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as C

from dsp.air import params as P
from dsp.numba_settings import jit
from dsp.tx import modulator
from dsp.tx.shaping import rrc

__all__ = ["modulate"]

_DEG = 16  #: Chebyshev degree of each chip's pulse over one chip interval


def _pulse_table(span: int, beta: float, deg: int) -> np.ndarray:
    """(2 span + 1, deg + 1): Chebyshev coefficients (in s = 2 f) of g(f - j), j = -span..span."""
    out = np.empty((2 * span + 1, deg + 1))
    nodes = np.cos(np.pi * (np.arange(deg + 1) + 0.5) / (deg + 1))  # Chebyshev points: interpolation
    for row, j in enumerate(range(-span, span + 1)):
        out[row] = C.chebfit(nodes, [rrc(float(x) / 2.0 - j, beta) for x in nodes], deg)
    return out


_TABLE = _pulse_table(P.RRC_SPAN_CHIPS, P.RRC_BETA, _DEG)


@jit
def _build(chips, n_c, span, table, cr, ci):
    """Coefficients (cr, ci) of the envelope sum_j chips[n_c + j] g(f - j) over chip n_c's interval."""
    cr[:] = 0.0
    ci[:] = 0.0
    n_chips = chips.shape[0]
    nz = False
    for j in range(-span, span + 1):
        n = n_c + j
        if n < 0 or n >= n_chips:
            continue
        a = chips[n]
        if a.real == 0.0 and a.imag == 0.0:
            continue
        nz = True
        row = table[j + span]
        for p in range(row.shape[0]):
            cr[p] += a.real * row[p]
            ci[p] += a.imag * row[p]
    return nz


@jit
def _synth_kernel(
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
    table,
):
    out = np.zeros(n_samples, dtype=np.float64)
    two_pi_fc = 2.0 * math.pi * fc_hz
    rot = two_pi_fc * grid_period_s
    cos_rot = math.cos(rot)
    sin_rot = math.sin(rot)
    ncoef = table.shape[1]
    deg = ncoef - 1
    # rows: re, im of u(tau), re, im of u(tau - T0); columns: Chebyshev order
    c = np.zeros((ncoef, 4))
    tmp_r = np.zeros(ncoef)
    tmp_i = np.zeros(ncoef)
    nc0 = -(1 << 62)
    nc1 = -(1 << 62)
    nz0 = False
    nz1 = False
    for k in range(n_samples):
        tau = ((first_sample + k) / fs_hz - t_start_s) * clock_scale
        x0 = tau * chip_rate_hz
        x1 = (tau - grid_period_s) * chip_rate_hz
        m0 = int(math.floor(x0 + 0.5))
        m1 = int(math.floor(x1 + 0.5))
        if m0 != nc0:
            nc0 = m0
            nz0 = _build(chips, m0, span, table, tmp_r, tmp_i)
            c[:, 0] = tmp_r
            c[:, 1] = tmp_i
        if m1 != nc1:
            nc1 = m1
            nz1 = _build(chips, m1, span, table, tmp_r, tmp_i)
            c[:, 2] = tmp_r
            c[:, 3] = tmp_i
        if not (nz0 or nz1):
            continue
        # Clenshaw, the four series interleaved (independent dependency chains)
        s0 = 2.0 * (x0 - m0)
        s1 = 2.0 * (x1 - m1)
        a0 = 2.0 * s0
        a1 = 2.0 * s1
        p1 = 0.0
        p2 = 0.0
        q1 = 0.0
        q2 = 0.0
        r1 = 0.0
        r2 = 0.0
        w1 = 0.0
        w2 = 0.0
        for p in range(deg, 0, -1):
            p0 = c[p, 0] + a0 * p1 - p2
            q0 = c[p, 1] + a0 * q1 - q2
            r0 = c[p, 2] + a1 * r1 - r2
            w0 = c[p, 3] + a1 * w1 - w2
            p2 = p1
            p1 = p0
            q2 = q1
            q1 = q0
            r2 = r1
            r1 = r0
            w2 = w1
            w1 = w0
        ph = two_pi_fc * tau + phase_rad
        cs = math.cos(ph)
        sn = math.sin(ph)
        v = 0.0
        if nz0:
            v += (c[0, 0] + s0 * p1 - p2) * cs - (c[0, 1] + s0 * q1 - q2) * sn
        if nz1:
            # carrier at tau - T0: the direct one rotated by -2 pi fc T0
            c1 = cs * cos_rot + sn * sin_rot
            s1c = sn * cos_rot - cs * sin_rot
            v -= (c[0, 2] + s1 * r1 - r2) * c1 - (c[0, 3] + s1 * w1 - w2) * s1c
        out[k] = amplitude * v
    return out


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
    """Drop-in for :func:`dsp.tx.modulator.modulate` (same arguments, checks and extent)."""
    chips, ext = modulator.checked_extent(
        chips,
        fs_hz=fs_hz,
        fc_hz=fc_hz,
        t_start_s=t_start_s,
        grid_period_s=grid_period_s,
        clock_ppm=clock_ppm,
        chip_rate_hz=chip_rate_hz,
    )
    samples = _synth_kernel(
        chips,
        ext.first_sample,
        ext.n_samples,
        float(fs_hz),
        float(t_start_s),
        float(chip_rate_hz),
        float(fc_hz),
        float(phase_rad),
        float(grid_period_s),
        1.0 + clock_ppm * 1e-6,
        float(amplitude),
        P.RRC_SPAN_CHIPS,
        _TABLE,
    )
    return ext.first_sample, samples
