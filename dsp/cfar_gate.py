"""Second CFAR stage of the preamble detector: the noise as the template sees it.

The detector's first stage normalises |r|^2 by E_p times the block's noise power per sample
(median |x|^2 / ln 2). That is the right scale only if the noise at baseband is white and
stationary over the block (~1.4 s). It is neither:

* colour: the harmonic comb (two cascaded IIR combs, dsp.comb) and the channelizer's filters
  shape the noise, and the comb makes it correlate at lag T0 as the template does (the
  transmitter's harmonic-null comb gives the preamble its paths 0 and T0, so its spectrum peaks
  midway between harmonics, where the comb passes the noise at full gain, and vanishes on the
  harmonics, where the comb has taken the noise away). On white input noise the first-stage
  statistic has mean 1.26, not 1, so its tail at T = 21 is exp(-21 / 1.26) = 6e-8 per test, 75
  times the design value: the benchmark's 2.3 false detections per input-hour were all on
  windows of plain Gaussian noise (no impulse, no tone, no blanking near 6 of the 7);
* transients shorter than the block: the comb's echo train of a switching impulse (an impulse
  comes back every T0 with 0.4, 0.28, 0.19 ... of its amplitude and stays above the noise for
  up to ~0.5 s; the blanker, dsp.blanker, takes the echoes above 4.5 sigma and leaves those
  under it), a burst of harmonic residue after a grid step. They raise the power under the
  template window, unevenly;
* narrowband interference: a tone in the channel correlates with the template at every lag
  and raises kappa_row below 2.5-4 times, so the detector excises in-band tones from each block
  before any of this (``dsp.detector.tone_bins``).

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
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


EXCISE_K2 = 9.0  # a sample above 9 x its segment's level: p = 1.2e-4 for Gaussian noise
SEG = 50  # segments of two grid periods at 1.5 kHz (33 ms: an impulse's comb echoes repeat with T0)


def gated_statistic(w: np.ndarray, t: np.ndarray, r_row: np.ndarray, e_p: float, noise: float) -> float:
    """The crossing's statistic recomputed by the second stage.

    ``w``: the baseband under the template window (w[i] meets t[i]; blanked samples are exact
    zeros), ``t`` the template, ``r_row`` its correlator output over the block's lags (the first
    stage's), ``e_p`` its energy, ``noise`` the first stage's noise power per sample."""
    n = w.size
    p = (w.real * w.real + w.imag * w.imag).astype(np.float64)
    live = p > 0
    if noise <= 0 or np.count_nonzero(live) < SEG:
        return 0.0
    nseg = -(-n // SEG)
    seg = np.full(nseg * SEG, np.inf)
    seg[:n] = np.where(live, p, np.inf)  # blanked samples sort last
    seg = np.sort(seg.reshape(nseg, SEG), axis=1)
    n_live = np.add.reduceat(live.astype(np.int64), np.arange(0, n, SEG))
    rows = np.arange(nseg)
    med = 0.5 * (seg[rows, np.maximum(n_live - 1, 0) // 2] + seg[rows, n_live // 2])  # of the live samples
    lev = np.where(n_live > 0, np.maximum(med / LN2, noise), noise)  # never under the block's noise
    lev_i = np.repeat(lev, SEG)[:n]
    keep = live & (p <= EXCISE_K2 * lev_i)  # a handful of strong samples carries nothing
    a = 1.0 / lev_i[keep]  # whitening in time: a transient's segments weigh less
    tk = t[keep]
    e_w = float(np.sum(a * (tk.real * tk.real + tk.imag * tk.imag)))
    if e_w <= 0:
        return 0.0
    r = complex(np.sum(a * w[keep] * np.conj(tk)))
    lam_w = (r.real * r.real + r.imag * r.imag) / e_w
    # colour: the correlator's own output over the block, less what the window's level explains
    k_row = float(np.median(r_row.real * r_row.real + r_row.imag * r_row.imag)) / (LN2 * e_p * noise)
    level = float(np.median(p[live])) / LN2 / noise
    return lam_w / max(1.0, k_row / max(1.0, level))
