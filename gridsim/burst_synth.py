"""Fast burst synthesis for the simulator: the same waveform as :func:`dsp.tx.modulator.modulate`.

The reference modulator evaluates, at every receiver sample, the root-raised-cosine pulse of the
13 nearest chips (two sines, a cosine and a division each) for u(t) and again for u(t - T0), plus
the carrier: about 60 transcendental calls per sample, 0.2 s per 3.3-s burst, which made burst
modulation 2/3 of the simulator's time.

Here the pulse of chip ``n_c + j`` (j = -6..6) is, over the chip interval of the nearest chip
``n_c`` (f = tau - n_c in [-0.5, 0.5)), a smooth function of f; it is replaced by its Chebyshev
series in s = 2 f, truncated at degree ``_DEG`` (the pulse is entire: the coefficients fall
fast). The envelope over one chip interval is then one complex
Chebyshev series whose coefficients (13 chips x ``_DEG + 1``) are built once per chip. The samples
are handled in runs over which both nearest chips (of u(tau) and of u(tau - T0)) stay the same:
the four Clenshaw recurrences (degree 14: the pulse's coefficients beyond are under 2e-14) run
vectorised over a run's samples, and the carrier is its value at the run's first sample rotated by
a per-burst table of exp(j 2 pi fc k dtau), so there are no per-sample sines. The carrier of the
delayed copy is the direct one rotated by the constant 2 pi fc T0. The result is within ~1e-13 of
the burst's peak of a 40-digit evaluation; the reference loses up to ~1e-9 of the peak at samples
that fall near the pulse's removable singularities (t = 0, +-1 chip), so the two differ by that
much there (tests/test_gridsim_kernels.py), far below one LSB of 24-bit PCM at the levels bursts
have in a capture (-90 dB and under re the fundamental).
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

_DEG = 14  #: Chebyshev degree of each chip's pulse over one chip interval


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
    # the samples of one run (both nearest chips fixed) and the carrier's rotation over a run
    max_run = int(fs_hz / (chip_rate_hz * clock_scale)) + 2
    dtau = clock_scale / fs_hz
    rr = np.empty(max_run)
    ri = np.empty(max_run)
    for j in range(max_run):
        rr[j] = math.cos(two_pi_fc * dtau * j)
        ri[j] = math.sin(two_pi_fc * dtau * j)
    c0r = np.zeros(ncoef)
    c0i = np.zeros(ncoef)
    c1r = np.zeros(ncoef)
    c1i = np.zeros(ncoef)
    s0 = np.empty(max_run)
    s1 = np.empty(max_run)
    # Clenshaw's b_{p+1}, b_{p+2} of the four series (re, im of u0, of u1), one array each
    b0 = np.zeros(max_run)
    b1 = np.zeros(max_run)
    b2 = np.zeros(max_run)
    b3 = np.zeros(max_run)
    b4 = np.zeros(max_run)
    b5 = np.zeros(max_run)
    b6 = np.zeros(max_run)
    b7 = np.zeros(max_run)
    nc0 = -(1 << 62)
    nc1 = -(1 << 62)
    nz0 = False
    nz1 = False
    k = 0
    while k < n_samples:
        tau = ((first_sample + k) / fs_hz - t_start_s) * clock_scale
        m0 = int(math.floor(tau * chip_rate_hz + 0.5))
        m1 = int(math.floor((tau - grid_period_s) * chip_rate_hz + 0.5))
        kb = k + 1
        while kb < n_samples and kb - k < max_run:
            t2 = ((first_sample + kb) / fs_hz - t_start_s) * clock_scale
            if int(math.floor(t2 * chip_rate_hz + 0.5)) != m0:
                break
            if int(math.floor((t2 - grid_period_s) * chip_rate_hz + 0.5)) != m1:
                break
            kb += 1
        if m0 != nc0:
            nc0 = m0
            nz0 = _build(chips, m0, span, table, c0r, c0i)
        if m1 != nc1:
            nc1 = m1
            nz1 = _build(chips, m1, span, table, c1r, c1i)
        if nz0 or nz1:
            n_run = kb - k
            for j in range(n_run):
                t2 = ((first_sample + k + j) / fs_hz - t_start_s) * clock_scale
                s0[j] = 2.0 * (t2 * chip_rate_hz - m0)
                s1[j] = 2.0 * ((t2 - grid_period_s) * chip_rate_hz - m1)
            for j in range(n_run):
                b0[j] = 0.0
                b1[j] = 0.0
                b2[j] = 0.0
                b3[j] = 0.0
                b4[j] = 0.0
                b5[j] = 0.0
                b6[j] = 0.0
                b7[j] = 0.0
            # Clenshaw, vectorised over the run's samples: b_p = c_p + 2 s b_{p+1} - b_{p+2} written
            # over b_{p+2}, so the even and the odd arrays of each series alternate
            for p in range(deg, 0, -1):
                e0 = c0r[p]
                e1 = c0i[p]
                e2 = c1r[p]
                e3 = c1i[p]
                if (deg - p) % 2 == 0:
                    for j in range(n_run):
                        a0 = 2.0 * s0[j]
                        a1 = 2.0 * s1[j]
                        b1[j] = e0 + a0 * b0[j] - b1[j]
                        b3[j] = e1 + a0 * b2[j] - b3[j]
                        b5[j] = e2 + a1 * b4[j] - b5[j]
                        b7[j] = e3 + a1 * b6[j] - b7[j]
                else:
                    for j in range(n_run):
                        a0 = 2.0 * s0[j]
                        a1 = 2.0 * s1[j]
                        b0[j] = e0 + a0 * b1[j] - b0[j]
                        b2[j] = e1 + a0 * b3[j] - b2[j]
                        b4[j] = e2 + a1 * b5[j] - b4[j]
                        b6[j] = e3 + a1 * b7[j] - b6[j]
            if deg % 2 == 1:  # the last step wrote the odd arrays: b_1 there, b_2 in the even
                for j in range(n_run):
                    b0[j], b1[j] = b1[j], b0[j]
                    b2[j], b3[j] = b3[j], b2[j]
                    b4[j], b5[j] = b5[j], b4[j]
                    b6[j], b7[j] = b7[j], b6[j]
            ph = two_pi_fc * tau + phase_rad
            cs0 = math.cos(ph)
            sn0 = math.sin(ph)
            for j in range(n_run):
                cs = cs0 * rr[j] - sn0 * ri[j]  # the carrier at sample k + j, exactly rotated
                sn = sn0 * rr[j] + cs0 * ri[j]
                v = 0.0
                if nz0:
                    v += (c0r[0] + s0[j] * b0[j] - b1[j]) * cs - (c0i[0] + s0[j] * b2[j] - b3[j]) * sn
                if nz1:
                    # carrier at tau - T0: the direct one rotated by -2 pi fc T0
                    c1 = cs * cos_rot + sn * sin_rot
                    s1c = sn * cos_rot - cs * sin_rot
                    v -= (c1r[0] + s1[j] * b4[j] - b5[j]) * c1 - (c1i[0] + s1[j] * b6[j] - b7[j]) * s1c
                out[k + j] = amplitude * v
        k = kb
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
