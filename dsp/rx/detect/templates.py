"""Template design: what the detector correlates against, and what follows from it.

For each code the detector correlates against the noise-free received preamble (64 BPSK symbols
spread by the code, RRC chips, and the transmitter's harmonic-null comb, i.e. the two paths 0
and T0), sampled at two sub-sample phases (0 and half a sample, so the timing mismatch never
exceeds a quarter sample): :func:`template`, :func:`cached_template`. Their conjugated spectra
over a block of NFFT samples (:func:`spectra`, and as a bank reads them, :func:`bank_spectra`)
are what the overlap-save correlation multiplies a block's spectrum by.

The phase-1 (half-sample) correlation is a six-tap interpolation of the phase-0 one plus a
bounded residual (:func:`interpolators`): that is what lets the bank compute phase 1 only where
it may matter (see :mod:`dsp.rx.detect.kernels`, ``full_rows_kernel``). And a strong burst
re-triggers its own and the other codes' correlators at SIDELOBE_DB under its peak:
:func:`sidelobe_bound` is how strong such a sidelobe can be (the state machine's rival check).
Everything here is made once per channel and cached read-only.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from dsp.air import params as P
from dsp.air.codes import chip_code, preamble_bits
from dsp.numba_settings import jit
from dsp.tx.shaping import rrc

NFFT = 2048  # ~1 s hop: a burst is released at most ~1 s after it ends (latency budget 2 s)
SIDELOBE_DB = 10.8  # a burst's largest sidelobe over other lags and codes, noiseless (measured: -10.6 dB)
PRE_CHIPS = 6.5  # template starts this many chips before the centre of chip 0
INTERP_TAPS = 6  # phase-1 correlation estimated from six phase-0 lags (:func:`interpolators`)
INTERP_LEAD = 2  # ... m - 3 .. m + 2


def sidelobe_bound(lam: float) -> float:
    """Largest statistic a burst of peak ``lam`` can put on another lag or code of its channel:
    its noiseless sidelobe (SIDELOBE_DB down) plus what noise can add to it (a 4-sigma
    excursion of |s + n|^2 with |s|^2 = the sidelobe, plus the exponential noise alone)."""
    side = lam * 10 ** (-SIDELOBE_DB / 10)
    return side + 4.0 * math.sqrt(side) + 6.0


def template(channel: P.Channel, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    """Received preamble at baseband rate, sample i at time (i + phase)/fs_bb - PRE_CHIPS*Tc."""
    return cached_template(channel.index, channel.fc_hz, code, grid_hz, fs_bb, phase).copy()


@lru_cache(maxsize=256)
def cached_template(ch_index: int, fc_hz: float, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    """:func:`template` by the channel's index and carrier, shared and read-only."""
    tc = 1.0 / P.CHIP_RATE_HZ
    t0 = 1.0 / grid_hz
    n_chips = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
    chips = (1.0 - 2.0 * preamble_bits().astype(float)).repeat(P.CHIPS_PER_SYMBOL) * np.asarray(
        chip_code(ch_index, code)
    )[np.arange(n_chips) % P.CODE_LENGTH]
    length = int(math.ceil(((n_chips - 1 + 2 * PRE_CHIPS) * tc + t0) * fs_bb)) + 1
    t = (np.arange(length) + phase) / fs_bb - PRE_CHIPS * tc
    w2 = -np.exp(-2j * np.pi * fc_hz * t0)
    out = np.zeros(length, complex)
    _add_chips(out, t, chips, tc, t0, complex(w2), PRE_CHIPS, P.RRC_BETA)
    out.setflags(write=False)
    return out


@jit
def _add_chips(out, t, chips, tc, t0, w2, pre_chips, beta):
    """out[i] += sum over chips n of chips[n] (g(x0) + w2 g(x1)), x0 = t[i] / tc - n and x1 =
    (t[i] - t0) / tc - n, g the RRC pulse (:func:`dsp.tx.shaping.rrc`) taken where |x| <=
    pre_chips: the two paths of every chip, added in the order chip 0 path 0, chip 0 path 1,
    chip 1 path 0, ... (~1 ms where the same sum by numpy arrays and a call of ``rrc`` from
    Python per point took ~40 ms per template; the same values: a real chip weight times a real
    pulse value, added to the real part, and the path weight's parts times it, to each part)."""
    for n in range(chips.shape[0]):
        c = chips[n]
        wr = w2.real * c
        wi = w2.imag * c
        for i in range(t.shape[0]):
            x = (t[i] - 0.0) / tc - n
            if abs(x) <= pre_chips:
                out[i] = complex(out[i].real + c * rrc(x, beta), out[i].imag)
            x = (t[i] - t0) / tc - n
            if abs(x) <= pre_chips:
                g = rrc(x, beta)
                out[i] = complex(out[i].real + wr * g, out[i].imag + wi * g)


@lru_cache(maxsize=64)
def spectra(ch_index: int, fc_hz: float, codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """(template length, energies, conjugated template spectra) of every code and sub-sample phase
    (rows 2 code + phase), shared by every detector of the same channel (read-only)."""
    temps = []
    for code in codes:
        for ph in (0.0, 0.5):
            temps.append(cached_template(ch_index, fc_hz, code, grid_hz, fs_bb, ph))
    L = max(t.size for t in temps)
    if L >= NFFT // 2:
        raise ValueError("template longer than half the FFT block")
    energy = np.array([np.sum(np.abs(t) ** 2) for t in temps])
    T = np.conj(sfft.fft(np.stack([np.pad(t, (0, NFFT - t.size)) for t in temps]), axis=1)).astype(np.complex64)
    energy.setflags(write=False)
    T.setflags(write=False)
    return L, energy, T


@lru_cache(maxsize=16)
def bank_spectra(chans: tuple[tuple[int, float], ...], codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """The conjugated template spectra of :func:`spectra` as a bank reads them: (phase 0, phase 1),
    each (channel, code, N), shared by every bank of the same channels (read-only): the receiver
    runs many banks one block after another, and one copy stays in the cache where one per bank
    (192 kB each) would not."""
    Ts = [spectra(i, f, codes, grid_hz, fs_bb)[2] for i, f in chans]
    # with the inverse FFT's 1/N (a power of two: exact), so that the inverse transform is unnormalised
    T0, T1 = (np.stack([T[k::2] for T in Ts]) * np.float32(1.0 / NFFT) for k in (0, 1))
    T0.setflags(write=False)
    T1.setflags(write=False)
    return T0, T1


@lru_cache(maxsize=64)
def interpolators(ch_index: int, fc_hz: float, codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """Per code: the taps g (INTERP_TAPS, float32) with r1[m] ~ sum_t g[t] r0[m + INTERP_LEAD - t]
    (the phase-1 correlation from the phase-0 one: a half-sample shift, least squares over the
    block's spectrum, r0 and r1 circular over the block as the FFTs give them), the norm of what
    the taps leave out (h_norm: |r1[m] - that sum| <= h_norm ||block|| by Cauchy-Schwarz) and
    sum |g| (float64). Read-only."""
    _, _, T = spectra(ch_index, fc_hz, codes, grid_hz, fs_bb)
    T = T.astype(np.complex128)
    shifts = INTERP_LEAD - np.arange(INTERP_TAPS)  # r0[m + shift] for tap t
    w = 2 * np.pi * np.fft.fftfreq(NFFT)
    g = np.empty((len(codes), INTERP_TAPS))
    h_norm = np.empty(len(codes))
    for ci in range(len(codes)):
        A = T[2 * ci][:, None] * np.exp(1j * np.outer(w, shifts))  # spectrum of r0[m + shift] per unit X
        g[ci] = np.linalg.lstsq(
            np.vstack([A.real, A.imag]), np.concatenate([T[2 * ci + 1].real, T[2 * ci + 1].imag]), rcond=None
        )[0]
        D = T[2 * ci + 1] - A @ g[ci].astype(np.float32).astype(np.float64)
        h_norm[ci] = math.sqrt(float(np.sum(np.abs(D) ** 2)) / NFFT)  # Parseval: the residual filter's norm
    g = g.astype(np.float32)
    g1 = np.abs(g.astype(np.float64)).sum(axis=1)
    for arr in (g, h_norm, g1):
        arr.setflags(write=False)
    return g, h_norm, g1
