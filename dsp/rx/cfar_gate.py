"""Second CFAR stage of the preamble detector: the noise as the template sees it.

The detector's first stage normalises |r|^2 by E_p times the block's noise power per sample
(median |x|^2 / ln 2). That is the right scale only if the noise at baseband is white and
stationary over the block (~1.4 s). It is neither:

* colour: the harmonic comb (two cascaded IIR combs, dsp.rx.comb) and the channelizer's filters
  shape the noise, and the comb makes it correlate at lag T0 as the template does (the
  transmitter's harmonic-null comb gives the preamble its paths 0 and T0, so its spectrum peaks
  midway between harmonics, where the comb passes the noise at full gain, and vanishes on the
  harmonics, where the comb has taken the noise away). On white input noise the first-stage
  statistic has mean 1.26, not 1, so its tail at T = 21 is exp(-21 / 1.26) = 6e-8 per test, 75
  times the design value: the benchmark's 2.3 false detections per input-hour were all on
  windows of plain Gaussian noise (no impulse, no tone, no blanking near 6 of the 7);
* transients shorter than the block: the comb's echo train of a switching impulse (an impulse
  comes back every T0 with 0.4, 0.28, 0.19 ... of its amplitude and stays above the noise for
  up to ~0.5 s; the blanker, dsp.rx.blanker, takes the echoes above 4.5 sigma and leaves those
  under it), a burst of harmonic residue after a grid step. They raise the power under the
  template window, unevenly;
* narrowband interference: a tone in the channel correlates with the template at every lag
  and raises kappa_row below 2.5-4 times, so the detector excises in-band tones from each block
  before any of this (``dsp.rx.detect.kernels.tone_bins``).

The second stage recomputes the peak's statistic over its template window:

1. the window is cut into segments of SEG samples (two grid periods); each gets its level, the
   median power of its live samples / ln 2, never less than the block's noise;
2. samples above EXCISE_K2 times their segment's level are left out (the correlation may not be
   carried by a handful of samples), and so are blanked ones;
3. the correlation is whitened in time: lambda_w = |sum a_i w_i t_i*|^2 / sum a_i |t_i|^2 with
   a_i = 1 / level of sample i's segment (equal to the first stage's lambda when every level is
   the block's noise and nothing is left out);
4. it is divided by the colour factor kappa = max(1, kappa_row / max(1, level_w)), kappa_row =
   the median of this template's own correlator output over the block's lags / (ln 2 E_p noise)
   (an ordered-statistic CFAR: the mean of lambda under whatever noise there is), level_w the
   window's median level over the block's noise (so a burst's own power, which raises both, is
   not counted twice).

The peak is emitted only if lambda_w / kappa > T as well (the first stage still does the peak
search, the sidelobe rivals, and ``lambda_peak`` as reported). On white noise this restores
exp(-T) per test (the levels are clipped at the block's noise and estimated from the same
samples, both conservative).

Why it cannot reject a burst that could be decoded. A burst's samples are homogeneous at the
scale of a segment (random data through the same pulse shape, no handful of samples carries its
energy): for power S per sample under noise N every segment's level is ~S + N, nothing is left
out (a sample 9 x its segment's mean power is as rare in a burst as in noise) and the weights
are equal, so lambda_w = G S / (S + N) with G the template's coherent gain (the first stage's lambda per
unit S / N, ~500 for a full window), and kappa <= kappa_0 ~ 1.26 (the colour of the noise; the
burst's power divides out). So lambda_w / kappa >= (G / kappa_0) S / (S + N): it grows with S and saturates at
G / kappa_0 ~ 400, far above T = 21, so a strong burst always passes; a weak one (S << N) keeps
its first-stage statistic divided by kappa_0: at the sensitivity point (Eb/N0 3.3 dB,
60 bursts) the first stage gave a median of 75 and the second 55 (lowest 31) against T = 21.
A burst overlapping a much stronger one on another code of its channel sees that burst as noise
in its segments' levels, as its demodulator will.
What it does turn down is a burst whose preamble is mostly lost under an impulse's transient
(the window's live part dominated by the echo train): a 50 dB impulse on its channel within
~50 ms before the preamble (the blanker takes half the preamble; measured: 26.8 first stage,
13.2 second). Such overlaps are rare (estimated <= 1e-3 of bursts at 0.05 impulses/s per feeder); 100 ms
after the impulse the burst is found (tests/test_rx.py).

Implementation: steps 1-3 but the complex correlation run in one numba kernel
(:func:`_window_kernel`) that does numpy's operations in numpy's order, its pairwise summation
included (:func:`pairwise_sum`), and the medians are :mod:`dsp.rx.order`'s, so the statistic is the
one the numpy code gave, to the bit (tests/naive.py keeps that code), in ~30 us instead of ~140.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.numba_settings import jit
from dsp.rx.order import median32, median64, select_pair

LN2 = math.log(2.0)


EXCISE_K2 = 9.0  # a sample above 9 x its segment's level: p = 1.2e-4 for Gaussian noise
SEG = 50  # segments of two grid periods at 1.5 kHz (33 ms: an impulse's comb echoes repeat with T0)


def gated_statistic(w: np.ndarray, t: np.ndarray, r_row: np.ndarray, e_p: float, noise: float) -> float:
    """The crossing's statistic recomputed by the second stage.

    ``w``: the baseband under the template window (w[i] meets t[i]; blanked samples are exact
    zeros), ``t`` the template, ``r_row`` its correlator output over the block's lags (the first
    stage's), ``e_p`` its energy, ``noise`` the first stage's noise power per sample."""
    ok, e_w, a, keep, level = _window_kernel(w, t, float(noise), SEG, EXCISE_K2)
    if not ok or e_w <= 0:
        return 0.0
    r = complex(np.sum(a * w[keep] * np.conj(t[keep])))  # (numpy's complex product and sum, as ever)
    lam_w = (r.real * r.real + r.imag * r.imag) / e_w
    # colour: the correlator's own output over the block, less what the window's level explains
    k_row = float(_power_median(r_row)) / (LN2 * e_p * noise)
    return lam_w / max(1.0, k_row / max(1.0, float(level) / LN2 / noise))


@jit
def _pairwise_block(x, lo, hi):
    """numpy's pairwise summation of at most 128 values (eight running sums)."""
    n = hi - lo
    if n < 8:
        s = 0.0
        for i in range(lo, hi):
            s += x[i]
        return s
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = lo + 8
    while i < hi - n % 8:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < hi:
        s += x[i]
        i += 1
    return s


@jit
def pairwise_sum(x, lo, hi):
    """sum(x[lo:hi]) added as ``np.sum`` adds a contiguous float64 array (numpy's pairwise
    summation: blocks of up to 128 values, halves (a multiple of 8 first) above), to the bit.
    (Its recursion, on an explicit stack: numba's cache does not take recursive functions.)"""
    lo_s = np.empty(64, np.int64)
    hi_s = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)  # 0: not begun, 1: left half under way, 2: right half under way
    left = np.empty(64)
    sp = 0
    lo_s[0], hi_s[0], stage[0] = lo, hi, 0
    ret = 0.0
    returning = False
    while True:
        if returning:
            if sp < 0:
                return ret
            if stage[sp] == 1:
                left[sp] = ret
                stage[sp] = 2
                n2 = (hi_s[sp] - lo_s[sp]) // 2
                n2 -= n2 % 8
                lo_s[sp + 1], hi_s[sp + 1], stage[sp + 1] = lo_s[sp] + n2, hi_s[sp], 0
                sp += 1
                returning = False
            else:
                ret = left[sp] + ret
                sp -= 1
        elif hi_s[sp] - lo_s[sp] <= 128:
            ret = _pairwise_block(x, lo_s[sp], hi_s[sp])
            sp -= 1
            returning = True
        else:
            stage[sp] = 1
            n2 = (hi_s[sp] - lo_s[sp]) // 2
            n2 -= n2 % 8
            lo_s[sp + 1], hi_s[sp + 1], stage[sp + 1] = lo_s[sp], lo_s[sp] + n2, 0
            sp += 1


@jit
def _window_kernel(w, t, noise, seg, k2):
    """Steps 1-3 of the second stage but the complex correlation: (whether the window has
    ``seg`` live samples and noise > 0, e_w = sum a_i |t_i|^2 over the kept samples, their weights
    a_i, their indices, the median power of the window's live samples). The same operations in
    the same order as the numpy code they replaced (tests/naive.py: gated_statistic_naive)."""
    n = w.shape[0]
    p = np.empty(n)
    n_live = 0
    for i in range(n):
        v = w[i]
        p[i] = np.float64(v.real * v.real + v.imag * v.imag)
        n_live += p[i] > 0
    if noise <= 0 or n_live < seg:
        return False, 0.0, np.empty(0), np.empty(0, np.int64), 0.0
    buf = np.empty(seg)
    sel = np.empty((2, seg))
    a = np.empty(n)
    keep = np.empty(n, np.int64)
    m = 0
    for s0 in range(0, n, seg):
        s1 = min(s0 + seg, n)
        k = 0
        for i in range(s0, s1):
            if p[i] > 0:
                buf[k] = p[i]
                k += 1
        lev = noise  # never under the block's noise
        if k > 0:  # the median of the segment's live samples (for an even count the mean of the middle two)
            lower, upper = select_pair(buf[:k], k // 2, sel)
            if k % 2:
                lower = upper
            lev = max((0.5 * (lower + upper)) / LN2, noise)
        for i in range(s0, s1):
            if p[i] > 0 and p[i] <= k2 * lev:  # a handful of strong samples carries nothing
                a[m] = 1.0 / lev  # whitening in time: a transient's segments weigh less
                keep[m] = i
                m += 1
    q = np.empty(m)
    for j in range(m):
        u = t[keep[j]]
        q[j] = a[j] * (u.real * u.real + u.imag * u.imag)
    e_w = pairwise_sum(q, 0, m)
    live = np.empty(n_live)
    k = 0
    for i in range(n):
        if p[i] > 0:
            live[k] = p[i]
            k += 1
    return True, e_w, a[:m], keep[:m], median64(live)


@jit
def _power_median(r):
    """np.median of |r|^2 (single precision)."""
    q = np.empty(r.shape[0], np.float32)
    for i in range(r.shape[0]):
        q[i] = r[i].real * r[i].real + r[i].imag * r[i].imag
    return median32(q)
