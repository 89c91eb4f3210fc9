"""Preamble detector: every chip code of every channel of one input, CFAR threshold, explicit state machine.

Input: the channels' complex baseband at 1.5 kHz (dsp.rx.channelizer), shape (channels, n). For each
code the detector correlates against the noise-free received preamble (64 BPSK symbols spread by
the code, RRC chips, and the transmitter's harmonic-null comb, i.e. the two paths 0 and T0),
sampled at two sub-sample phases (0 and half a sample, so the timing mismatch never exceeds a
quarter sample). Correlation runs by overlap-save FFTs (single precision) in fixed blocks of
N = 2048 samples aligned to the absolute sample index, so results do not depend on how the
stream is cut. :class:`DetectorBank` does every channel of an input at once: one forward FFT of
the channels' blocks, one inverse FFT of the 12 phase-0 correlations (3 channels x 4 codes), by
FFTW (:class:`_RowFFT`; plans, buffers and template spectra shared by every bank of a thread).
:class:`PreambleDetector` is a bank of one channel.

The half-sample phase without its FFT. The state machine sees, per lag, the larger of the two
phases' lambda (phase 0 on ties), and only its crossings of T matter: while a code is idle or
holding off and no lag of the block reaches T, the block changes nothing but the end of a
hold-off. So the phase-1 correlation is computed (by FFT, exactly as before) only for a code in a
peak window or whose statistic may reach LIM_FULL x T in the block (``state.full_rows`` counts
those code-blocks); the state machine then runs on both phases as it always did, and the
detections are the same. "May reach" is decided from the phase-0 correlation r0 alone
(:func:`_full_rows_kernel`) by a bound, not an estimate: r1 is a six-tap interpolation of r0
(least squares over the block's spectrum, :func:`_interpolators`) plus a residual of magnitude at
most the residual filter's norm times the block's norm (Cauchy-Schwarz; FFT_SLACK covers
single-precision rounding), and the interpolation is at most sum |g| times the largest |r0| of its
six lags. So lambda_1 can reach the limit only within three lags of a phase-0 lag with lambda_0
over ~0.38 T (for a block of noise; a few lags per code and block), and the interpolation is
evaluated there only. (A phase-1 peak loses at most 1.1 dB at its neighbouring phase-0 lags, so
a burst's own code is flagged by lambda_0 already.)

Per block and channel, besides the FFTs: the noise power (:func:`_noise_kernel`: the median of
the non-zero |x|^2, looked for first in windows around the previous block's), the narrowband
interference check (:func:`tone_bins`, only on the 64-bin groups that hold in-band bins, and
without the median where the group's largest bin cannot cross; a block that loses a tone is
inverse-transformed with the correlations), the spectra's product (:func:`_spectra_product`,
numpy's rounding reproduced with fused multiply-adds where numpy uses them, numpy's product
elsewhere) and the screen above. The kernels of the rare paths are compiled or loaded when the
first bank is built (:func:`_warm_up`), not inside a block.

CFAR, two stages. First: lambda = |r|^2 / (E_p sigma^2) with sigma^2 the noise power per sample
of the block (median of |x|^2 / ln 2, robust to a burst in the block); the state machine runs on it.
Were the noise white, lambda would be exponential with mean 1 and a threshold T would give a
false-alarm probability exp(-T) per test: T = 21 for about 6.5e7 tests per input-hour (3 channels
x 4 codes x 1500 lags/s x 3600 s), ~0.05 false alarms per input-hour. It is not: the comb and the
channelizer colour the noise the way the template is coloured (on white input noise lambda has
mean 1.26, and the false detections were 2.3 per input-hour, all on plain Gaussian noise).
Second stage (:mod:`dsp.rx.cfar_gate`, applied to the peak before it is emitted): lambda / kappa > T,
with kappa >= 1 the noise as this template sees it (the median of its own correlator output
over the block, and the window's mean power against the block's), which restores exp(-T) and
turns down crossings carried by a transient or a few strong samples (impulse residue); it cannot
turn down a decodable burst (see that module).

State machine per code: IDLE -> (lambda > T) -> PEAK (follow the maximum for PEAK_SPAN samples,
a template length: a strong burst has correlation sidelobes (the code repeats every 127 chips, the
T0 path echoes the template one grid period either side) that can cross T before the true peak)
-> emit the maximum -> HOLDOFF (PEAK_SPAN samples past the peak, covering its +T0 echo) -> IDLE.
A detection is released once its burst has passed, and dropped if a detection on the same
channel (any code, this one included) whose burst overlaps it is strong enough to explain it as
a sidelobe (:func:`sidelobe_bound`: the data of a strong burst re-triggers its own and the other
codes' correlators; no long hold-off, so a sidelobe can never mask a real burst) (a real burst 10 dB under another on a spreading factor of 4 could
not be decoded anyway).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from dsp.air import params as P
from dsp.rx.cfar_gate import SEG, gated_statistic
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.numba_settings import fma, jit
from dsp.air.codes import chip_code, preamble_bits
from dsp.rx.order import select_pair
from dsp.tx.shaping import rrc

NFFT = 2048  # ~1 s hop: a burst is released at most ~1 s after it ends (latency budget 2 s)
THRESHOLD = 21.0
PEAK_SPAN = 640  # follow the maximum for a template length after the first crossing (0.43 s)
SIDELOBE_DB = 10.8  # a burst's largest sidelobe over other lags and codes, noiseless (measured: -10.6 dB)
PRE_CHIPS = 6.5  # template starts this many chips before the centre of chip 0
TONE_DB = 15.0  # a bin this far over its neighbourhood is narrowband interference (:func:`tone_bins`)
TONE_K = 10 ** (TONE_DB / 10)
TONE_GROUP = 64  # bins per neighbourhood (47 Hz)
TONE_K_LN2 = TONE_K / math.log(2.0)  # (the median power / ln 2 is the neighbourhood's mean)
LIM_FULL = 0.99  # a code whose statistic may reach this x T in a block gets its phase-1 correlation in full
INTERP_TAPS = 6  # phase-1 correlation estimated from six phase-0 lags (:func:`_interpolators`)
INTERP_LEAD = 2  # ... m - 3 .. m + 2
FFT_SLACK = 1e-4  # single-precision FFT error allowed for, relative to ||block|| sqrt(E_p) (it is ~1e-6)


def sidelobe_bound(lam: float) -> float:
    """Largest statistic a burst of peak ``lam`` can put on another lag or code of its channel:
    its noiseless sidelobe (SIDELOBE_DB down) plus what noise can add to it (a 4-sigma
    excursion of |s + n|^2 with |s|^2 = the sidelobe, plus the exponential noise alone)."""
    side = lam * 10 ** (-SIDELOBE_DB / 10)
    return side + 4.0 * math.sqrt(side) + 6.0


class DetState(IntEnum):
    IDLE = 0
    PEAK = 1
    HOLDOFF = 2


@dataclass(frozen=True)
class Detection:
    """A preamble found on one channel of one input; times derive from ``start_sample``."""

    channel: int
    code: int
    start_sample: float  # input-rate index (fractional) of the centre of chip 0
    m_peak: int  # baseband index of the correlation peak (template start)
    lambda_peak: float  # CFAR statistic at the peak
    corr: complex  # complex correlation at the peak (its phase is the carrier phase)
    noise_power: float  # per baseband sample, at detection
    sub_phase: int  # which template phase (0 or 1 = half a sample later)


def template(channel: P.Channel, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    """Received preamble at baseband rate, sample i at time (i + phase)/fs_bb - PRE_CHIPS*Tc."""
    return _template(channel.index, channel.fc_hz, code, grid_hz, fs_bb, phase).copy()


@lru_cache(maxsize=256)
def _template(ch_index: int, fc_hz: float, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    tc = 1.0 / P.CHIP_RATE_HZ
    t0 = 1.0 / grid_hz
    n_chips = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
    chips = (1.0 - 2.0 * preamble_bits().astype(float)).repeat(P.CHIPS_PER_SYMBOL) * \
        np.asarray(chip_code(ch_index, code))[np.arange(n_chips) % P.CODE_LENGTH]
    length = int(math.ceil(((n_chips - 1 + 2 * PRE_CHIPS) * tc + t0) * fs_bb)) + 1
    t = (np.arange(length) + phase) / fs_bb - PRE_CHIPS * tc
    w2 = -np.exp(-2j * np.pi * fc_hz * t0)
    out = np.zeros(length, complex)
    for n in range(n_chips):
        for d, w in ((0.0, 1.0), (t0, w2)):
            x = (t - d) / tc - n
            m = np.abs(x) <= PRE_CHIPS
            out[m] += w * chips[n] * _rrc_vec(x[m])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _spectra(ch_index: int, fc_hz: float, codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """(template length, energies, conjugated template spectra) of every code and sub-sample phase
    (rows 2 code + phase), shared by every detector of the same channel (read-only)."""
    temps = []
    for code in codes:
        for ph in (0.0, 0.5):
            temps.append(_template(ch_index, fc_hz, code, grid_hz, fs_bb, ph))
    L = max(t.size for t in temps)
    if L >= NFFT // 2:
        raise ValueError("template longer than half the FFT block")
    energy = np.array([np.sum(np.abs(t) ** 2) for t in temps])
    T = np.conj(sfft.fft(np.stack([np.pad(t, (0, NFFT - t.size)) for t in temps]), axis=1)).astype(np.complex64)
    energy.setflags(write=False)
    T.setflags(write=False)
    return L, energy, T


@lru_cache(maxsize=64)
def _interpolators(ch_index: int, fc_hz: float, codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """Per code: the taps g (INTERP_TAPS, float32) with r1[m] ~ sum_t g[t] r0[m + INTERP_LEAD - t]
    (the phase-1 correlation from the phase-0 one: a half-sample shift, least squares over the
    block's spectrum, r0 and r1 circular over the block as the FFTs give them), the norm of what
    the taps leave out (h_norm: |r1[m] - that sum| <= h_norm ||block|| by Cauchy-Schwarz) and
    sum |g| (float64). Read-only."""
    _, _, T = _spectra(ch_index, fc_hz, codes, grid_hz, fs_bb)
    T = T.astype(np.complex128)
    shifts = INTERP_LEAD - np.arange(INTERP_TAPS)  # r0[m + shift] for tap t
    w = 2 * np.pi * np.fft.fftfreq(NFFT)
    g = np.empty((len(codes), INTERP_TAPS))
    h_norm = np.empty(len(codes))
    for ci in range(len(codes)):
        A = T[2 * ci][:, None] * np.exp(1j * np.outer(w, shifts))  # spectrum of r0[m + shift] per unit X
        g[ci] = np.linalg.lstsq(np.vstack([A.real, A.imag]), np.concatenate([T[2 * ci + 1].real, T[2 * ci + 1].imag]),
                                rcond=None)[0]
        D = T[2 * ci + 1] - A @ g[ci].astype(np.float32).astype(np.float64)
        h_norm[ci] = math.sqrt(float(np.sum(np.abs(D) ** 2)) / NFFT)  # Parseval: the residual filter's norm
    g = g.astype(np.float32)
    g1 = np.abs(g.astype(np.float64)).sum(axis=1)
    for arr in (g, h_norm, g1):
        arr.setflags(write=False)
    return g, h_norm, g1


def tone_bins(X: np.ndarray, inband: np.ndarray) -> np.ndarray | None:
    """Bins of the block's spectrum ``X`` inside the template's band (``inband``) that stand
    TONE_DB over their neighbourhood (groups of TONE_GROUP bins, 47 Hz: median power / ln 2), and
    one bin either side; None when there are none (the usual case).

    A non-harmonic tone in the channel (the simulator's interferers: 10-30 dB over N0 in 1 Hz)
    correlates with every code's template at every lag (the preamble's code repeats every 127
    chips, so its spectrum has lines): it raises the second CFAR stage's noise-as-the-template-
    sees-it (dsp.rx.cfar_gate) 2.5-4 times, which turned down bursts at lambda 37-61 in the
    substation channel (4 of 300 at 4.5 dB Eb/N0). Excised here, before the correlations, it is
    gone from both stages. A burst is spread over the band and never crosses 15 dB in a bin;
    white noise does with p = exp(-31.6) per bin."""
    hit = np.zeros(X.shape[0], np.bool_)
    if _tone_kernel(X, inband, TONE_GROUP, TONE_K_LN2, hit) == 0:
        return None
    return hit


@jit
def _tone_kernel(X, inband, group, k_over_ln2, hit):
    """The work of :func:`tone_bins` (a median per group that holds an in-band bin, a compare per
    bin, the one-bin guard); returns the number of bins marked in ``hit``.

    A group is passed over without its median when its largest in-band power mx cannot cross:
    when fewer than half its bins are under v = mx / k (a little more), its median is >= v."""
    n = X.shape[0]
    pw = np.empty(group, np.float32)
    sel = np.empty((2, group), np.float32)
    half = group // 2
    kf = np.float32(k_over_ln2)
    found = 0
    for g in range(n // group):
        used = False  # a group without an in-band bin cannot mark one
        mx = np.float32(0.0)
        for i in range(group):
            v = X[g * group + i]
            pw[i] = v.real * v.real + v.imag * v.imag
            if inband[g * group + i]:
                used = True
                if pw[i] > mx:
                    mx = pw[i]
        if not used:
            continue
        v = mx / k_over_ln2 * (1.0 + 1e-5)
        under = 0
        for i in range(group):
            under += pw[i] < v
        if under < half:  # the lower middle value, so the median, is >= v: no bin crosses
            continue
        lower, upper = select_pair(pw, half, sel)  # the median of an even count: mean of the two middle values
        lim = kf * ((lower + upper) / np.float32(2.0))
        for i in range(g * group, (g + 1) * group):
            if inband[i] and pw[i - g * group] > lim:
                found += 1
                for j in range(max(i - 1, 0), min(i + 2, n)):
                    if inband[j]:
                        hit[j] = True
    if found == 0:
        return 0
    m = 0
    for i in range(n):
        if hit[i]:
            m += 1
    return m


@jit
def _tone_rows(X, inband, live, group, k_over_ln2, hit, count):
    """:func:`_tone_kernel` on each row c of ``X`` with live[c] (hit, inband: (rows, N)); count[c]
    the bins marked in that row, which are set to 0 in ``X``; returns the sum of the counts."""
    total = 0
    for c in range(live.shape[0]):
        count[c] = 0
        if live[c]:
            hit[c, :] = False
            count[c] = _tone_kernel(X[c], inband[c], group, k_over_ln2, hit[c])
            if count[c]:
                total += count[c]
                for i in range(X.shape[1]):
                    if hit[c, i]:
                        X[c, i] = 0.0
    return total


@jit
def _spectra_product(X, T0, chans, out):
    """out[j * codes + k] = X[chans[j]] * T0[chans[j], k] (complex64) rounded as numpy's complex64
    product rounds on machines with FMA: (fma(xr, tr, -(xi ti)), fma(xr, ti, xi tr))."""
    ncode = T0.shape[1]
    for j in range(chans.shape[0]):
        c = chans[j]
        for k in range(ncode):
            row = out[j * ncode + k]
            t = T0[c, k]
            x = X[c]
            for i in range(row.shape[0]):
                xv = x[i]
                tv = t[i]
                row[i] = complex(fma(xv.real, tv.real, -(xv.imag * tv.imag)), fma(xv.real, tv.imag, xv.imag * tv.real))


@jit
def _restore_zeros(blk, rows, x, power):
    """Row j of ``x`` (a block without its tone) takes exact zeros where row rows[j] of ``blk`` had
    them (blanked samples stay blanked); power[rows[j]] >= its sum |x|^2 before (what was correlated)."""
    for j in range(rows.shape[0]):
        tot = 0.0
        for i in range(x.shape[1]):
            u = x[j, i]
            tot += u.real * u.real + u.imag * u.imag
            v = blk[rows[j], i]
            if v.real * v.real + v.imag * v.imag == 0:
                x[j, i] = 0.0
        power[rows[j]] = tot * (1.0 + 1e-6)


def _rrc_vec(x: np.ndarray) -> np.ndarray:
    return np.array([rrc(float(v), P.RRC_BETA) for v in x])


@jit
def _statistic(r0, r1, d0, d1):
    """lambda = |r|^2 / den of a code's two template phases (correlations r0, r1; den d0, d1), the
    larger of the two per lag (phase 0 on ties), which phase it was, and the row's maximum.
    Single precision, as the correlation."""
    hop = r0.shape[0]
    lam = np.empty(hop, dtype=np.float32)
    best = np.empty(hop, dtype=np.int8)
    mx = np.float32(-np.inf)
    for i in range(hop):
        a = r0[i]
        b = r1[i]
        l0 = (a.real * a.real + a.imag * a.imag) / d0
        l1 = (b.real * b.real + b.imag * b.imag) / d1
        if l1 > l0:
            lam[i] = l1
            best[i] = 1
            v = l1
        else:
            lam[i] = l0
            best[i] = 0
            v = l0
        if v > mx:
            mx = v
    return lam, best, mx


@jit
def _noise_kernel(blk, dest, p, scratch, guess, n_live, noise, power):
    """Per row of ``blk`` (rows, N; complex64), at c = dest[row]: the count of non-zero samples n_live[c], the
    noise power per sample noise[c] (the median of their |x|^2 in single precision, for an even
    count the upper of the two middle values as ``np.partition(live, live.size // 2)[live.size // 2]``,
    / ln 2 in single precision; 0 for a row without one) and power[c] >= sum |x|^2 (double).
    ``p``: N float32, ``scratch``: (2, N) float32. ``guess[c]`` (updated: the previous block's median) is
    where it is looked for first: the values in four nested windows around it (+-1.5 % to
    -30/+40 %) are counted, and only those of the narrowest window that holds the median are
    selected from (dsp.rx.order.select_pair), else every live one; the result is the same. Returns the number of rows with at least N / 2 non-zero samples."""
    ln2 = np.float32(math.log(2.0))
    N = blk.shape[1]
    n_ok = 0
    for r in range(blk.shape[0]):
        row = blk[r]
        c = dest[r]
        s = np.zeros(8, np.float32)  # eight partial sums (single precision, a bound: see below)
        for i in range(0, N - 7, 8):
            for j in range(8):
                v = row[i + j]
                q = v.real * v.real + v.imag * v.imag
                p[i + j] = q
                s[j] += q
        tot = 0.0
        for j in range(8):
            tot += s[j]
        for i in range(N - N % 8, N):
            v = row[i]
            p[i] = v.real * v.real + v.imag * v.imag
            tot += p[i]
        power[c] = tot * (1.0 + 1e-4)  # each partial sum adds N / 8 terms: relative error < 2e-5
        # nested windows around the guess: the narrowest that holds the median is searched
        g = guess[c]
        lo1, hi1 = np.float32(g * 0.985), np.float32(g * 1.015)
        lo2, hi2 = np.float32(g * 0.95), np.float32(g * 1.05)
        lo3, hi3 = np.float32(g * 0.88), np.float32(g * 1.14)
        lo4, hi4 = np.float32(g * 0.7), np.float32(g * 1.4)
        n_zero = n_lo1 = n_hi1 = n_lo2 = n_hi2 = n_lo3 = n_hi3 = n_lo4 = n_hi4 = 0
        for i in range(N):  # (vectorised: no branch)
            q = p[i]
            n_zero += q == 0
            n_lo1 += q < lo1
            n_hi1 += q < hi1
            n_lo2 += q < lo2
            n_hi2 += q < hi2
            n_lo3 += q < lo3
            n_hi3 += q < hi3
            n_lo4 += q < lo4
            n_hi4 += q < hi4
        n = N - n_zero  # blanked samples (and the comb's settling) are exact zeros
        n_live[c] = n
        n_ok += n >= N // 2
        noise[c] = 0.0
        if n == 0:
            continue
        rank = n_zero + n // 2  # among all N values (the zeros come first)
        if lo1 > 0 and n_lo1 <= rank < n_hi1:  # in [lo, hi): select among those only
            lo, hi, below = lo1, hi1, n_lo1
        elif lo2 > 0 and n_lo2 <= rank < n_hi2:
            lo, hi, below = lo2, hi2, n_lo2
        elif lo3 > 0 and n_lo3 <= rank < n_hi3:
            lo, hi, below = lo3, hi3, n_lo3
        elif lo4 > 0 and n_lo4 <= rank < n_hi4:
            lo, hi, below = lo4, hi4, n_lo4
        else:  # every live sample (the least positive single is 1.4e-45)
            lo, hi, below = np.float32(1e-45), np.float32(np.inf), n_zero
        m = 0
        for i in range(N):
            scratch[0, m] = p[i]
            m += (lo <= p[i]) & (p[i] < hi)
        med = select_pair(scratch[0, :m], rank - below, scratch)[1]
        guess[c] = med
        noise[c] = med / ln2
    return n_ok


@jit
def _r1e_around(row, gk, j, done, hop, b, r1lim):
    """r1e (see :func:`_full_rows_kernel`) at the lags in 0 .. hop - 1 that lag j feeds, past
    ``done``: (last lag evaluated, whether |r1e| + b reached r1lim, how many were evaluated)."""
    n = row.shape[0]
    K = gk.shape[0]
    lo = K - 1 - INTERP_LEAD
    m0 = max(j - INTERP_LEAD, done + 1)
    m1 = min(j + lo, hop - 1)
    for m in range(m0, m1 + 1):
        sr = 0.0
        si = 0.0
        for t in range(K):
            i = m + INTERP_LEAD - t
            u = row[i + n if i < 0 else i]
            sr += gk[t] * u.real
            si += gk[t] * u.imag
        if math.sqrt(sr * sr + si * si) + b >= r1lim:
            return m, True, m - m0 + 1
    return max(done, m1), False, max(0, m1 - m0 + 1)


@jit
def _full_rows_kernel(r, hop, rowch, rowcode, energy, noise, power, g, h_norm, g1, e1, lim, need):
    """Which codes' state machines must see the block in full, phase-1 correlation included: for
    each row k of ``r`` (rows, N; the phase-0 correlation of code ``rowcode[k]`` of channel
    ``rowch[k]``, lags 0 .. hop - 1, circular over N) sets need[k] (rows already set are left
    alone) when, at some lag, lambda_0 = |r0|^2 / den0 or lambda_1 = |r1|^2 / den1 may reach
    ``lim``. den = E_p sigma^2 (in single precision, as the state machine's) from ``energy``
    (channels, 2 codes: per code and phase) and ``noise`` (channels), ``power`` >= sum |x|^2 of each
    channel's block, ``g``, ``h_norm``, ``g1``: each row's
    :func:`_interpolators`, ``e1`` its phase-1 energy.

    lambda_1 is never computed: |r1[m]| <= |r1e[m]| + B with r1e[m] = sum_t g[t] r0[m + 2 - t] and
    B = (h_norm + FFT_SLACK sqrt(e1) (1 + g1)) sqrt(power), and |r1e[m]| <= g1 max |r0| over those
    six lags; so r1e is evaluated only next to a lag where |r0| > A = (sqrt(lim den1) - B) / g1
    (lambda_0 over ~0.38 T on noise, a few lags per row and block), and the row is flagged if
    |r1e| + B reaches sqrt(lim den1) there. Returns (the number of r1e evaluations, of rows flagged)."""
    n = r.shape[1]
    K = g.shape[1]
    lo = K - 1 - INTERP_LEAD  # r0 lags m - lo .. m + INTERP_LEAD feed r1e[m]
    evals = 0
    for k in range(r.shape[0]):
        if need[k]:
            continue
        c = rowch[k]
        ci = rowcode[k]
        d0 = np.float64(np.float32(energy[c, 2 * ci] * noise[c]))
        d1 = np.float64(np.float32(energy[c, 2 * ci + 1] * noise[c]))
        b = (h_norm[k] + FFT_SLACK * math.sqrt(e1[k]) * (1.0 + g1[k])) * math.sqrt(power[c])
        r1lim = math.sqrt(lim * d1)
        a = (r1lim - b) / g1[k]
        if not a > 0:  # a block far over its noise: no bound worth having
            need[k] = True
            continue
        q0 = np.float32(lim * d0 * (1.0 - 1e-6))
        qa = np.float32(a * a * (1.0 - 1e-6))
        row = r[k]
        big = 0
        marked = 0
        first = hop  # the first and last marked lag
        last = -1
        for j in range(hop):  # (vectorised: no branch)
            v = row[j]
            p = v.real * v.real + v.imag * v.imag
            big += not p <= q0  # (a NaN too)
            mk = p > qa
            marked += mk
            first = min(first, j if mk else hop)
            last = max(last, j if mk else -1)
        if big:
            need[k] = True
            continue
        for j in range(-lo, INTERP_LEAD):  # lags past either end (circular) that feed r1e
            v = row[n + j if j < 0 else hop + j]
            marked += v.real * v.real + v.imag * v.imag > qa
        if marked == 0:
            continue
        gk = g[k]
        done = -1  # r1e evaluated at lags up to here
        hit = False
        for j in range(-lo, 0):
            v = row[n + j]
            if v.real * v.real + v.imag * v.imag > qa:
                done, hit, e = _r1e_around(row, gk, j, done, hop, b, r1lim)
                evals += e
                if hit:
                    break
        if not hit:
            for j in range(hop, hop + INTERP_LEAD):  # (the lags past the end: see above)
                v = row[j]
                if v.real * v.real + v.imag * v.imag > qa:
                    first = min(first, j)
                    last = j
            for j in range(first, last + 1):  # no lag outside is marked
                v = row[j]
                if v.real * v.real + v.imag * v.imag > qa:
                    done, hit, e = _r1e_around(row, gk, j, done, hop, b, r1lim)
                    evals += e
                    if hit:
                        break
        need[k] = hit
    n_need = 0
    for k in range(r.shape[0]):
        n_need += need[k]
    return evals, n_need


@dataclass
class _CodeSM:
    state: DetState = DetState.IDLE
    best_lambda: float = 0.0
    best_m: int = -1
    best_corr: complex = 0j
    best_phase: int = 0
    best_noise: float = 0.0
    best_win: np.ndarray | None = None  # baseband under the best lag's template window
    best_row: np.ndarray | None = None  # its template's correlator output over that block
    since_best: int = 0
    first_m: int = -1
    holdoff_until: int = -1


@dataclass
class DetectorState:
    buf_start: int  # baseband index of the first sample not yet consumed by a full block
    sms: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # detections waiting for their burst to pass
    recent: list = field(default_factory=list)  # released or dropped ones, for the rival check
    n_tests: int = 0
    dropped: int = 0
    gated: int = 0  # crossings the second CFAR stage (dsp.rx.cfar_gate) turned down
    tone_blocks: int = 0  # blocks with narrowband interference excised (:func:`tone_bins`)
    full_rows: int = 0  # code-blocks whose phase-1 correlation was computed in full (see the module doc)

    def copy(self) -> "DetectorState":
        return DetectorState(self.buf_start, [(_CodeSM(**vars(s))) for s in self.sms],
                             list(self.pending), list(self.recent), self.n_tests, self.dropped, self.gated,
                             self.tone_blocks, self.full_rows)


class ChannelDetector:
    """The per-channel part of a :class:`DetectorBank`: templates, the state machine of every
    code, the second CFAR stage and the release of detections (``state``: its counters)."""

    def __init__(self, channel: P.Channel, grid_hz: float, fs_bb: float, threshold: float,
                 codes: tuple[int, ...]) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be positive")
        self.channel, self.grid_hz, self.fs_bb, self.threshold, self.codes = channel, grid_hz, fs_bb, threshold, codes
        self.L, self.energy, self.T = _spectra(channel.index, channel.fc_hz, tuple(codes), grid_hz, fs_bb)
        self.inband = np.abs(sfft.fftfreq(NFFT, 1.0 / fs_bb)) <= channel.bandwidth_hz / 2  # the template's band
        self.hop = NFFT - self.L + 1
        self.burst_bb = int((P.burst_duration_s() + 1.0 / grid_hz) * fs_bb)
        self.reset()

    def reset(self) -> None:
        self.state = DetectorState(0, [_CodeSM() for _ in self.codes])

    def copy(self) -> "ChannelDetector":
        d = ChannelDetector.__new__(ChannelDetector)
        d.__dict__.update(self.__dict__)
        d.state = self.state.copy()
        return d

    def start_sample(self, m: float, sub_phase: int) -> float:
        """Input-rate index of the centre of chip 0 for a template that starts at baseband m."""
        return Channelizer.input_index(m) - DECIMATION * 0.5 * sub_phase + PRE_CHIPS * 48000.0 / P.CHIP_RATE_HZ

    def _skip(self) -> None:
        for sm in self.state.sms:
            if sm.state == DetState.PEAK:
                sm.state = DetState.IDLE

    def _scan(self, ci: int, m0: int, r0: np.ndarray, r1: np.ndarray, b32: np.ndarray, noise: float,
              found: list) -> None:
        """Code ``ci`` over a block from both template phases' correlations ``r0``, ``r1`` (hop lags)."""
        sm = self.state.sms[ci]
        e = self.energy
        row, best_phase, row_max = _statistic(r0, r1, np.float32(e[2 * ci] * noise), np.float32(e[2 * ci + 1] * noise))
        r = (r0, r1)
        if sm.state == DetState.IDLE and not (row_max > self.threshold):
            return
        i = 0
        hop = self.hop
        while i < hop:
            if sm.state == DetState.HOLDOFF:
                i = max(i, sm.holdoff_until - m0)
                if i >= hop:
                    break
                sm.state = DetState.IDLE
            if sm.state == DetState.IDLE:
                above = np.flatnonzero(row[i:] > self.threshold)
                if above.size == 0:
                    break
                i += int(above[0])
                sm.state, sm.first_m, sm.best_lambda = DetState.PEAK, m0 + i, -1.0
            # PEAK: the maximum over [first_m, first_m + PEAK_SPAN]
            e = sm.first_m + PEAK_SPAN + 1 - m0
            seg = row[i:min(e, hop)]
            k = int(np.argmax(seg))
            if seg[k] > sm.best_lambda:
                j = i + k
                ph = int(best_phase[j])
                sm.best_lambda, sm.best_m, sm.best_phase = float(seg[k]), m0 + j, ph
                sm.best_corr, sm.best_noise = complex(r[ph][j]), noise
                sm.best_win, sm.best_row = b32[j:j + self.L].copy(), r[ph].copy()  # for the 2nd stage
            if e > hop:
                break  # the window goes on in the next block
            if self._passes(ci, sm):
                found.append(self._detection(ci, sm))
                sm.state = DetState.HOLDOFF  # only past this peak's own echoes (+T0)
                sm.holdoff_until = sm.best_m + PEAK_SPAN
            else:
                sm.state = DetState.IDLE  # noise: no echoes to hold off
            i = e

    def _detection(self, ci: int, sm: _CodeSM) -> Detection:
        return Detection(self.channel.index, self.codes[ci], self.start_sample(sm.best_m, sm.best_phase),
                         sm.best_m, sm.best_lambda, sm.best_corr, sm.best_noise, sm.best_phase)

    def flush(self) -> list[Detection]:
        """End of stream: release everything still pending (after the rival check)."""
        s = self.state
        for ci, sm in enumerate(s.sms):
            if sm.state == DetState.PEAK:
                if self._passes(ci, sm):
                    s.pending.append(self._detection(ci, sm))
                sm.state = DetState.IDLE
        return self._release(10**18)

    def _passes(self, ci: int, sm: _CodeSM) -> bool:
        """Second CFAR stage (dsp.rx.cfar_gate): the peak re-normalised by the noise as its template
        sees it must still cross the threshold."""
        k = 2 * ci + sm.best_phase
        tp = _template(self.channel.index, self.channel.fc_hz, self.codes[ci], self.grid_hz, self.fs_bb, 0.5 * sm.best_phase)
        if gated_statistic(sm.best_win[:tp.size], tp, sm.best_row, float(self.energy[k]), sm.best_noise) > self.threshold:
            return True
        self.state.gated += 1
        return False

    def _release(self, now: int) -> list[Detection]:
        """Release detections whose burst has passed, unless a much stronger overlapping one exists."""
        s = self.state
        if not s.pending:  # (the usual case: only the rival memory to trim)
            if s.recent:
                s.recent = [d for d in s.recent if d.m_peak > now - 3 * self.burst_bb]
            return []
        out = []
        still = []
        for d in s.pending:
            if d.m_peak + self.burst_bb > now:
                still.append(d)
                continue
            rivals = s.pending + s.recent
            if any(o is not d and abs(o.m_peak - d.m_peak) < self.burst_bb and d.lambda_peak < sidelobe_bound(o.lambda_peak)
                   for o in rivals):
                s.dropped += 1
                continue
            out.append(d)
        s.recent = [d for d in s.recent + out + [d for d in s.pending if d not in still and d not in out]
                    if d.m_peak > now - 3 * self.burst_bb]
        s.pending = still
        return sorted(out, key=lambda d: d.m_peak)


try:  # FFTW (pyFFTW): ~2.5x pocketfft's speed on these transforms, see _RowFFT
    import pyfftw
except ImportError:  # pragma: no cover - then scipy.fft's own pocketfft binding
    pyfftw = None
    from scipy.fft._pocketfft.pypocketfft import c2c as _c2c


class _RowFFT:
    """FFTs of the first n rows of ``inp`` (rows, NFFT; complex64) into ``out``, unnormalised
    both ways (the bank's template spectra carry the inverse's 1/N: a power of two, exact).

    FFTW plans made with FFTW_ESTIMATE: chosen by FFTW's rules, not by timing, so every run on a
    machine makes the same plan and the same bits. Out of place (in place, FFTW's estimated plans
    were 2.5x slower here). Measured on this project's machine (AMD EPYC, AVX-512, one thread):
    12 inverse rows of 2048 points 32 us against pocketfft's 83 us, 4 forward rows 7.7 against 24.
    Without pyFFTW, pocketfft does the same transforms (a few ulp apart)."""

    def __init__(self, rows: int, forward: bool) -> None:
        alloc = pyfftw.empty_aligned if pyfftw is not None else np.empty
        self.inp, self.out = alloc((rows, NFFT), np.complex64), alloc((rows, NFFT), np.complex64)
        self.inp[:] = 0
        self.out[:] = 0
        self.forward = forward
        self.plans: dict[int, object] = {}

    def __call__(self, n: int) -> np.ndarray:
        if pyfftw is None:
            return _c2c(self.inp[:n], (1,), self.forward, 0, self.out[:n], 1)
        plan = self.plans.get(n)
        if plan is None:
            plan = self.plans[n] = pyfftw.FFTW(self.inp[:n], self.out[:n], axes=(1,), threads=1,
                                               direction="FFTW_FORWARD" if self.forward else "FFTW_BACKWARD",
                                               flags=("FFTW_ESTIMATE",))
        plan.execute()
        return self.out[:n]


_warm = False
_product_kernel = False  # whether _spectra_product rounds as numpy does here (set by _warm_up)


def _warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of the rare paths, a crossing and a tone,
    with the argument types the bank gives them, so that their first use is not inside a block."""
    global _warm
    if _warm:
        return
    blk = np.zeros((4, 2 * NFFT), np.complex64)[:, :NFFT]  # a block as the bank's buffer holds it
    x = np.zeros((1, NFFT), np.complex64)
    x = np.zeros((5, NFFT), np.complex64)[4:]  # a tone row after the correlations, in the bank's buffer
    one = np.zeros(1, np.int64)
    _restore_zeros(blk, one, x, np.empty(1))
    _noise_kernel(x, one, np.empty(NFFT, np.float32), np.empty((2, NFFT), np.float32), np.zeros(1), np.empty(1, np.int64),
                  np.empty(1), np.empty(1))
    r = np.zeros((2, 2 * NFFT), np.complex64)
    _statistic(r[0, :4], r[1, :4], np.float32(1.0), np.float32(1.0))  # (rows of the correlations)
    t = np.ones(2 * SEG, complex)
    t.setflags(write=False)  # as templates are
    gated_statistic(np.ones(2 * SEG, np.complex64), t, np.ones(3, np.complex64), 1.0, 1.0)
    # numpy's complex64 product is what the correlations were always made of: the kernel stands in
    # for it only where it gives the same bits (numpy's SIMD loops use FMA where the CPU has it)
    global _product_kernel
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((4, 256)) + 1j * rng.standard_normal((4, 256))).astype(np.complex64)
    T0 = (rng.standard_normal((3, 4, 256)) + 1j * rng.standard_normal((3, 4, 256))).astype(np.complex64)
    T0.setflags(write=False)  # as the bank's are
    out = np.empty((12, 256), np.complex64)
    _spectra_product(X, T0, np.arange(3), out)
    _product_kernel = np.array_equal(out, (X[:3, None, :] * T0).reshape(12, 256))
    _warm = True


@lru_cache(maxsize=16)
def _bank_spectra(chans: tuple[tuple[int, float], ...], codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """The conjugated template spectra of :func:`_spectra` as a bank reads them: (phase 0, phase 1),
    each (channel, code, N), shared by every bank of the same channels (read-only): the receiver
    runs many banks one block after another, and one copy stays in the cache where one per bank
    (192 kB each) would not."""
    Ts = [_spectra(i, f, codes, grid_hz, fs_bb)[2] for i, f in chans]
    # with the inverse FFT's 1/N (a power of two: exact), so that the inverse transform is unnormalised
    T0, T1 = (np.stack([T[k::2] for T in Ts]) * np.float32(1.0 / NFFT) for k in (0, 1))
    T0.setflags(write=False)
    T1.setflags(write=False)
    return T0, T1


_tls = threading.local()


def _per_thread(key: tuple, make):
    """The object under ``key`` that every bank of this thread uses, made by ``make()`` the first
    time: fewer bytes for the cache to hold than one per bank (scratch whose content lives within
    a block; FFTW plans, made once per thread)."""
    d = _tls.__dict__.setdefault("shared", {})
    if key not in d:
        d[key] = make()
    return d[key]


def _shared_scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    return _per_thread(("scratch", name, shape, np.dtype(dtype).str), lambda: np.zeros(shape, dtype))


def _shared_fft(name: str, rows: int, forward: bool) -> _RowFFT:
    return _per_thread(("fft", name, rows, forward), lambda: _RowFFT(rows, forward))


class DetectorBank:
    """Streaming detector for every channel of one input, the channels' blocks transformed together.

    ``process(bb)`` takes baseband of shape (channels, n) and returns a list of detections per
    channel; ``dets[c].state`` holds channel c's counters. Every channel needs the same template
    length (so the same blocks)."""

    def __init__(self, channels, grid_hz: float = 60.0, fs_bb: float = 48000.0 / DECIMATION,
                 threshold: float = THRESHOLD, codes: tuple[int, ...] = tuple(range(P.CODES_PER_CHANNEL))) -> None:
        codes = tuple(codes)
        self.dets = [ChannelDetector(c, grid_hz, fs_bb, threshold, codes) for c in channels]
        if not self.dets:
            raise ValueError("no channel")
        self.L, self.hop, self.threshold = self.dets[0].L, self.dets[0].hop, float(threshold)
        if any(d.L != self.L for d in self.dets):
            raise ValueError("every channel of a bank needs the same template length")
        nch, ncode = len(self.dets), len(codes)
        self.ncode = ncode
        # (channel, code, N), one pair of arrays for every bank of these channels (cache-resident)
        self.T0, self.T1 = _bank_spectra(tuple((c.index, c.fc_hz) for c in channels), codes, grid_hz, fs_bb)
        self.energy = np.stack([d.energy for d in self.dets])  # (channel, 2 code + phase)
        interp = [_interpolators(c.index, c.fc_hz, codes, grid_hz, fs_bb) for c in channels]
        self.g = np.concatenate([i[0] for i in interp])  # rows channel * ncode + code
        self.h_norm = np.concatenate([i[1] for i in interp])
        self.g1 = np.concatenate([i[2] for i in interp])
        self.e1 = np.ascontiguousarray(self.energy[:, 1::2]).ravel()
        self.inband = np.stack([d.inband for d in self.dets])
        self.rowch = np.repeat(np.arange(nch), ncode)
        self.rowcode = np.tile(np.arange(ncode), nch)
        _warm_up()
        self.reset()

    def _scratch(self) -> None:
        nch = len(self.dets)
        self._n_live = np.empty(nch, np.int64)
        self._noise = np.empty(nch, np.float64)
        self._power = np.empty(nch, np.float64)
        self._p, self._sel = _shared_scratch("p", (NFFT,), np.float32), _shared_scratch("sel", (2, NFFT), np.float32)
        self._live = np.ones(nch, np.bool_)
        self._all_live = True  # (whether _live is all True)
        self._rows = list(range(nch * self.ncode))
        self._hit = np.empty((nch, NFFT), np.bool_)
        self._hits = np.empty(nch, np.int64)
        # the block's spectra; the correlations' spectra, then the spectra of blocks without a tone
        # (inverse-transformed together); phase-1 correlations
        self._fwd = _shared_fft("block", nch, True)
        self._inv = _shared_fft("corr", nch * (self.ncode + 1), False)
        self._inv1 = _shared_fft("corr1", nch * self.ncode, False)
        self._prod = self._inv.inp
        self._dest = np.arange(nch)
        self._spare = np.empty(nch)

    def reset(self) -> None:
        for d in self.dets:
            d.reset()
        # samples not yet consumed by a full block: buf[:, head:tail], baseband index buf_start at head;
        self.buf = np.zeros((len(self.dets), 4 * NFFT), np.complex64)
        self.head = self.tail = 0
        self.buf_start = 0
        self.guess = np.zeros(len(self.dets))  # where each channel's noise median is looked for first
        self.evals = 0  # phase-1 estimates made by _full_rows_kernel
        self.active: set[int] = set()  # rows (channel * ncode + code) whose state machine is not idle
        self._scratch()

    def copy(self) -> "DetectorBank":
        b = DetectorBank.__new__(DetectorBank)
        b.__dict__.update(self.__dict__)
        b.dets = [d.copy() for d in self.dets]
        b.buf = self.buf.copy()
        b.guess = self.guess.copy()
        b.active = set(self.active)
        b._scratch()
        return b

    def process(self, bb: np.ndarray) -> list[list[Detection]]:
        bb = np.asarray(bb)
        nch = len(self.dets)
        if bb.ndim != 2 or bb.shape[0] != nch or bb.dtype.kind != "c":
            raise ValueError(f"the bank takes complex baseband of shape ({nch}, n), got {bb.dtype} {bb.shape}")
        n = bb.shape[1]
        if self.tail + n > self.buf.shape[1]:  # move what is left to the front, grow if need be
            keep = self.tail - self.head
            buf = self.buf if keep + n <= self.buf.shape[1] else \
                np.zeros((self.buf.shape[0], keep + n + NFFT), np.complex64)
            buf[:, :keep] = self.buf[:, self.head:self.tail]
            self.buf, self.head, self.tail = buf, 0, keep
        self.buf[:nch, self.tail:self.tail + n] = bb
        self.tail += n
        out: list[list[Detection]] = [[] for _ in range(nch)]
        while self.tail - self.head >= NFFT:
            for c, found in self._block(self.buf[:, self.head:self.head + NFFT], self.buf_start):
                out[c].extend(found)
            self.head += self.hop
            self.buf_start += self.hop
            for d in self.dets:
                d.state.buf_start = self.buf_start
        return out

    def flush(self) -> list[list[Detection]]:
        """End of stream: release everything still pending, per channel."""
        out = [d.flush() for d in self.dets]
        self._sync_active(range(len(self.dets)))
        return out

    def _sync_active(self, channels) -> None:
        for c in channels:
            for ci, sm in enumerate(self.dets[c].state.sms):
                if sm.state == DetState.IDLE:
                    self.active.discard(c * self.ncode + ci)
                else:
                    self.active.add(c * self.ncode + ci)

    def _block(self, blk: np.ndarray, m0: int) -> list[tuple[int, list[Detection]]]:
        """One block of NFFT samples of every channel."""
        dets, nch, ncode, hop = self.dets, len(self.dets), self.ncode, self.hop
        n_live, noise, power = self._n_live, self._noise, self._power
        n_ok = _noise_kernel(blk[:nch], self._dest, self._p, self._sel, self.guess, n_live, noise, power)
        out: list[tuple[int, list[Detection]]] = []  # (channel, detections released), when there are some
        live_mask = self._live
        if n_ok == nch:
            live = range(nch)
            if not self._all_live:
                live_mask[:] = self._all_live = True
        else:
            self._all_live = False
            live = [c for c in range(nch) if n_live[c] >= NFFT // 2]
            for c in range(nch):
                live_mask[c] = c in live
                if not live_mask[c]:
                    dets[c]._skip()  # mostly blanked or silent: nothing reliable to detect
            self._sync_active([c for c in range(nch) if not live_mask[c]])
            if not live:
                return out
        self._fwd.inp[:] = blk[:nch]
        X = self._fwd(nch)
        # narrowband interference (:func:`tone_bins`): out of X here, out of the block and the noise below
        n_tone = _tone_rows(X, self.inband, live_mask, TONE_GROUP, TONE_K_LN2, self._hit, self._hits)
        nrow = len(live) * ncode
        prod = self._prod
        if _product_kernel:
            _spectra_product(X, self.T0, self._dest if len(live) == nch else np.array(live), prod)
        elif len(live) == nch:
            np.multiply(X[:nch, None, :], self.T0, out=prod[:nrow].reshape(nch, ncode, NFFT))
        else:
            for j, c in enumerate(live):
                np.multiply(X[c][None, :], self.T0[c], out=prod[j * ncode:(j + 1) * ncode])
        if len(live) == nch:
            rowch, rowcode, g, h_norm, g1, e1 = self.rowch, self.rowcode, self.g, self.h_norm, self.g1, self.e1
            row_of = self._rows  # r0 row of each (channel, code) row
        else:
            rows = np.array([c * ncode + ci for c in live for ci in range(ncode)])
            rowch, rowcode, g, h_norm, g1, e1 = (self.rowch[rows], self.rowcode[rows], self.g[rows], self.h_norm[rows],
                                                 self.g1[rows], self.e1[rows])
            row_of = {int(gr): k for k, gr in enumerate(rows)}
        rows_b = {}  # channels whose block lost a tone: the block without it
        if n_tone:
            tone = np.array([c for c in live if self._hits[c]])
            # inverse-transformed with the correlations (and 1/N, exact)
            np.multiply(X[tone], np.float32(1.0 / NFFT), out=prod[nrow:nrow + tone.size])
            xt = self._inv(nrow + tone.size)[nrow:]
            _restore_zeros(blk, tone, xt, power)
            _noise_kernel(xt, tone, self._p, self._sel, self.guess, n_live, noise, self._spare)
            for j, c in enumerate(tone.tolist()):
                dets[c].state.tone_blocks += 1
                rows_b[c] = xt[j]
            r0 = self._inv.out[:nrow]
        else:
            r0 = self._inv(nrow)
        need = np.zeros(r0.shape[0], np.bool_)
        visit = []  # rows whose state machine is not idle: peak windows go on (every lag counts), hold-offs end
        for gr in self.active:
            if gr // ncode in live:
                visit.append(row_of[gr])
                if dets[gr // ncode].state.sms[gr % ncode].state == DetState.PEAK:
                    need[row_of[gr]] = True
        evals, n_need = _full_rows_kernel(r0, hop, rowch, rowcode, self.energy, noise, power, g, h_norm, g1, e1,
                                          LIM_FULL * self.threshold, need)
        self.evals += evals
        if n_need:  # the phase-1 correlations the state machines must see
            full = np.flatnonzero(need)
            p1 = self._inv1.inp
            for n, k in enumerate(full):
                np.multiply(X[rowch[k]], self.T1[rowch[k], rowcode[k]], out=p1[n])
            r1 = self._inv1(full.size)
            visit = sorted(set(visit) | set(full.tolist()))
        found: dict[int, list[Detection]] = {}
        for k in visit:  # in (channel, code) order, as detections are appended
            c, ci = int(rowch[k]), int(rowcode[k])
            d = dets[c]
            sm = d.state.sms[ci]
            if need[k]:
                d.state.full_rows += 1
                n = int(np.searchsorted(full, k))
                d._scan(ci, m0, r0[k, :hop], r1[n, :hop], rows_b.get(c, blk[c]), float(noise[c]), found.setdefault(c, []))
            elif sm.state == DetState.HOLDOFF and sm.holdoff_until - m0 < hop:
                sm.state = DetState.IDLE  # (no lag crosses the threshold: only a hold-off can end)
            if sm.state == DetState.IDLE:
                self.active.discard(c * ncode + ci)
            else:
                self.active.add(c * ncode + ci)
        for c in live:
            d = dets[c]
            d.state.n_tests += 2 * ncode * hop
            if c in found:
                d.state.pending.extend(found[c])
            if d.state.pending or d.state.recent:
                released = d._release(m0 + hop)
                if released:
                    out.append((c, released))
        return out


class PreambleDetector:
    """Streaming detector for one channel of one input (a :class:`DetectorBank` of one channel)."""

    def __init__(self, channel: P.Channel, grid_hz: float = 60.0, fs_bb: float = 48000.0 / DECIMATION,
                 threshold: float = THRESHOLD, codes: tuple[int, ...] = tuple(range(P.CODES_PER_CHANNEL))) -> None:
        self.bank = DetectorBank([channel], grid_hz, fs_bb, threshold, codes)

    @property
    def state(self) -> DetectorState:
        return self.bank.dets[0].state

    def reset(self) -> None:
        self.bank.reset()

    def copy(self) -> "PreambleDetector":
        d = PreambleDetector.__new__(PreambleDetector)
        d.bank = self.bank.copy()
        return d

    def start_sample(self, m: float, sub_phase: int) -> float:
        return self.bank.dets[0].start_sample(m, sub_phase)

    def process(self, x: np.ndarray) -> list[Detection]:
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind != "c":
            raise ValueError(f"the detector takes one channel of complex baseband, got {x.dtype} {x.shape}")
        return self.bank.process(x[None, :])[0]

    def flush(self) -> list[Detection]:
        return self.bank.flush()[0]
