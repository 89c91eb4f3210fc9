"""Phase tracking and the amplitude and noise fits of the despread symbols.

Decision-free (:func:`phase_blind`): the modulation-stripped symbols
(:func:`dsp.rx.demod.carrier.strip_modulation`) summed over a moving window of 2 x 48 + 1,
their angle unwrapped, divided by the power and moved by whole multiples of 2 pi / power to the
preamble's phase. Data-aided, once the symbols are known from a decision (:func:`phase_known`,
:func:`known_rotation`): the moving sum (24 either side) of y conj(known). The symbols are
derotated by exp(-j phi) (:func:`rotation`), and amplitude and noise variance fitted on the
preamble (:func:`fit_preamble`) or on all known symbols (:func:`fit_known`).
"""

from __future__ import annotations

import math

import numpy as np

from dsp.numba_settings import jit
from dsp.rx.demod.carrier import strip_modulation


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
    """Decision-free phase per symbol: the angle of the moving sum (``half`` symbols either side)
    of the modulation-stripped symbols (:func:`~dsp.rx.demod.carrier.strip_modulation`),
    unwrapped, divided by ``power``, and moved by whole multiples of 2 pi / power to the
    preamble's phase."""
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
