"""The data-aided pass: the decided frame re-encoded, and the self-interference of the second
path removed from the symbols.

The decision is re-encoded into the burst's symbols (:func:`reencode`, once per frame), which
gives the chips. Each finger of the RAKE also picks up the other path of the neighbouring chips
(the paths are T0 apart, a non-whole number of chips): finger 0 of chip k sees w2 sum_j a_j
R(k - j - t0c), finger 1 sum_j a_j R(k + t0c - j), R the raised cosine (the RRC's
autocorrelation, :func:`raised_cosine`), t0c = T0 in chips. :func:`isi_taps` gives the weights
for the 17 lags nearest, :func:`isi_kernel` the interference on every chip, and
:func:`cancel_symbols` takes it off the despread symbols.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.air import params as P
from dsp.fec import conv
from dsp.numba_settings import jit


@jit
def reencode(bits, src, qpsk, pre, n_sym):
    """(coded, known): the information bits encoded at rate 1/2 with the zero tail
    (``conv.encode_frame``) and the burst's symbols: the preamble ``pre``, then the coded bits
    in air order (air bit k = coded[src[k]]: punctured, interleaved) mapped as
    ``dsp.tx.burst.map_symbols`` does (QPSK: a 0 appended to an odd count)."""
    padded = np.zeros(bits.shape[0] + P.CONV_TAIL_BITS, dtype=np.uint8)
    padded[: bits.shape[0]] = bits
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


def raised_cosine(x: np.ndarray, beta: float = P.RRC_BETA) -> np.ndarray:
    """Autocorrelation of the RRC pulse (in chips)."""
    x = np.asarray(x, dtype=np.float64)
    den = 1.0 - (2.0 * beta * x) ** 2
    out = np.sinc(x) * np.cos(np.pi * beta * x) / np.where(np.abs(den) < 1e-9, 1.0, den)
    sing = np.abs(den) < 1e-9
    out[sing] = np.pi / 4 * np.sinc(1.0 / (2 * beta))
    return out


@jit
def cancel_symbols(y, known, code, h_amp, rot, sf, taps, w2, w2c):
    """The symbols ``y`` (of both fingers, see :func:`dsp.rx.demod.rake.despread`) without the
    self-interference of the T0 path: chip k is known[k // sf] code[k], its gain h_amp
    conj(rot[k // sf]) (rot = exp(-1j phi)); finger 0 of chip k carries h w2 isi1[k], finger 1
    h isi2[k] (:func:`isi_kernel` with ``taps`` from :func:`isi_taps`), so symbol s loses
    sum_k code[k] (h w2 isi1[k] + w2c h isi2[k])."""
    n = code.shape[0]
    chips = np.empty(n, dtype=np.complex128)
    for k in range(n):
        chips[k] = known[k // sf] * code[k]
    isi1, isi2 = isi_kernel(chips, taps)
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
def isi_kernel(chips, taps):
    """Self-interference of the T0 path on both fingers, ``taps`` = (r1, r2, base, lo_lag) of
    :func:`isi_taps`: isi1[k] = sum_l r1[l] chips[k - sh], isi2[k] = sum_l r2[l] chips[k + sh],
    sh = base + lo_lag + l, for 0 < sh < n and the chip inside the burst (summed in the order of
    l; real and imaginary parts apart, the weights are real). Each lag is added to every chip
    at once (a loop over k that vectorises; the sums per chip are the same, in the same order)."""
    r1, r2, base, lo_lag = taps
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
            _axpy(a[2 * sh :], r1[l], c[: 2 * (n - sh)])  # k >= sh: a[k] += r1[l] chips[k - sh]
    for l in range(r2.shape[0]):
        sh = base + lo_lag + l
        if 0 < sh < n:
            _axpy(b[: 2 * (n - sh)], r2[l], c[2 * sh :])  # k < n - sh: b[k] += r2[l] chips[k + sh]
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
