"""Timing: the detector's start of a burst (a quarter of a baseband sample) refined on the preamble.

The preamble correlation (:func:`dsp.rx.demod.rake.preamble_metric` of the matched filter) is
evaluated with chip 0 at 13 offsets over +-0.3 chip around the detector's start, all in one
kernel (:func:`timing_metrics`), and its peak refined by parabolic interpolation
(:func:`refine_start`). The correlation is linear in the chips' matched-filter outputs, so
with a period of chips (see :mod:`dsp.rx.demod.matched_filter`) it is summed class by class of
chips from per-class sums of the samples that every offset shares.
"""

from __future__ import annotations

import numpy as np

from dsp.numba_settings import jit
from dsp.rx.demod.matched_filter import (
    chip_direct,
    chip_window,
    class_pulse,
    edge_fix,
    mf_generic_into,
    near_sample,
    sample_span,
    transpose_samples,
)
from dsp.rx.demod.pulse import DEC
from dsp.rx.demod.rake import preamble_metric

#: The offsets of the timing search from the detector's start, in chips.
OFFSETS_CHIPS = np.arange(-6, 7) * 0.05


@jit(math="sums")
def timing_metrics(r, grid, taus, n_chips, pulse, w2c, code, pre, sf):
    """:func:`~dsp.rx.demod.rake.preamble_metric` of the matched filter
    (:func:`~dsp.rx.demod.matched_filter.mf_kernel`, ``n_chips`` chips on ``grid`` with
    ``pulse``) with chip 0 at each of ``taus`` (ascending).

    The metric is |S_0 + w2c S_1|, S_p = sum_k a_k z[p, k] with the chip signs a_k = pre[k // sf]
    code[k]. With a ``period`` in the grid (see
    :func:`~dsp.rx.demod.matched_filter.mf_periodic_into`) chip q + period L of path p sees
    the pulse c of chip q at samples b + t + shift L, so S_p = sum_q sum_t c[t] B_q(b + t) with
    B_q(x) = sum_L a_(q + period L) r[x + shift L], found once for all taus (then the ends of
    windows that fall on a sample are checked chip by chip, as in the filter)."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    rr = r.real.copy()
    ri = r.imag.copy()
    n_o = taus.shape[0]
    out = np.empty(n_o)
    a = np.empty(n_chips)
    for k in range(n_chips):
        a[k] = pre[k // sf] * code[k]
    if not 0 < period < n_chips:
        z = np.empty((2, n_chips), dtype=np.complex128)
        for o in range(n_o):
            mf_generic_into(rr, ri, grid, taus[o], n_chips, pulse, z)
            out[o] = preamble_metric(z, w2c, code, pre, sf)
        return out
    inv = 1.0 / spc
    du = DEC * inv * tab_res
    x_base, n_m = sample_span(grid, taus[0], taus[-1] + t0_samples, n_chips, span)
    rt = transpose_samples(rr, ri, x_base, shift, n_m)
    n_x = n_m * shift - shift  # B for x_base .. x_base + n_x - 1, found where needed
    b_r = np.zeros((period, n_x))
    b_i = np.zeros((period, n_x))
    b_done = np.zeros((period, n_x), dtype=np.bool_)
    coef = np.zeros(int(2.0 * span * spc / DEC) + 4)
    for o in range(n_o):
        s_r = np.zeros(2)
        s_i = np.zeros(2)
        for p in range(2):
            for q in range(period):
                tau_q = taus[o] + q * spc + p * t0_samples
                lo_q, hi_q = class_pulse(tau_q, grid, inv, du, pulse, coef)
                nl = (n_chips - q + period - 1) // period
                for t in range(1, hi_q - lo_q + 2):
                    x = lo_q - 1 + t - x_base
                    if not b_done[q, x]:
                        m0 = 2 * (x // shift)
                        row = rt[x % shift, m0 : m0 + 2 * nl]
                        sr = 0.0
                        si = 0.0
                        for L in range(nl):
                            w = a[q + period * L]
                            sr += w * row[2 * L]
                            si += w * row[2 * L + 1]
                        b_r[q, x] = sr
                        b_i[q, x] = si
                        b_done[q, x] = True
                    s_r[p] += coef[t] * b_r[q, x]
                    s_i[p] += coef[t] * b_i[q, x]
                if near_sample(tau_q, spc, span, c0):
                    for L in range(nl):
                        k = q + period * L
                        tau = taus[o] + k * spc + p * t0_samples
                        lo, hi = chip_window(tau, spc, span, c0, n_first)
                        lo_n = lo_q + shift * L
                        hi_n = hi_q + shift * L
                        dr, di, done = edge_fix(lo, hi, lo_n, hi_n, coef, rr, ri)
                        if not done:  # the chip's own sum in place of its nominal one
                            nr_, ni_ = chip_direct(rr, ri, grid, tau, pulse)
                            dr = nr_
                            di = ni_
                            for t in range(1, hi_q - lo_q + 2):
                                x = lo_n - 1 + t
                                if 0 <= x < rr.shape[0]:
                                    dr -= coef[t] * rr[x]
                                    di -= coef[t] * ri[x]
                        s_r[p] += a[k] * dr
                        s_i[p] += a[k] * di
        out[o] = abs(complex(s_r[0], s_i[0]) + w2c * complex(s_r[1], s_i[1]))
    return out


def refine_start(r, grid, start_sample: float, n_chips: int, pulse, w2c: complex, code, pre, sf: int) -> float:
    """Input index of chip 0: the peak of the preamble metric (:func:`timing_metrics`) over
    ``start_sample`` + :data:`OFFSETS_CHIPS` chips (of the grid's spacing), refined by parabolic
    interpolation where the peak is inside."""
    n_first, c0, spc, t0_samples, period, shift = grid
    offs = OFFSETS_CHIPS * spc
    mets = timing_metrics(r, grid, float(start_sample) + offs, n_chips, pulse, w2c, code, pre, sf)
    i = int(np.argmax(mets))
    tau0 = start_sample + offs[i]
    if 0 < i < len(offs) - 1:
        a, b, c = mets[i - 1], mets[i], mets[i + 1]
        den = a - 2 * b + c
        if den < 0:
            tau0 += 0.5 * (a - c) / den * (offs[1] - offs[0])
    return tau0
