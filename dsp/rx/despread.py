"""Despreader and demodulator of one detected burst; decoding to a frame (deinterleave, depuncture,
soft Viterbi, CRC).

Signal model (docs/air-interface.md): at the channel's baseband the burst is
    r(t) = H e^{j 2 pi df t} [U(t') + w2 U(t' - T0)],   U(t) = sum_k a_k g(t/Tc - k),
t' = (1 + eps)(t - t_start) the transmitter's clock, w2 = -exp(-j 2 pi fc T0), and the carrier
offset df = eps fc because carrier and chips come from the same crystal.

Steps:
1. Timing: the detector's start (a quarter of a baseband sample) is refined by maximising the
   preamble correlation over +-0.3 chip (13 offsets, parabolic interpolation), all offsets in one
   kernel (:func:`timing_metrics`): the correlation is linear in the chips' matched-filter
   outputs, so it is summed class by class of chips (see step 2) from per-class sums of the
   samples that every offset shares.
2. Chip matched filter: the RRC is evaluated (from a 1/1024-chip table) at the true position of
   every chip for both paths (0 and T0) and correlated with the baseband samples; the two paths
   are combined with the known weight conj(w2) (a two-finger RAKE); chips are despread by the
   Gold code into symbols. Without a clock offset 12 chips span exactly 25 baseband samples, so
   the pulse is read for 12 chips only and each class of chips is filtered at once
   (:func:`mf_periodic_into`); with one, chip by chip, the table position of each sample found
   once (:func:`mf_generic_into`). Each chip's window is found from its own centre either way
   (its ends can fall on a sample).
3. Carrier: df from the DFT (16384 points) of the squared (BPSK) or fourth-power (QPSK)
   symbols of the whole burst, computed at the bins within the crystals' +-150 ppm only
   (:func:`dft_bins`), refined by parabolic interpolation; eps = df / fc sets the chip clock;
   the matched filter is run again with both. The phase is the preamble's, then tracked over
   the data by a smoothed decision-free estimate (squared symbols in windows of 48, unwrapped
   from the preamble phase).
4. Soft symbols -> deinterleave -> depuncture (one kernel, :func:`soft_values`) -> Viterbi -> CRC.
5. If the CRC fails, or to refine the figures of merit, a data-aided pass: the decided frame is
   re-encoded into chips (:func:`reencode`, once per frame), the self-interference that the T0
   path of each neighbouring chip puts on each finger is reconstructed and subtracted from the
   symbols (:func:`cancel_symbols`), the phase is re-estimated from the known symbols (as
   rotations: the moving sums over their magnitudes), and the frame decoded again (up to
   ``iterations`` passes).

Figures of merit per burst: symbol SNR and Eb/N0 from the data-aided residual, EVM, carrier
offset, clock offset, level relative to the fundamental, pre-FEC bit errors (re-encoding), the
detector statistic.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from dsp.fec import conv
from dsp.air import params as P
from dsp.numba_settings import jit, jit_enabled
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.air.codes import chip_code, preamble_bits
from dsp.air.crc import crc16
from dsp.air.interleave import permutation
from dsp.tx.shaping import rrc
from dsp.fec.viterbi import MAX_ABS_SOFT, decode_frame, viterbi_decode_kernel

TAB_RES = 1024  # table points per chip
IMPULSE_EXCESS = 3.0  # local power above this many times the burst's typical level is an impulse
TAB_SPAN = 7.0
SPAN = P.RRC_SPAN_CHIPS + 0.5


def _table() -> np.ndarray:
    x = np.arange(-TAB_SPAN * TAB_RES, TAB_SPAN * TAB_RES + 2) / TAB_RES
    return np.array([rrc(float(v), P.RRC_BETA) for v in x])


_RRC_TAB = _table()


@jit
def interleave_steps(tab):
    """td[2 j] = tab[j], td[2 j + 1] = tab[j + 1] - tab[j] (0 at the end): a table point and the
    slope after it in one cache line."""
    td = np.zeros(2 * tab.shape[0])
    for j in range(tab.shape[0]):
        td[2 * j] = tab[j]
        if j + 1 < tab.shape[0]:
            td[2 * j + 1] = tab[j + 1] - tab[j]
    return td


_RRC_TD = interleave_steps(_RRC_TAB)


def raised_cosine(x: np.ndarray, beta: float = P.RRC_BETA) -> np.ndarray:
    """Autocorrelation of the RRC pulse (in chips)."""
    x = np.asarray(x, dtype=np.float64)
    den = 1.0 - (2.0 * beta * x) ** 2
    out = np.sinc(x) * np.cos(np.pi * beta * x) / np.where(np.abs(den) < 1e-9, 1.0, den)
    sing = np.abs(den) < 1e-9
    out[sing] = np.pi / 4 * np.sinc(1.0 / (2 * beta))
    return out


#: Input samples per baseband sample (the channelizer's decimation, in the kernels' arithmetic).
_DEC = 32.0
#: A window end this close to a sample (in samples) may round either way from chip to chip.
_NEAR = 1e-6


@jit(math="sums")
def mf_kernel(r, n_first, c0, tau0, spc, t0_samples, n_chips, tab, tab_res, tab_span, span, period=0, shift=0):
    """Matched-filter outputs of both paths for chips 0..n_chips-1.

    ``r[i]`` is the (derotated) baseband sample at input index 32 (n_first + i) + c0; chip k of
    path p is centred at input index tau0 + k spc + p t0_samples (spc = input samples per chip in
    true time). Chip k takes the samples within +-span chips of its centre (``ceil``/``floor`` of
    the window's ends, :func:`_window`) weighted by the pulse, interpolated linearly in ``tab``
    (``tab_res`` points per chip from -tab_span). ``period`` > 0: chips k and k + period lie
    ``shift`` baseband samples apart (period spc = 32 shift, see :func:`chip_period`), and the
    filter runs a class of chips at a time (:func:`mf_periodic_into`); else chip by chip
    (:func:`mf_generic_into`). Both give the same values to rounding."""
    return mf_tables(r, n_first, c0, tau0, spc, t0_samples, n_chips, interleave_steps(tab), tab_res, tab_span, span,
                     period, shift)


@jit(math="sums")
def mf_tables(r, n_first, c0, tau0, spc, t0_samples, n_chips, td, tab_res, tab_span, span, period, shift):
    """:func:`mf_kernel` with the table as ``td`` (:func:`interleave_steps`)."""
    z = np.empty((2, n_chips), dtype=np.complex128)
    rr = r.real.copy()
    ri = r.imag.copy()
    if 0 < period < n_chips:
        x_base, n_m = _sample_span(n_first, c0, tau0, tau0 + t0_samples, spc, n_chips, span, shift)
        rt = transpose_samples(rr, ri, x_base, shift, n_m)
        mf_periodic_into(rr, ri, rt, x_base, n_first, c0, tau0, spc, t0_samples, n_chips, td, tab_res, tab_span,
                         span, period, shift, z)
    else:
        mf_generic_into(rr, ri, n_first, c0, tau0, spc, t0_samples, n_chips, td, tab_res, tab_span, span, z)
    return z


@jit
def _window(tau, spc, span, c0, n_first):
    """First and last sample (index into r, unclipped) within +-span chips of input index tau."""
    lo = int(math.ceil((tau - span * spc - c0) / _DEC)) - n_first
    hi = int(math.floor((tau + span * spc - c0) / _DEC)) - n_first
    return lo, hi


@jit
def _near_sample(tau, spc, span, c0):
    """Whether an end of the window of a chip at tau falls within _NEAR of a sample."""
    a = (tau - span * spc - c0) / _DEC
    b = (tau + span * spc - c0) / _DEC
    return abs(a - round(a)) < _NEAR or abs(b - round(b)) < _NEAR


@jit(math="sums")
def mf_generic_into(rr, ri, n_first, c0, tau0, spc, t0_samples, n_chips, td, tab_res, tab_span, span, z):
    """:func:`mf_kernel` chip by chip, into ``z``. The table position of sample i for chip k is
    that for chip 0 less k tab_res (spc / spc = 1), so its whole part j[i] and fraction F[i] are
    found once per sample: chip k reads the table (``td``, :func:`interleave_steps`) at
    j[i] - k tab_res."""
    nr = rr.shape[0]
    inv = 1.0 / spc
    du = _DEC * inv * tab_res  # table step per baseband sample
    res2 = np.uint64(2 * tab_res)
    J = np.zeros(nr, dtype=np.uint64)  # 2 j[i]: the place in td
    F = np.zeros(nr)
    for p in range(2):
        tau = tau0 + p * t0_samples
        # table position of sample i: ((32 (n_first + i) + c0 - tau) / spc + tab_span) * tab_res
        u0 = ((_DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
        first, _ = _window(tau, spc, span, c0, n_first)
        _, last = _window(tau + (n_chips - 1) * spc, spc, span, c0, n_first)
        for i in range(max(first, 0), min(last, nr - 1) + 1):
            u = u0 + i * du
            j = math.floor(u)
            J[i] = np.uint64(2 * j)
            F[i] = u - j
        for k in range(n_chips):
            lo, hi = _window(tau0 + k * spc + p * t0_samples, spc, span, c0, n_first)
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
def _sample_span(n_first, c0, tau_lo, tau_hi, spc, n_chips, span, shift):
    """(x_base, n_m) of :func:`transpose_samples` covering every window (and two samples either
    side) of chips 0..n_chips-1 with chip 0 anywhere from tau_lo to tau_hi."""
    first, _ = _window(tau_lo, spc, span, c0, n_first)
    _, last = _window(tau_hi + (n_chips - 1) * spc, spc, span, c0, n_first)
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
def _class_pulse(tau, spc, span, c0, n_first, inv, du, td, tab_res, tab_span, coef):
    """The window (lo, hi) of a chip at tau, and the pulse at samples lo - 1 .. hi + 1 into
    ``coef`` (0 beyond the table ``td``, :func:`interleave_steps`)."""
    lo, hi = _window(tau, spc, span, c0, n_first)
    u0 = ((_DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
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
def _edge_fix(lo, hi, lo_n, hi_n, coef, rr, ri):
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
def mf_periodic_into(rr, ri, rt, x_base, n_first, c0, tau0, spc, t0_samples, n_chips, td, tab_res, tab_span, span,
                     period, shift, z):
    """:func:`mf_kernel` when period spc = 32 shift (to rounding), into ``z``: chip q + period L
    (L = 0, 1, ...) sees the pulse of chip q at samples moved by shift L, so the pulse is read
    from the table for chips 0..period-1 only, and each of its taps multiplies a row of the
    transposed samples ``rt`` (:func:`transpose_samples`) for all L at once. Where an end of
    chip q's window falls on a sample, the ends of the others of its class can round either way:
    their own windows are found and a tap added or taken away (:func:`_edge_fix`), or the chip
    filtered directly."""
    nr = rr.shape[0]
    inv = 1.0 / spc
    du = _DEC * inv * tab_res
    n_l = (n_chips + period - 1) // period
    coef = np.zeros(int(2.0 * span * spc / _DEC) + 4)
    acc = np.empty(2 * n_l)  # real and imaginary parts, interleaved
    for p in range(2):
        for q in range(min(period, n_chips)):
            tau_q = tau0 + q * spc + p * t0_samples
            lo_q, hi_q = _class_pulse(tau_q, spc, span, c0, n_first, inv, du, td, tab_res, tab_span, coef)
            nl = (n_chips - q + period - 1) // period
            for m in range(2 * nl):
                acc[m] = 0.0
            for t in range(1, hi_q - lo_q + 2, 2):  # two taps at a time (half the passes over acc)
                x = lo_q - 1 + t - x_base
                m0 = 2 * (x // shift)
                row = rt[x % shift, m0:m0 + 2 * nl]
                c = coef[t]
                if t + 1 <= hi_q - lo_q + 1:
                    m1 = 2 * ((x + 1) // shift)
                    row1 = rt[(x + 1) % shift, m1:m1 + 2 * nl]
                    c1 = coef[t + 1]
                    for m in range(2 * nl):
                        acc[m] += c * row[m] + c1 * row1[m]
                else:
                    for m in range(2 * nl):
                        acc[m] += c * row[m]
            check = _near_sample(tau_q, spc, span, c0)
            for L in range(nl):
                k = q + period * L
                ar = acc[2 * L]
                ai = acc[2 * L + 1]
                if check:
                    tau = tau0 + k * spc + p * t0_samples
                    lo, hi = _window(tau, spc, span, c0, n_first)
                    dr, di, done = _edge_fix(lo, hi, lo_q + shift * L, hi_q + shift * L, coef, rr, ri)
                    ar += dr
                    ai += di
                    if not done:
                        ar, ai = _chip_direct(rr, ri, n_first, c0, tau, spc, td, tab_res, tab_span, span)
                z[p, k] = complex(ar, ai)


@jit
def _chip_direct(rr, ri, n_first, c0, tau, spc, td, tab_res, tab_span, span):
    """The matched filter of one chip at tau, tap by tap."""
    nr = rr.shape[0]
    inv = 1.0 / spc
    du = _DEC * inv * tab_res
    lo, hi = _window(tau, spc, span, c0, n_first)
    u0 = ((_DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
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
        s = round(k * spc / _DEC)
        if s > 0 and abs(k * spc - _DEC * s) <= 1e-11:
            return k, int(s)
    return 0, 0


@jit(math="sums")
def timing_metrics(r, n_first, c0, taus, spc, t0_samples, n_chips, td, tab_res, tab_span, span, period, shift, w2c,
                   code, pre, sf):
    """:func:`preamble_metric` of the matched filter (:func:`mf_kernel`, ``n_chips`` chips) with
    chip 0 at each of ``taus`` (ascending).

    The metric is |S_0 + w2c S_1|, S_p = sum_k a_k z[p, k] with the chip signs a_k = pre[k // sf]
    code[k]. With a ``period`` (see :func:`mf_periodic_into`) chip q + period L of path p sees
    the pulse c of chip q at samples b + t + shift L, so S_p = sum_q sum_t c[t] B_q(b + t) with
    B_q(x) = sum_L a_(q + period L) r[x + shift L], found once for all taus (then the ends of
    windows that fall on a sample are checked chip by chip, as in the filter)."""
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
            mf_generic_into(rr, ri, n_first, c0, taus[o], spc, t0_samples, n_chips, td, tab_res, tab_span, span, z)
            out[o] = preamble_metric(z, w2c, code, pre, sf)
        return out
    inv = 1.0 / spc
    du = _DEC * inv * tab_res
    x_base, n_m = _sample_span(n_first, c0, taus[0], taus[-1] + t0_samples, spc, n_chips, span, shift)
    rt = transpose_samples(rr, ri, x_base, shift, n_m)
    n_x = n_m * shift - shift  # B for x_base .. x_base + n_x - 1, found where needed
    b_r = np.zeros((period, n_x))
    b_i = np.zeros((period, n_x))
    b_done = np.zeros((period, n_x), dtype=np.bool_)
    coef = np.zeros(int(2.0 * span * spc / _DEC) + 4)
    for o in range(n_o):
        s_r = np.zeros(2)
        s_i = np.zeros(2)
        for p in range(2):
            for q in range(period):
                tau_q = taus[o] + q * spc + p * t0_samples
                lo_q, hi_q = _class_pulse(tau_q, spc, span, c0, n_first, inv, du, td, tab_res, tab_span, coef)
                nl = (n_chips - q + period - 1) // period
                for t in range(1, hi_q - lo_q + 2):
                    x = lo_q - 1 + t - x_base
                    if not b_done[q, x]:
                        m0 = 2 * (x // shift)
                        row = rt[x % shift, m0:m0 + 2 * nl]
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
                if _near_sample(tau_q, spc, span, c0):
                    for L in range(nl):
                        k = q + period * L
                        tau = taus[o] + k * spc + p * t0_samples
                        lo, hi = _window(tau, spc, span, c0, n_first)
                        lo_n = lo_q + shift * L
                        hi_n = hi_q + shift * L
                        dr, di, done = _edge_fix(lo, hi, lo_n, hi_n, coef, rr, ri)
                        if not done:  # the chip's own sum in place of its nominal one
                            nr_, ni_ = _chip_direct(rr, ri, n_first, c0, tau, spc, td, tab_res, tab_span, span)
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


@jit
def derotate(r, m_first, c0, tau0, df, fs):
    """``r * exp(-2j pi df (n - tau0) / fs)``, n = 32 (m_first + i) + c0 the input index of
    ``r[i]``: the rotation is evaluated at every 64th sample and carried to the 63 after it by
    the (evaluated) rotation over t samples (a product of two rotations: to rounding)."""
    n = r.shape[0]
    out = np.empty(n, dtype=np.complex128)
    w = -2.0 * math.pi * df
    step = np.empty(64, dtype=np.complex128)
    for t in range(64):
        a = (w * (_DEC * t)) / fs
        step[t] = complex(math.cos(a), math.sin(a))
    for i0 in range(0, n, 64):
        a = (w * (_DEC * (m_first + i0) + c0 - tau0)) / fs
        h = complex(math.cos(a), math.sin(a))
        for i in range(i0, min(n, i0 + 64)):
            out[i] = r[i] * (h * step[i - i0])
    return out


@jit
def despread(z, w2c, code, sf):
    """Symbols of the two-finger RAKE: ``Y[s] = sum_c (z[0, c] + w2c z[1, c]) code[c]`` over the
    ``sf`` chips of symbol s (in chip order)."""
    n = z.shape[1] // sf
    y = np.empty(n, dtype=np.complex128)
    for s in range(n):
        acc = 0.0j
        for c in range(s * sf, s * sf + sf):
            acc += (z[0, c] + w2c * z[1, c]) * code[c]
        y[s] = acc
    return y


@jit
def strip_modulation(y, pre, power):
    """``y ** power`` (``-y ** 4`` for QPSK), the preamble's known BPSK taken out first: every
    symbol then gives A^p exp(j p phi) (see ``BurstDemodulator._strip``)."""
    out = np.empty_like(y)
    for s in range(y.shape[0]):
        v = y[s] * pre[s] if s < pre.shape[0] else y[s]
        v2 = v * v
        if power == 2:
            out[s] = v2
        else:
            out[s] = v2 * v2 if s < pre.shape[0] else -(v2 * v2)
    return out


def dft_twiddles(nfft: int, k_first: int, n_bins: int, n: int, block: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The twiddles :func:`dft_bins` needs for bins k_first .. k_first + n_bins - 1 of an
    ``nfft``-point DFT of ``n`` samples: (w, w_blocks), w[m] = exp(-2j pi k / nfft) and
    w_blocks[b, m] = w[m]^(b block), k = k_first + m (each from its angle mod 2 pi)."""
    k = k_first + np.arange(n_bins)
    starts = np.arange(0, n, block)[:, None]
    return (np.exp(-2j * np.pi * (k % nfft) / nfft),
            np.ascontiguousarray(np.exp(-2j * np.pi * ((k * starts) % nfft) / nfft)))


@jit
def dft_bins(x, w, w_blocks, block):
    """Bins of the DFT of ``x`` zero-padded (``np.fft.fft(x, nfft)[k % nfft]``, to rounding) with
    the twiddles of :func:`dft_twiddles`: X[k] = sum_b w^(b block) sum_t x[b block + t] w^t, the
    inner sums by Horner's rule over ``block`` samples for all bins at once (|w| = 1: the
    rounding grows with the block's length, not the whole record's)."""
    n = x.shape[0]
    n_bins = w.shape[0]
    wr = w.real.copy()
    wi = w.imag.copy()
    acc_r = np.empty(n_bins)
    acc_i = np.empty(n_bins)
    out = np.zeros(n_bins, dtype=np.complex128)
    for b in range(w_blocks.shape[0]):
        b0 = b * block
        acc_r[:] = 0.0
        acc_i[:] = 0.0
        for t in range(min(n, b0 + block) - 1, b0 - 1, -1):
            xr = x[t].real
            xi = x[t].imag
            for m in range(n_bins):
                ar = acc_r[m]
                ai = acc_i[m]
                acc_r[m] = (ar * wr[m] - ai * wi[m]) + xr
                acc_i[m] = (ar * wi[m] + ai * wr[m]) + xi
        for m in range(n_bins):
            out[m] += complex(acc_r[m], acc_i[m]) * w_blocks[b, m]
    return out


@jit
def moving_sum(v, half):
    """out[i] = sum of v[i - half .. i + half] (within v), as ``np.convolve(v, ones(2 half + 1),
    "same")``, by a running sum (its rounding drift stays near 1e-16 of the sums)."""
    n = v.shape[0]
    out = np.empty_like(v)
    acc = 0.0 * v[0] if n > 0 else 0.0j
    for j in range(min(n, half + 1)):
        acc += v[j]
    for i in range(n):
        out[i] = acc
        if i + half + 1 < n:
            acc += v[i + half + 1]
        if i - half >= 0:
            acc -= v[i - half]
    return out


@jit
def unwrapped_angle(z):
    """``np.unwrap(np.angle(z))`` (the same steps: corrections where a step exceeds pi)."""
    n = z.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    prev = math.atan2(z[0].imag, z[0].real)
    out[0] = prev
    corr = 0.0
    for i in range(1, n):
        a = math.atan2(z[i].imag, z[i].real)
        dd = a - prev
        ddmod = (dd + math.pi) % (2.0 * math.pi) - math.pi
        if ddmod == -math.pi and dd > 0:
            ddmod = math.pi
        if abs(dd) >= math.pi:
            corr += ddmod - dd
        out[i] = a + corr
        prev = a
    return out


@jit
def phase_blind(y, pre, power, half):
    """Decision-free phase per symbol (``BurstDemodulator._phase_track`` without known symbols):
    the angle of the moving sum (``half`` symbols either side) of the modulation-stripped symbols
    (:func:`strip_modulation`), unwrapped, divided by ``power``, and moved by whole multiples of
    2 pi / power to the preamble's phase."""
    npre = pre.shape[0]
    acc = 0.0j
    for s in range(npre):
        acc += y[s] * pre[s]
    phi_pre = math.atan2(acc.imag, acc.real)
    ang = unwrapped_angle(moving_sum(strip_modulation(y, pre, power), half)) / power
    step = 2.0 * math.pi / power
    shift = np.rint((phi_pre - np.mean(ang[:npre])) / step) * step
    return ang + shift


@jit
def phase_known(y, known, half):
    """Data-aided phase per symbol: the unwrapped angle of the moving sum (``half`` symbols
    either side) of ``y conj(known)``."""
    return unwrapped_angle(moving_sum(y * np.conj(known), half))


@jit
def known_rotation(y, known, half):
    """(rot, phi0): ``exp(-1j phi)`` of the data-aided phase (:func:`phase_known`) as the
    conjugate of the moving sum over its magnitude (the unwrapping's multiples of 2 pi drop
    out; 1 where the sum is 0), and phi[0]."""
    ms = moving_sum(y * np.conj(known), half)
    rot = np.empty(ms.shape[0], dtype=np.complex128)
    for s in range(ms.shape[0]):
        h = math.hypot(ms[s].real, ms[s].imag)
        rot[s] = complex(ms[s].real / h, -ms[s].imag / h) if h > 0 else 1.0 + 0.0j
    return rot, math.atan2(ms[0].imag, ms[0].real)


@jit
def rotation(phi):
    """``exp(-1j phi)``."""
    out = np.empty(phi.shape[0], dtype=np.complex128)
    for s in range(phi.shape[0]):
        out[s] = complex(math.cos(phi[s]), -math.sin(phi[s]))
    return out


@jit
def fit_preamble(y, pre, rot):
    """(amplitude, noise variance) of the preamble symbols derotated by ``rot``: |mean(v)| and
    mean(|v - amplitude|^2), v = y pre rot over the preamble."""
    n = pre.shape[0]
    acc = 0.0j
    for s in range(n):
        acc += (y[s] * pre[s]) * rot[s]
    amp = abs(acc / n)
    nv = 0.0
    for s in range(n):
        e = (y[s] * pre[s]) * rot[s] - amp
        nv += e.real * e.real + e.imag * e.imag
    return amp, nv / n


@jit
def fit_known(y, known, rot):
    """(amplitude, noise variance) of all symbols against the known ones: mean(Re v) and
    mean(|v - amplitude|^2), v = y conj(known) rot."""
    n = y.shape[0]
    acc = 0.0
    for s in range(n):
        acc += ((y[s] * np.conj(known[s])) * rot[s]).real
    amp = acc / n
    nv = 0.0
    for s in range(n):
        e = (y[s] * np.conj(known[s])) * rot[s] - amp
        nv += e.real * e.real + e.imag * e.imag
    return amp, nv / n


@jit
def symbol_weights(r, m_first, c0, tau0, spc, t1_samples, n_sym, sf, excess):
    """Per-symbol reliability (``BurstDemodulator._weights``): ps = the baseband power |r|^2
    averaged over 5 samples (``np.convolve(p, ones(5) / 5, "same")``) around the symbol's second
    chip on both paths; 1 where ps <= excess x the median of ps, (excess median / ps)^2 above."""
    nr = r.shape[0]
    pw = np.empty(nr)
    for i in range(nr):
        pw[i] = r[i].real * r[i].real + r[i].imag * r[i].imag
    ps = np.empty(n_sym)
    for s in range(n_sym):
        centre = tau0 + (s * sf + 1.5) * spc
        acc = 0.0
        for off in (0.0, t1_samples):
            i = int(np.rint((centre + off - c0) / _DEC)) - m_first
            i = min(max(i, 0), nr - 1)
            loc = 0.0
            for j in range(max(i - 2, 0), min(i + 2, nr - 1) + 1):
                loc += pw[j] * 0.2
            acc += loc
        ps[s] = 0.5 * acc
    typ = np.median(ps)
    w = np.ones(n_sym)
    if typ <= 0:
        return w
    for s in range(n_sym):
        w[s] = min(1.0, excess * typ / max(ps[s], 1e-300)) ** 2
    return w


@jit
def reencode(bits, src, qpsk, pre, n_sym):
    """(coded, known): the information bits encoded at rate 1/2 with the zero tail
    (``conv.encode_frame``) and the burst's symbols: the preamble ``pre``, then the coded bits
    in air order (air bit k = coded[src[k]]: punctured, interleaved) mapped as
    ``frame.map_symbols`` does (QPSK: a 0 appended to an odd count)."""
    padded = np.zeros(bits.shape[0] + P.CONV_TAIL_BITS, dtype=np.uint8)
    padded[:bits.shape[0]] = bits
    coded, _ = conv.conv_encode_kernel(padded, 0, conv.G1, conv.G2)
    known = np.empty(n_sym, dtype=np.complex128)
    npre = pre.shape[0]
    for s in range(npre):
        known[s] = pre[s]
    n_air = src.shape[0]
    r2 = math.sqrt(2.0)
    for s in range(npre, n_sym):
        if qpsk:
            k = 2 * (s - npre)
            b0 = 1.0 - 2.0 * coded[src[k]]
            b1 = 1.0 - 2.0 * coded[src[k + 1]] if k + 1 < n_air else 1.0
            known[s] = complex(b0 / r2, b1 / r2)
        else:
            known[s] = 1.0 - 2.0 * coded[src[s - npre]]
    return coded, known


@jit
def soft_values(y, rot, w, scale, npre, qpsk, dst, n_full):
    """Soft coded bits of the data symbols, placed at ``full[dst[k]]`` (air order k ->
    deinterleaved, depunctured position; the punctured places stay 0.0): Re(d) scale (BPSK) or
    Re(d) scale / sqrt 2, Im(d) scale / sqrt 2 (QPSK), d = y rot w. Also whether every value is
    finite and within the decoder's range (``dsp.fec.viterbi.MAX_ABS_SOFT``)."""
    full = np.zeros(n_full)
    ok = True
    r2 = math.sqrt(2.0)
    for k in range(dst.shape[0]):
        s = npre + (k // 2 if qpsk else k)
        d = (y[s] * rot[s]) * w[s]
        if not qpsk:
            v = d.real * scale
        elif k % 2 == 0:
            v = d.real * scale / r2
        else:
            v = d.imag * scale / r2
        if not abs(v) <= MAX_ABS_SOFT:
            ok = False
        full[dst[k]] = v
    return full, ok


@jit
def preamble_metric(z, w2c, code, pre, sf):
    """|sum_s pre[s] Y[s]|, Y = the symbols despread (``sf`` chips each) from the fingers ``z``
    (see ``BurstDemodulator._combine``)."""
    acc = 0.0j
    for s in range(pre.shape[0]):
        y = 0.0j
        for c in range(sf * s, sf * s + sf):
            y += (z[0, c] + w2c * z[1, c]) * code[c]
        acc += y * pre[s]
    return abs(acc)


@jit
def cancel_symbols(y, known, code, h_amp, rot, sf, r1, r2, base, lo_lag, w2, w2c):
    """The symbols ``y`` (of both fingers, see :func:`despread`) without the self-interference
    of the T0 path (``_cancel``): chip k is known[k // sf] code[k], its gain h_amp
    conj(rot[k // sf]) (rot = exp(-1j phi)); finger 0 of chip k carries h w2 isi1[k], finger 1
    h isi2[k] (:func:`isi_kernel`), so symbol s loses sum_k code[k] (h w2 isi1[k] + w2c h isi2[k])."""
    n = code.shape[0]
    chips = np.empty(n, dtype=np.complex128)
    for k in range(n):
        chips[k] = known[k // sf] * code[k]
    isi1, isi2 = isi_kernel(chips, r1, r2, base, lo_lag)
    out = y.copy()
    for s in range(y.shape[0]):
        h = h_amp * np.conj(rot[s])
        hw = h * w2
        acc = 0.0j
        for k in range(s * sf, s * sf + sf):
            acc += (hw * isi1[k] + w2c * (h * isi2[k])) * code[k]
        out[s] -= acc
    return out


@jit
def isi_kernel(chips, r1, r2, base, lo_lag):
    """Self-interference of the T0 path on both fingers (see :meth:`BurstDemodulator._cancel`):
    isi1[k] = sum_l r1[l] chips[k - sh], isi2[k] = sum_l r2[l] chips[k + sh], sh = base + lo_lag + l,
    for 0 < sh < n and the chip inside the burst (summed in the order of l; real and imaginary
    parts apart, the weights are real). Each lag is added to every chip at once (a loop over k
    that vectorises; the sums per chip are the same, in the same order)."""
    n = chips.shape[0]
    c = np.empty(2 * n)  # real and imaginary parts, interleaved
    for k in range(n):
        c[2 * k] = chips[k].real
        c[2 * k + 1] = chips[k].imag
    a = np.zeros(2 * n)
    b = np.zeros(2 * n)
    for l in range(r1.shape[0]):
        sh = base + lo_lag + l
        if 0 < sh < n:
            _axpy(a[2 * sh:], r1[l], c[:2 * (n - sh)])  # k >= sh: a[k] += r1[l] chips[k - sh]
    for l in range(r2.shape[0]):
        sh = base + lo_lag + l
        if 0 < sh < n:
            _axpy(b[:2 * (n - sh)], r2[l], c[2 * sh:])  # k < n - sh: b[k] += r2[l] chips[k + sh]
    isi1 = np.empty(n, dtype=np.complex128)
    isi2 = np.empty(n, dtype=np.complex128)
    for k in range(n):
        isi1[k] = complex(a[2 * k], a[2 * k + 1])
        isi2[k] = complex(b[2 * k], b[2 * k + 1])
    return isi1, isi2


@jit
def _axpy(y, a, x):
    """y[i] += a x[i]."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@jit
def isi_taps(t0c, n_lags, beta):
    """The weights of :func:`isi_kernel` for a path offset of t0c chips: (r1, r2, base, lo_lag)
    with base = round(t0c), lags lo_lag .. -lo_lag (``n_lags`` of them), r1[l] = R(lag - frac),
    r2[l] = R(frac + base - (base + lag)), frac = t0c - base, R = :func:`raised_cosine`."""
    base = round(t0c)
    frac = t0c - base
    lo_lag = -(n_lags // 2)
    r1 = np.empty(n_lags)
    r2 = np.empty(n_lags)
    for l in range(n_lags):
        lag = lo_lag + l
        r1[l] = _raised_cosine_at(lag - frac, beta)
        r2[l] = _raised_cosine_at(frac + base - (base + lag), beta)
    return r1, r2, base, lo_lag


@jit
def _raised_cosine_at(x, beta):
    """:func:`raised_cosine` at one point (the same steps)."""
    den = 1.0 - (2.0 * beta * x) ** 2
    if abs(den) < 1e-9:
        return math.pi / 4 * _sinc(1.0 / (2 * beta))
    return _sinc(x) * math.cos(math.pi * beta * x) / den


@jit
def _sinc(x):
    """``np.sinc``: sin(pi x) / (pi x), with 1e-20 for x = 0."""
    y = math.pi * (1.0e-20 if x == 0 else x)
    return math.sin(y) / y


@dataclass
class BurstResult:
    """One decoded (or failed) burst of one input: the record that flows to the receiver."""

    channel: int
    code: int
    start_sample: float  # refined input index of the centre of chip 0
    crc_ok: bool
    frame: bytes | None
    info_bits: np.ndarray | None
    snr_db: float
    ebn0_db: float
    evm_pct: float
    amplitude: float  # symbol amplitude at the despreader output
    level_db: float  # burst RMS relative to the input's fundamental RMS (nan if unknown)
    carrier_offset_hz: float
    clock_offset_ppm: float
    phase_rad: float
    pre_fec_bit_errors: int
    corr_peak: float
    iterations: int
    symbols: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, complex))


_warmed_up = False  # whether a burst has been demodulated in this process (see BurstDemodulator._warm_up)


class BurstDemodulator:
    """Demodulates bursts of one channel from its baseband (see the module docstring)."""

    def __init__(self, channel: P.Channel, fs_hz: float = 48000.0, iterations: int = 3) -> None:
        self.channel = channel
        self.fs_hz = fs_hz
        self.iterations = iterations
        self.n_sym = P.burst_symbols(channel.modulation, channel.fec)
        self.n_chips = self.n_sym * P.CHIPS_PER_SYMBOL
        self.code_cache = {k: np.asarray(chip_code(channel.index, k))[np.arange(self.n_chips) % P.CODE_LENGTH]
                           for k in range(P.CODES_PER_CHANNEL)}
        self.pre = 1.0 - 2.0 * preamble_bits().astype(float)
        self.n_coded = P.coded_bits(channel.fec)
        self.c0 = Channelizer.input_index(0)  # input index of baseband sample 0
        self.power = 2 if channel.modulation == P.Modulation.BPSK else 4
        # the carrier search's frequency grid, and the bins beyond the crystals' +-150 ppm
        fr = np.fft.fftfreq(1 << 14, d=1.0 / P.SYMBOL_RATE_HZ)
        self._carrier_grid = (fr, np.abs(fr) > self.power * channel.fc_hz * 150e-6)
        # the bins within: -k_neg .. k_pos (the only ones the search computes)
        inside = np.flatnonzero(~self._carrier_grid[1])
        self._k_pos = int(np.sum(inside < fr.size // 2)) - 1
        self._k_neg = inside.size - 1 - self._k_pos
        if inside.size and not np.array_equal(inside, np.r_[0:self._k_pos + 1, fr.size - self._k_neg:fr.size]):
            raise ValueError("carrier search: the bins within +-150 ppm are not one band around 0")
        self._carrier_tw = dft_twiddles(fr.size, -self._k_neg, self._k_neg + self._k_pos + 1, self.n_sym)
        # soft value k (air order) -> its place among the rate-1/2 coded bits (deinterleaved, depunctured)
        n_full = 2 * (P.FRAME_BITS + P.CONV_TAIL_BITS)
        kept = conv.puncture(np.arange(n_full), channel.fec)
        self._soft_dst = np.ascontiguousarray(kept[permutation(self.n_coded)], dtype=np.int64)
        self._isi = None  # (t0_s, weights of _cancel) of the latest burst
        if not _warmed_up:
            self._warm_up()

    def _warm_up(self) -> None:
        """Demodulate a burst of noise, once per process: every kernel is then loaded from
        numba's cache (about 5 ms each, 0.1 s in all) before the first real burst rather than
        during it. Not without JIT (it would take seconds)."""
        global _warmed_up
        _warmed_up = True
        if jit_enabled():
            n = int(self.span_samples(60.0) / DECIMATION) + 64
            r = np.random.default_rng(0).standard_normal(2 * n).view(np.complex128)
            self.demodulate(r, 0, float(self.c0) + 600.0, 0, 60.0)
            self._isi = None

    # -- geometry ------------------------------------------------------------------------------
    def span_samples(self, grid_hz: float) -> int:
        """How many input samples after chip 0 a burst needs (for buffering)."""
        spc = self.fs_hz / P.CHIP_RATE_HZ * 1.0002
        return int((self.n_chips + SPAN + 2) * spc + self.fs_hz / grid_hz * 1.0002) + 64

    def _mf(self, r, m_first, tau0, eps, t0_s, df, n_chips):
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        r = np.asarray(r, dtype=np.complex128)
        if df != 0.0:
            r = derotate(r, int(m_first), float(self.c0), float(tau0), float(df), float(self.fs_hz))
        period, shift = chip_period(spc) if eps == 0.0 else (0, 0)
        return mf_tables(r, int(m_first), float(self.c0), float(tau0), spc, t0_s * self.fs_hz / (1.0 + eps),
                         int(n_chips), _RRC_TD, float(TAB_RES), TAB_SPAN, SPAN, period, shift)

    def _combine(self, z, t0_s, code):
        w2 = -np.exp(-2j * np.pi * self.channel.fc_hz * t0_s)
        return despread(z, complex(np.conj(w2)), self.code_cache[code], P.CHIPS_PER_SYMBOL), w2

    # -- main ----------------------------------------------------------------------------------
    def demodulate(self, r: np.ndarray, m_first: int, start_sample: float, code: int, grid_hz: float,
                   corr_peak: float = 0.0, fundamental_rms: float = float("nan")) -> BurstResult:
        """``r``: baseband of this channel, ``r[0]`` = baseband index ``m_first``."""
        t0_s = 1.0 / grid_hz
        r = np.asarray(r, dtype=np.complex128)
        # 1. timing refinement on the preamble
        n_pre = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
        spc0 = self.fs_hz / P.CHIP_RATE_HZ
        offs = np.arange(-6, 7) * 0.05 * spc0
        w2c = complex(np.conj(-np.exp(-2j * np.pi * self.channel.fc_hz * t0_s)))
        period, shift = chip_period(spc0)
        mets = timing_metrics(r, int(m_first), float(self.c0), float(start_sample) + offs, spc0, t0_s * self.fs_hz,
                              n_pre, _RRC_TD, float(TAB_RES), TAB_SPAN, SPAN, period, shift, w2c,
                              self.code_cache[code], self.pre, P.CHIPS_PER_SYMBOL)
        i = int(np.argmax(mets))
        tau0 = start_sample + offs[i]
        if 0 < i < len(offs) - 1:
            a, b, c = mets[i - 1], mets[i], mets[i + 1]
            den = a - 2 * b + c
            if den < 0:
                tau0 += 0.5 * (a - c) / den * (offs[1] - offs[0])
        # 2./3. carrier offset from the whole burst (eps = 0 first)
        z = self._mf(r, m_first, tau0, 0.0, t0_s, 0.0, self.n_chips)
        Y, _ = self._combine(z, t0_s, code)
        df = self._carrier(Y)
        eps = df / self.channel.fc_hz
        return self._finish(r, m_first, tau0, eps, df, t0_s, code, corr_peak, fundamental_rms)

    def _carrier(self, Y: np.ndarray) -> float:
        """Carrier offset: the peak of |DFT| (16384 points) of the modulation-stripped symbols
        within the crystals' +-150 ppm, refined by parabolic interpolation."""
        nfft = 1 << 14
        kn, kp = self._k_neg, self._k_pos
        # |X| of the bins -kn-1 .. kp+1 (the two outside are zero, as beyond the band)
        F = np.zeros(kn + kp + 3)
        F[1:-1] = np.abs(dft_bins(self._strip(Y), *self._carrier_tw, 32))
        k = int(np.argmax(np.concatenate([F[kn + 1:-1], F[1:kn + 1]])))  # in the FFT's order: 0..kp, -kn..-1
        if k > kp:
            k -= kp + 1 + kn
        a, b, c = F[k + kn], F[k + kn + 1], F[k + kn + 2]
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        return (self._carrier_grid[0][k % nfft] + delta * P.SYMBOL_RATE_HZ / nfft) / self.power

    def _strip(self, Y: np.ndarray) -> np.ndarray:
        """Modulation removed by a power law: BPSK^2 = 1 and ((+-1 +-j)/sqrt2)^4 = -1, so data
        symbols give +A^p exp(j p phi) like the known preamble symbols (BPSK, whatever the mode)."""
        return strip_modulation(Y, self.pre, self.power)

    def _phase_track(self, Y: np.ndarray, known: np.ndarray | None) -> np.ndarray:
        """Phase per symbol. ``known``: the symbols if known (data-aided), else None."""
        if known is not None:
            return phase_known(Y, np.asarray(known, dtype=np.complex128), 24)
        return phase_blind(Y, self.pre, self.power, 48)

    def _weights(self, r, m_first, tau0, eps, t0_s):
        """Per-symbol reliability: 1 where the baseband power around the symbol (both paths) is near
        the burst's typical level, (3 p_typ / p_local)^2 where an impulse raised it further (its soft
        values then count for less instead of misleading the decoder)."""
        # only a clear excess (an impulse) is down-weighted: noise alone rarely triples the power
        # of 5 neighbouring samples, and weighting its ordinary fluctuations would cost sensitivity
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        return symbol_weights(r, int(m_first), float(self.c0), float(tau0), spc, t0_s * self.fs_hz / (1 + eps),
                              self.n_sym, P.CHIPS_PER_SYMBOL, IMPULSE_EXCESS)

    def _soft(self, Y, rot, amp, noise_var, w):
        """Soft coded bits (deinterleaved, depunctured) of the symbols derotated by ``rot``."""
        full, ok = soft_values(Y, rot, w, 2.0 * amp / max(noise_var, 1e-300), P.PREAMBLE_SYMBOLS,
                               self.channel.modulation != P.Modulation.BPSK, self._soft_dst,
                               2 * (P.FRAME_BITS + P.CONV_TAIL_BITS))
        if not ok:
            decode_frame(full, P.FRAME_BITS)  # raises what the decoder says of such values
        return full

    def _decode(self, full):
        bits = viterbi_decode_kernel(full, P.FRAME_BITS + P.CONV_TAIL_BITS)[:P.FRAME_BITS]
        frame = np.packbits(bits).tobytes()  # frame_from_bits (the decoder's bits are 0/1)
        ok = crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")
        return bits, frame, ok, full

    def _known_symbols(self, frame: bytes) -> np.ndarray:
        from dsp.tx.burst import burst_symbols
        return burst_symbols(frame, self.channel.modulation, self.channel.fec)

    def _reencode(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coded bits at rate 1/2, burst symbols) of decoded information bits: what
        ``reencode_errors`` and ``_known_symbols`` compute."""
        return reencode(bits, self._soft_dst, self.channel.modulation != P.Modulation.BPSK, self.pre, self.n_sym)

    def _finish(self, r, m_first, tau0, eps, df, t0_s, code, corr_peak, fund_rms) -> BurstResult:
        r = np.asarray(r)
        Y, w2 = self._combine(self._mf(r, m_first, tau0, eps, t0_s, df, self.n_chips), t0_s, code)
        phi = self._phase_track(Y, None)
        rot = rotation(phi)
        amp, noise_var = fit_preamble(Y, self.pre, rot)
        wts = self._weights(r, m_first, tau0, eps, t0_s)
        bits, frame, ok, full = self._decode(self._soft(Y, rot, amp, noise_var, wts))
        reenc = {}  # frame -> (coded bits, known symbols)

        def known_of(bits, frame):
            if frame not in reenc:
                reenc[frame] = self._reencode(bits)
            return reenc[frame]

        it = 1
        best = (bits, frame, ok, full, Y, phi[0], rot)
        while it < self.iterations + 1 and (not ok or it == 1):
            # data-aided pass: known symbols from the re-encoded decision, self-interference removed
            _, known = known_of(bits, frame)
            rot_k, _ = known_rotation(Y, known, 24)  # the phase of _phase_track(Y, known)
            amp_k, _ = fit_known(Y, known, rot_k)
            Y2 = self._cancel(Y, known, code, amp_k, rot_k, t0_s, w2)
            rot2, phi2 = known_rotation(Y2, known, 24)
            amp2, nv2 = fit_known(Y2, known, rot2)
            bits2, frame2, ok2, full2 = self._decode(self._soft(Y2, rot2, amp2, nv2, wts))
            it += 1
            if ok2 or not ok:
                best = (bits2, frame2, ok2, full2, Y2, phi2, rot2)
                bits, frame, ok = bits2, frame2, ok2
            if ok and it > 2:
                break
        bits, frame, ok, full, Yf, phif, rotf = best
        # figures of merit from the final decision (exact when the CRC passed)
        coded, known = known_of(bits, frame)
        amp_f, nv = fit_known(Yf, known, rotf)
        snr = amp_f**2 / nv if nv > 0 and amp_f > 0 else 0.0
        snr_db = 10 * math.log10(snr) if snr > 0 else -99.0
        n_data = self.n_sym - P.PREAMBLE_SYMBOLS
        ebn0_db = snr_db + 10 * math.log10(n_data / P.FRAME_BITS) if snr > 0 else -99.0
        evm = 100.0 * math.sqrt(nv) / amp_f if amp_f > 0 else 999.0
        # despread amplitude = burst RMS x 4 chips x (baseband samples per chip) (calibrated in tests)
        level = amp_f / (P.CHIPS_PER_SYMBOL * (self.fs_hz / DECIMATION) / P.CHIP_RATE_HZ)
        level_db = 20 * math.log10(level / fund_rms) if fund_rms > 0 and level > 0 else float("nan")
        # pre-FEC bit errors: the non-erased soft values whose sign disagrees with the re-encoded bits
        pre_err = np.count_nonzero((full > 0) & (coded == 1)) + np.count_nonzero((full < 0) & (coded == 0))
        return BurstResult(self.channel.index, code, float(tau0), bool(ok), frame if ok else None, bits if ok else None,
                           snr_db, ebn0_db, evm, amp_f, level_db, float(df), float(eps * 1e6), float(phif),
                           int(pre_err), float(corr_peak), it, Yf)

    def _cancel(self, Y, known, code, amp, rot, t0_s, w2):
        """Remove from the symbols what the other path of the (decided) chips puts on each finger."""
        isi = self._isi
        if isi is None or isi[0] != t0_s:
            # finger 0 at chip k sees w2 * sum_j a_j R(k - j - t0c): j = k - base - l, weight
            # R((k - j) - t0c) with k - j = base + l; finger 1 at chip k (+T0) sees
            # sum_j a_j R(k + t0c - j): j = k + base + l, weight R(k + t0c - j), j - k = base + l
            isi = self._isi = (t0_s, *isi_taps(t0_s * P.CHIP_RATE_HZ, 17, P.RRC_BETA))  # t0 in chips (tx time)
        _, R1, R2, base, lo_lag = isi
        # per-chip complex gain at the matched-filter output: Y = 2 * 4 * H d  ->  H = amp/8 e^{j phi}
        return cancel_symbols(Y, known, self.code_cache[code], amp / (2.0 * P.CHIPS_PER_SYMBOL), rot,
                              P.CHIPS_PER_SYMBOL, R1, R2, base, lo_lag, complex(w2), complex(np.conj(w2)))


@dataclass
class KnownMeasurement:
    """A known burst measured on one input (data-aided: the chips are known from a decoded copy)."""

    amplitude: float  # despread amplitude (same scale as BurstResult.amplitude)
    phase_rad: float
    snr_db: float  # symbol SNR
    level_db: float  # burst RMS relative to this input's fundamental RMS
    band_amplitudes_db: list[tuple[float, float]]  # (freq_hz, level dB re fundamental) across the channel


def measure_known(demod: BurstDemodulator, r: np.ndarray, m_first: int, start_sample: float, code: int,
                  grid_hz: float, frame: bytes, eps: float, fundamental_rms: float,
                  band_offsets_hz: tuple[float, ...] = (-300.0, -150.0, 0.0, 150.0, 300.0)) -> KnownMeasurement:
    """Level, phase and SNR of a known burst on an input where it may be far below detection.

    Timing and clock come from the decoded copy (one transmission, one arrival time on every
    input); the despread symbols are correlated with the known ones. Band amplitudes: the
    received baseband is correlated with the reconstructed noise-free burst within +-60 Hz of
    each offset (a cross-spectral estimate of the path's gain across the channel).
    """
    t0_s = 1.0 / grid_hz
    df = eps * demod.channel.fc_hz
    z = demod._mf(r, m_first, start_sample, eps, t0_s, df, demod.n_chips)
    Y, w2 = demod._combine(z, t0_s, code)
    known = demod._known_symbols(frame)
    phi = demod._phase_track(Y, known)
    v = Y * np.conj(known) * np.exp(-1j * phi)
    # symbols touched by impulse blanking (exact zeros at baseband) would bias the level low
    clean = _clean_symbols(demod, r, m_first, start_sample, eps, t0_s)
    if clean.sum() >= 32:
        v = v[clean]
    amp = float(np.mean(v.real))
    phase = float(np.angle(np.sum(Y * np.conj(known))))
    resid = v - amp
    nv = float(np.mean(np.abs(resid) ** 2))
    snr = amp**2 / nv if nv > 0 else float("inf")
    scale = P.CHIPS_PER_SYMBOL * (demod.fs_hz / DECIMATION) / P.CHIP_RATE_HZ
    lvl = 20 * math.log10(max(amp / scale, 1e-30) / fundamental_rms) if fundamental_rms > 0 else float("nan")
    # reconstructed baseband burst (unit chips) for the band estimate
    fs_bb = demod.fs_hz / DECIMATION
    chips = known.repeat(P.CHIPS_PER_SYMBOL) * demod.code_cache[code]
    ref = synth_kernel(chips, int(m_first), r.size, float(demod.c0), float(start_sample),
                       demod.fs_hz / P.CHIP_RATE_HZ / (1 + eps), t0_s * demod.fs_hz / (1 + eps), w2,
                       _RRC_TAB, float(TAB_RES), TAB_SPAN, SPAN)
    n = 32.0 * (m_first + np.arange(r.size)) + demod.c0
    ref = ref * np.exp(2j * np.pi * df * (n - start_sample) / demod.fs_hz)
    R = np.fft.fft(r)
    F = np.fft.fft(ref)
    fr = np.fft.fftfreq(r.size, 1 / fs_bb)
    bands = []
    for off in band_offsets_hz:
        m = np.abs(fr - off) <= 60.0
        den = float(np.sum(np.abs(F[m]) ** 2))
        # received amplitude per unit reference; x2 undoes the real -> complex mixing (cos = e/2)
        g = 2.0 * abs(np.sum(R[m] * np.conj(F[m]))) / den if den > 0 else 0.0
        b = 20 * math.log10(max(g, 1e-30) / fundamental_rms) if fundamental_rms > 0 else float("nan")
        bands.append((demod.channel.fc_hz + off, b))
    return KnownMeasurement(amp, phase, 10 * math.log10(snr) if snr > 0 else -99.0, lvl, bands)


def _clean_symbols(demod: BurstDemodulator, r: np.ndarray, m_first: int, tau0: float, eps: float,
                   t0_s: float) -> np.ndarray:
    """True for symbols whose chips (both paths, +-7 chips) saw no blanked baseband sample."""
    zero = (r == 0).astype(np.int64)
    cz = np.concatenate([[0], np.cumsum(zero)])
    spc = demod.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
    ok = np.ones(demod.n_sym, bool)
    for off in (0.0, t0_s * demod.fs_hz / (1.0 + eps)):
        lo = tau0 + off + (np.arange(demod.n_sym) * P.CHIPS_PER_SYMBOL - 7) * spc
        hi = tau0 + off + (np.arange(demod.n_sym) * P.CHIPS_PER_SYMBOL + P.CHIPS_PER_SYMBOL + 7) * spc
        a = np.clip(((lo - demod.c0) / DECIMATION).astype(int) - m_first, 0, r.size)
        b = np.clip(((hi - demod.c0) / DECIMATION).astype(int) + 1 - m_first, 0, r.size)
        ok &= (cz[b] - cz[a]) == 0
    return ok


@jit
def synth_kernel(chips, m_first, n_out, c0, tau0, spc, t0_samples, w2, tab, tab_res, tab_span, span):
    """Noise-free baseband of both paths at baseband samples m_first .. m_first + n_out - 1."""
    out = np.zeros(n_out, dtype=np.complex128)
    for k in range(chips.shape[0]):
        for p in range(2):
            tau = tau0 + k * spc + p * t0_samples
            w = 1.0 + 0.0j if p == 0 else w2
            lo = int(math.ceil((tau - span * spc - c0) / 32.0)) - m_first
            hi = int(math.floor((tau + span * spc - c0) / 32.0)) - m_first
            if lo < 0:
                lo = 0
            if hi > n_out - 1:
                hi = n_out - 1
            for i in range(lo, hi + 1):
                x = (32.0 * (m_first + i) + c0 - tau) / spc
                u = (x + tab_span) * tab_res
                j = int(u)
                f = u - j
                g = tab[j] * (1.0 - f) + tab[j + 1] * f
                out[i] += w * chips[k] * g
    return out
