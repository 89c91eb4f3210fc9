"""Soft decisions: per-symbol reliability weights and the soft coded bits for the decoder.

Each data symbol, derotated and weighted, gives one soft value (BPSK) or two (QPSK) scaled by
2 A / noise variance; they are deinterleaved and depunctured in the same pass
(:func:`soft_values`: each lands at its place among the rate-1/2 coded bits, punctured places
stay 0) and go to the soft Viterbi decoder (:mod:`dsp.fec.viterbi`). Symbols hit by an impulse
count for less (:func:`symbol_weights`).
"""

from __future__ import annotations

import math

import numpy as np

from dsp.fec.viterbi import MAX_ABS_SOFT
from dsp.numba_settings import jit
from dsp.rx.demod.pulse import DEC

#: Local power above this many times the burst's typical level is an impulse. Only a clear excess
#: is down-weighted: noise alone rarely triples the power of 5 neighbouring samples, and weighting
#: its ordinary fluctuations would cost sensitivity.
IMPULSE_EXCESS = 3.0


@jit
def symbol_weights(r, m_first, c0, tau0, spc, t1_samples, n_sym, sf, excess):
    """Per-symbol reliability: ps = the baseband power |r|^2 averaged over 5 samples
    (``np.convolve(p, ones(5) / 5, "same")``) around the symbol's second chip on both paths
    (the second at ``t1_samples`` after the first); 1 where ps <= excess x the median of ps,
    (excess median / ps)^2 above (an impulse's soft values then count for less instead of
    misleading the decoder)."""
    nr = r.shape[0]
    pw = np.empty(nr)
    for i in range(nr):
        pw[i] = r[i].real * r[i].real + r[i].imag * r[i].imag
    ps = np.empty(n_sym)
    for s in range(n_sym):
        centre = tau0 + (s * sf + 1.5) * spc
        acc = 0.0
        for off in (0.0, t1_samples):
            i = int(np.rint((centre + off - c0) / DEC)) - m_first
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
