"""The detector's numba kernels, one job each, in the order a block meets them.

Per block and channel, besides the FFTs (:mod:`dsp.rx.detect.fft`):

1. the noise power (:func:`noise_kernel`: the median of the non-zero |x|^2, looked for first in
   windows around the previous block's), and whether the block is live at all;
2. the narrowband interference check (:func:`tone_rows`, :func:`tone_bins`: only on the 64-bin
   groups that hold in-band bins, and without the median where the group's largest bin cannot
   cross); a block that loses a tone is inverse-transformed with the correlations and takes its
   blanked zeros back (:func:`restore_zeros`);
3. the spectra's product (:func:`spectra_product`: numpy's rounding reproduced with fused
   multiply-adds where numpy uses them, numpy's product elsewhere);
4. the screen (:func:`full_rows_kernel`): which codes may reach the threshold in the block, so
   that only those get their phase-1 correlation and a state machine pass;
5. the statistic of a code's two template phases (:func:`statistic`), which the state machine
   (:mod:`dsp.rx.detect.state`) runs on.

The screen is a bound, not an estimate: r1 (the phase-1 correlation) is a six-tap interpolation
of r0 (least squares over the block's spectrum, :func:`dsp.rx.detect.templates.interpolators`)
plus a residual of magnitude at most the residual filter's norm times the block's norm
(Cauchy-Schwarz; FFT_SLACK covers single-precision rounding), and the interpolation is at most
sum |g| times the largest |r0| of its six lags. So lambda_1 can reach the limit only within
three lags of a phase-0 lag with lambda_0 over ~0.38 T (for a block of noise; a few lags per
code and block), and the interpolation is evaluated there only. (A phase-1 peak loses at most
1.1 dB at its neighbouring phase-0 lags, so a burst's own code is flagged by lambda_0 already.)

The kernels of the rare paths (a crossing, a tone) are compiled or loaded when the first bank is
built (:func:`warm_up`), not inside a block.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from dsp.numba_settings import fma, jit
from dsp.rx.cfar_gate import SEG, gated_statistic
from dsp.rx.detect.templates import INTERP_LEAD, INTERP_TAPS, NFFT
from dsp.rx.order import select_pair

TONE_DB = 15.0  # a bin this far over its neighbourhood is narrowband interference (:func:`tone_bins`)
TONE_K = 10 ** (TONE_DB / 10)
TONE_GROUP = 64  # bins per neighbourhood (47 Hz)
TONE_K_LN2 = TONE_K / math.log(2.0)  # (the median power / ln 2 is the neighbourhood's mean)
FFT_SLACK = 1e-4  # single-precision FFT error allowed for, relative to ||block|| sqrt(E_p) (it is ~1e-6)


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
    if tone_kernel(X, inband, TONE_GROUP, TONE_K_LN2, hit) == 0:
        return None
    return hit


@jit
def tone_kernel(X, inband, group, k_over_ln2, hit):
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
def tone_rows(X, inband, live, group, k_over_ln2, hit, count):
    """:func:`tone_kernel` on each row c of ``X`` with live[c] (hit, inband: (rows, N)); count[c]
    the bins marked in that row, which are set to 0 in ``X``; returns the sum of the counts."""
    total = 0
    for c in range(live.shape[0]):
        count[c] = 0
        if live[c]:
            hit[c, :] = False
            count[c] = tone_kernel(X[c], inband[c], group, k_over_ln2, hit[c])
            if count[c]:
                total += count[c]
                for i in range(X.shape[1]):
                    if hit[c, i]:
                        X[c, i] = 0.0
    return total


@jit
def spectra_product(X, T0, chans, out):
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
def restore_zeros(blk, rows, x, power):
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


@jit
def statistic(r0, r1, d0, d1):
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
def noise_kernel(blk, dest, p, scratch, guess, n_live, noise, power):
    """Per row of ``blk`` (rows, N; complex64), at c = dest[row]: the count of non-zero samples n_live[c], the
    noise power per sample noise[c] (the median of their |x|^2 in single precision, for an even
    count the upper of the two middle values as ``np.partition(live, live.size // 2)[live.size // 2]``,
    / ln 2 in single precision; 0 for a row without one) and power[c] >= sum |x|^2 (double).
    ``p``: N float32, ``scratch``: (2, N) float32. ``guess[c]`` (updated: the previous block's median) is
    where it is looked for first: the values in four nested windows around it (+-1.5 % to
    -30/+40 %) are counted, and only those of the narrowest window that holds the median are
    selected from (dsp.rx.order.select_pair), else every live one; the result is the same. Returns the number
    of rows with at least N / 2 non-zero samples."""
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
    """r1e (see :func:`full_rows_kernel`) at the lags in 0 .. hop - 1 that lag j feeds, past
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


#: What :func:`full_rows_kernel` knows of each row of a bank's phase-0 correlations (code ``code``
#: of channel ``ch``): the code's interpolator (:func:`dsp.rx.detect.templates.interpolators`: taps
#: ``g``, the norm ``h_norm`` of what they leave out, ``g1`` = sum |g|) and its phase-1 template
#: energy ``e1``. One record per row, so that the kernel takes one array for all six (a single
#: array is also the cheapest argument for numba to dispatch on).
SCREEN_ROW = np.dtype(
    [
        ("ch", np.int64),
        ("code", np.int64),
        ("g", np.float32, (INTERP_TAPS,)),
        ("h_norm", np.float64),
        ("g1", np.float64),
        ("e1", np.float64),
    ]
)


def screen_rows(ch, code, g, h_norm, g1, e1) -> np.ndarray:
    """The rows' :data:`SCREEN_ROW` records from one array per field."""
    out = np.empty(len(ch), SCREEN_ROW)
    assert SCREEN_ROW.names is not None  # a structured dtype has field names
    for name, v in zip(SCREEN_ROW.names, (ch, code, g, h_norm, g1, e1)):
        out[name] = v
    return out


@jit
def full_rows_kernel(r, hop, screen, energy, noise, power, lim, need):
    """Which codes' state machines must see the block in full, phase-1 correlation included: for
    each row k of ``r`` (rows, N; the phase-0 correlation of code ``screen[k]["code"]`` of channel
    ``screen[k]["ch"]``, lags 0 .. hop - 1, circular over N) sets need[k] (rows already set are left
    alone) when, at some lag, lambda_0 = |r0|^2 / den0 or lambda_1 = |r1|^2 / den1 may reach
    ``lim``. den = E_p sigma^2 (in single precision, as the state machine's) from ``energy``
    (channels, 2 codes: per code and phase) and ``noise`` (channels), ``power`` >= sum |x|^2 of each
    channel's block, ``screen`` (:data:`SCREEN_ROW` records) each row's channel, code,
    interpolator (g, h_norm, g1) and phase-1 energy e1.

    lambda_1 is never computed: |r1[m]| <= |r1e[m]| + B with r1e[m] = sum_t g[t] r0[m + 2 - t] and
    B = (h_norm + FFT_SLACK sqrt(e1) (1 + g1)) sqrt(power), and |r1e[m]| <= g1 max |r0| over those
    six lags; so r1e is evaluated only next to a lag where |r0| > A = (sqrt(lim den1) - B) / g1
    (lambda_0 over ~0.38 T on noise, a few lags per row and block), and the row is flagged if
    |r1e| + B reaches sqrt(lim den1) there. Returns (the number of r1e evaluations, of rows flagged)."""
    n = r.shape[1]
    lo = INTERP_TAPS - 1 - INTERP_LEAD  # r0 lags m - lo .. m + INTERP_LEAD feed r1e[m]
    evals = 0
    for k in range(r.shape[0]):
        if need[k]:
            continue
        rec = screen[k]
        c = rec["ch"]
        ci = rec["code"]
        d0 = np.float64(np.float32(energy[c, 2 * ci] * noise[c]))
        d1 = np.float64(np.float32(energy[c, 2 * ci + 1] * noise[c]))
        b = (rec["h_norm"] + FFT_SLACK * math.sqrt(rec["e1"]) * (1.0 + rec["g1"])) * math.sqrt(power[c])
        r1lim = math.sqrt(lim * d1)
        a = (r1lim - b) / rec["g1"]
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
        gk = rec["g"]
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


@cache
def warm_up() -> bool:
    """Compile (or load from numba's cache) the kernels of the rare paths, a crossing and a tone,
    with the argument types the bank gives them, so that their first use is not inside a block
    (once per process). Returns whether :func:`spectra_product` gives numpy's complex64 product
    to the bit on this machine (then the bank uses it)."""
    blk = np.zeros((4, 2 * NFFT), np.complex64)[:, :NFFT]  # a block as the bank's buffer holds it
    x = np.zeros((1, NFFT), np.complex64)
    x = np.zeros((5, NFFT), np.complex64)[4:]  # a tone row after the correlations, in the bank's buffer
    one = np.zeros(1, np.int64)
    restore_zeros(blk, one, x, np.empty(1))
    noise_kernel(
        x,
        one,
        np.empty(NFFT, np.float32),
        np.empty((2, NFFT), np.float32),
        np.zeros(1),
        np.empty(1, np.int64),
        np.empty(1),
        np.empty(1),
    )
    r = np.zeros((2, 2 * NFFT), np.complex64)
    statistic(r[0, :4], r[1, :4], np.float32(1.0), np.float32(1.0))  # (rows of the correlations)
    t = np.ones(2 * SEG, complex)
    t.setflags(write=False)  # as templates are
    gated_statistic(np.ones(2 * SEG, np.complex64), t, np.ones(3, np.complex64), 1.0, 1.0)
    # numpy's complex64 product is what the correlations were always made of: the kernel stands in
    # for it only where it gives the same bits (numpy's SIMD loops use FMA where the CPU has it)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((4, 256)) + 1j * rng.standard_normal((4, 256))).astype(np.complex64)
    T0 = (rng.standard_normal((3, 4, 256)) + 1j * rng.standard_normal((3, 4, 256))).astype(np.complex64)
    T0.setflags(write=False)  # as the bank's are
    out = np.empty((12, 256), np.complex64)
    spectra_product(X, T0, np.arange(3), out)
    return bool(np.array_equal(out, (X[:3, None, :] * T0).reshape(12, 256)))
