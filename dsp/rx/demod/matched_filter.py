"""Chip matched filter of both paths: the RRC pulse evaluated at the true position of every chip.

Chip k of path p (p = 0 direct, 1 delayed by T0) is centred at input index tau0 + k spc + p T0;
its matched-filter output is the sum of the baseband samples within +-span chips of that centre
(``ceil``/``floor`` of the window's ends, :func:`chip_window`) weighted by the pulse there,
read from the table of :mod:`dsp.rx.demod.pulse` by linear interpolation. Two ways, the same
values to rounding:

* without a clock offset 12 chips span exactly 25 baseband samples (:func:`chip_period`), so the
  pulse is read for 12 chips only and each class of chips is filtered at once
  (:func:`mf_periodic_into`, on samples transposed by :func:`transpose_samples`);
* with one, chip by chip, the table position of each sample found once (:func:`mf_generic_into`).

Each chip's window is found from its own centre either way (its ends can fall on a sample:
:func:`near_sample`, :func:`edge_fix`, :func:`chip_direct`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dsp.numba_settings import jit
from dsp.rx.demod.pulse import DEC

#: A window end this close to a sample (in samples) may round either way from chip to chip.
_NEAR = 1e-6


@jit(math="sums")
def mf_kernel(r, grid, tau0, n_chips, pulse):
    """Matched-filter outputs z[p, k] of both paths p for chips k = 0..n_chips-1.

    ``r[i]`` is the (derotated) baseband sample at input index 32 (n_first + i) + c0 and chip 0
    is centred at input index ``tau0``; ``grid`` (:func:`~dsp.rx.demod.pulse.chip_grid`) gives
    n_first, c0, the chip spacing spc and the path delay, ``pulse``
    (:func:`~dsp.rx.demod.pulse.pulse_table`) the interpolated pulse (``td``, ``tab_res`` points
    per chip from -tab_span) and the window. With a ``period`` > 0 in the grid (chips k and
    k + period lie ``shift`` baseband samples apart: period spc = 32 shift, see
    :func:`chip_period`) the filter runs a class of chips at a time (:func:`mf_periodic_into`),
    else chip by chip (:func:`mf_generic_into`). Both give the same values to rounding."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    z = np.empty((2, n_chips), dtype=np.complex128)
    rr = r.real.copy()
    ri = r.imag.copy()
    if 0 < period < n_chips:
        x_base, n_m = sample_span(grid, tau0, tau0 + t0_samples, n_chips, span)
        rt = transpose_samples(rr, ri, x_base, shift, n_m)
        mf_periodic_into(rr, ri, rt, x_base, grid, tau0, n_chips, pulse, z)
    else:
        mf_generic_into(rr, ri, grid, tau0, n_chips, pulse, z)
    return z


@jit
def chip_window(tau, spc, span, c0, n_first):
    """First and last sample (index into r, unclipped) within +-span chips of input index tau."""
    lo = int(math.ceil((tau - span * spc - c0) / DEC)) - n_first
    hi = int(math.floor((tau + span * spc - c0) / DEC)) - n_first
    return lo, hi


@jit
def near_sample(tau, spc, span, c0):
    """Whether an end of the window of a chip at tau falls within _NEAR of a sample."""
    a = (tau - span * spc - c0) / DEC
    b = (tau + span * spc - c0) / DEC
    return abs(a - round(a)) < _NEAR or abs(b - round(b)) < _NEAR


@jit(math="sums")
def mf_generic_into(rr, ri, grid, tau0, n_chips, pulse, z):
    """:func:`mf_kernel` chip by chip, into ``z``. The table position of sample i for chip k is
    that for chip 0 less k tab_res (spc / spc = 1), so its whole part j[i] and fraction F[i] are
    found once per sample: chip k reads the table (``td``, interleaved with its slopes) at
    j[i] - k tab_res."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    nr = rr.shape[0]
    inv = 1.0 / spc
    du = DEC * inv * tab_res  # table step per baseband sample
    res2 = np.uint64(2 * tab_res)
    J = np.zeros(nr, dtype=np.uint64)  # 2 j[i]: the place in td
    F = np.zeros(nr)
    for p in range(2):
        tau = tau0 + p * t0_samples
        # table position of sample i: ((32 (n_first + i) + c0 - tau) / spc + tab_span) * tab_res
        u0 = ((DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
        first, _ = chip_window(tau, spc, span, c0, n_first)
        _, last = chip_window(tau + (n_chips - 1) * spc, spc, span, c0, n_first)
        for i in range(max(first, 0), min(last, nr - 1) + 1):
            u = u0 + i * du
            j = math.floor(u)
            J[i] = np.uint64(2 * j)
            F[i] = u - j
        for k in range(n_chips):
            lo, hi = chip_window(tau0 + k * spc + p * t0_samples, spc, span, c0, n_first)
            lo = max(lo, 0)
            n = max(min(hi, nr - 1) + 1 - lo, 0)
            off = np.uint64(k) * res2
            base = np.uint64(lo)
            # unsigned indices (no wraparound tests) and two sums (two chains of additions)
            ar0 = 0.0
            ai0 = 0.0
            ar1 = 0.0
            ai1 = 0.0
            for t in range(n // 2):
                i = base + np.uint64(2 * t)
                v = J[i] - off
                g = td[v] + td[v + np.uint64(1)] * F[i]
                ar0 += rr[i] * g
                ai0 += ri[i] * g
                i += np.uint64(1)
                v = J[i] - off
                g = td[v] + td[v + np.uint64(1)] * F[i]
                ar1 += rr[i] * g
                ai1 += ri[i] * g
            if n % 2:
                i = base + np.uint64(n - 1)
                v = J[i] - off
                g = td[v] + td[v + np.uint64(1)] * F[i]
                ar0 += rr[i] * g
                ai0 += ri[i] * g
            z[p, k] = complex(ar0 + ar1, ai0 + ai1)


@jit
def sample_span(grid, tau_lo, tau_hi, n_chips, span):
    """(x_base, n_m) of :func:`transpose_samples` covering every window (and two samples either
    side) of chips 0..n_chips-1 with chip 0 anywhere from tau_lo to tau_hi."""
    n_first, c0, spc, t0_samples, period, shift = grid
    first, _ = chip_window(tau_lo, spc, span, c0, n_first)
    _, last = chip_window(tau_hi + (n_chips - 1) * spc, spc, span, c0, n_first)
    x_base = first - 2
    return x_base, (last + 2 - x_base) // shift + 2


@jit
def transpose_samples(rr, ri, x_base, shift, n_m):
    """rt[rho, 2 m], rt[rho, 2 m + 1] = real and imaginary part of r[x_base + rho + shift m]
    (0 outside r): the samples ``shift`` apart in a row."""
    nr = rr.shape[0]
    rt = np.zeros((shift, 2 * n_m))
    for rho in range(shift):
        for m in range(n_m):
            x = x_base + rho + shift * m
            if 0 <= x < nr:
                rt[rho, 2 * m] = rr[x]
                rt[rho, 2 * m + 1] = ri[x]
    return rt


@jit
def class_pulse(tau, grid, inv, du, pulse, coef):
    """The window (lo, hi) of a chip at tau, and the pulse at samples lo - 1 .. hi + 1 into
    ``coef`` (0 beyond the table ``td``)."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    lo, hi = chip_window(tau, spc, span, c0, n_first)
    u0 = ((DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
    for t in range(1, hi - lo + 2):  # the window: inside the table
        u = u0 + (lo - 1 + t) * du
        j = np.uint64(u)
        v = np.uint64(2) * j
        coef[t] = td[v] + td[v + np.uint64(1)] * (u - j)
    for t in (0, hi - lo + 2):  # a sample beyond each end
        u = u0 + (lo - 1 + t) * du
        g = 0.0
        if 0.0 <= u < td.shape[0] // 2 - 1:
            j = int(u)
            g = td[2 * j] + td[2 * j + 1] * (u - j)
        coef[t] = g
    return lo, hi


@jit
def edge_fix(lo, hi, lo_n, hi_n, coef, rr, ri):
    """What to add to a chip's sum over its nominal window lo_n..hi_n (the pulse at lo_n - 1 ..
    hi_n + 1 in ``coef``) for its own window lo..hi: (real, imaginary, done); done is False when
    an end differs by more than a sample."""
    nr = rr.shape[0]
    dr = 0.0
    di = 0.0
    if abs(lo - lo_n) > 1 or abs(hi - hi_n) > 1:
        return dr, di, False
    if lo != lo_n:  # lo_n - 1: tap 0 added; lo_n + 1: tap 1 taken away
        t = 0 if lo < lo_n else 1
        x = lo_n - 1 + t
        if 0 <= x < nr:
            w = coef[t] if lo < lo_n else -coef[t]
            dr += w * rr[x]
            di += w * ri[x]
    if hi != hi_n:  # hi_n + 1: tap n + 1 added; hi_n - 1: tap n taken away
        t = hi_n - lo_n + 2 if hi > hi_n else hi_n - lo_n + 1
        x = lo_n - 1 + t
        if 0 <= x < nr:
            w = coef[t] if hi > hi_n else -coef[t]
            dr += w * rr[x]
            di += w * ri[x]
    return dr, di, True


@jit(math="sums")
def mf_periodic_into(rr, ri, rt, x_base, grid, tau0, n_chips, pulse, z):
    """:func:`mf_kernel` when period spc = 32 shift (to rounding), into ``z``: chip q + period L
    (L = 0, 1, ...) sees the pulse of chip q at samples moved by shift L, so the pulse is read
    from the table for chips 0..period-1 only, and each of its taps multiplies a row of the
    transposed samples ``rt`` (:func:`transpose_samples`) for all L at once. Where an end of
    chip q's window falls on a sample, the ends of the others of its class can round either way:
    their own windows are found and a tap added or taken away (:func:`edge_fix`), or the chip
    filtered directly."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    inv = 1.0 / spc
    du = DEC * inv * tab_res
    n_l = (n_chips + period - 1) // period
    coef = np.zeros(int(2.0 * span * spc / DEC) + 4)
    acc = np.empty(2 * n_l)  # real and imaginary parts, interleaved
    for p in range(2):
        for q in range(min(period, n_chips)):
            tau_q = tau0 + q * spc + p * t0_samples
            lo_q, hi_q = class_pulse(tau_q, grid, inv, du, pulse, coef)
            nl = (n_chips - q + period - 1) // period
            for m in range(2 * nl):
                acc[m] = 0.0
            for t in range(1, hi_q - lo_q + 2, 2):  # two taps at a time (half the passes over acc)
                x = lo_q - 1 + t - x_base
                m0 = 2 * (x // shift)
                row = rt[x % shift, m0 : m0 + 2 * nl]
                c = coef[t]
                if t + 1 <= hi_q - lo_q + 1:
                    m1 = 2 * ((x + 1) // shift)
                    row1 = rt[(x + 1) % shift, m1 : m1 + 2 * nl]
                    c1 = coef[t + 1]
                    for m in range(2 * nl):
                        acc[m] += c * row[m] + c1 * row1[m]
                else:
                    for m in range(2 * nl):
                        acc[m] += c * row[m]
            check = near_sample(tau_q, spc, span, c0)
            for L in range(nl):
                k = q + period * L
                ar = acc[2 * L]
                ai = acc[2 * L + 1]
                if check:
                    tau = tau0 + k * spc + p * t0_samples
                    lo, hi = chip_window(tau, spc, span, c0, n_first)
                    dr, di, done = edge_fix(lo, hi, lo_q + shift * L, hi_q + shift * L, coef, rr, ri)
                    ar += dr
                    ai += di
                    if not done:
                        ar, ai = chip_direct(rr, ri, grid, tau, pulse)
                z[p, k] = complex(ar, ai)


@jit
def chip_direct(rr, ri, grid, tau, pulse):
    """The matched filter of one chip at tau, tap by tap."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    nr = rr.shape[0]
    inv = 1.0 / spc
    du = DEC * inv * tab_res
    lo, hi = chip_window(tau, spc, span, c0, n_first)
    u0 = ((DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
    ar = 0.0
    ai = 0.0
    for i in range(max(lo, 0), min(hi, nr - 1) + 1):
        u = u0 + i * du
        j = int(u)
        g = td[2 * j] + td[2 * j + 1] * (u - j)
        ar += rr[i] * g
        ai += ri[i] * g
    return ar, ai


@functools.lru_cache(maxsize=64)
def chip_period(spc: float, max_period: int = 64) -> tuple[int, int]:
    """(period, shift): the fewest chips whose span is a whole number of baseband samples (to
    1e-11 of an input sample), and that number; (0, 0) if none up to ``max_period``. At 48 kHz
    without a clock offset: 12 chips = 25 baseband samples."""
    for k in range(1, max_period + 1):
        s = round(k * spc / DEC)
        if s > 0 and abs(k * spc - DEC * s) <= 1e-11:
            return k, int(s)
    return 0, 0
