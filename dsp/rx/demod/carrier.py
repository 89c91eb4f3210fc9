"""Carrier: the offset from the whole burst's symbols, and derotation of the baseband by it.

The symbols' modulation is removed by a power law (:func:`strip_modulation`: squared for BPSK,
fourth power for QPSK), which leaves a line at p df; :class:`CarrierSearch` finds it in a
16384-point DFT of the burst computed at the bins within the crystals' +-150 ppm only
(:func:`dft_twiddles`, :func:`dft_bins`) and refines it by parabolic interpolation. Carrier and
chips come from the same crystal, so eps = df / fc is the chip clock's offset too; the
matched filter then runs again on the baseband derotated by df (:func:`derotate`).
"""

from __future__ import annotations

import math

import numpy as np

from dsp.air import params as P
from dsp.numba_settings import jit
from dsp.rx.demod.pulse import DEC

#: DFT length of the carrier search (symbols zero-padded).
NFFT = 1 << 14
#: The crystals' tolerance (+-150 ppm): the search covers that of the carrier (p times it after the power law).
MAX_OFFSET = 150e-6


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
        a = (w * (DEC * t)) / fs
        step[t] = complex(math.cos(a), math.sin(a))
    for i0 in range(0, n, 64):
        a = (w * (DEC * (m_first + i0) + c0 - tau0)) / fs
        h = complex(math.cos(a), math.sin(a))
        for i in range(i0, min(n, i0 + 64)):
            out[i] = r[i] * (h * step[i - i0])
    return out


@jit
def strip_modulation(y, pre, power):
    """``y ** power`` (``-y ** 4`` for QPSK), the preamble's known BPSK taken out first: every
    symbol then gives A^p exp(j p phi) (BPSK^2 = 1 and ((+-1 +-j)/sqrt2)^4 = -1, so data symbols
    give +A^p exp(j p phi) like the known preamble symbols, BPSK whatever the mode)."""
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
    return (
        np.exp(-2j * np.pi * (k % nfft) / nfft),
        np.ascontiguousarray(np.exp(-2j * np.pi * ((k * starts) % nfft) / nfft)),
    )


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


class CarrierSearch:
    """The carrier offset of a burst of ``n_sym`` symbols on a carrier at ``fc_hz`` from its
    despread symbols, the modulation removed by the power ``power`` (2: BPSK, 4: QPSK) with the
    preamble ``pre`` known."""

    def __init__(self, fc_hz: float, power: int, n_sym: int, pre: np.ndarray) -> None:
        self.fc_hz, self.power, self.n_sym, self.pre = fc_hz, power, n_sym, pre
        # the search's frequency grid, and the bins beyond the crystals' +-150 ppm
        fr = np.fft.fftfreq(NFFT, d=1.0 / P.SYMBOL_RATE_HZ)
        self._grid = (fr, np.abs(fr) > power * fc_hz * MAX_OFFSET)
        # the bins within: -k_neg .. k_pos (the only ones the search computes)
        inside = np.flatnonzero(~self._grid[1])
        self._k_pos = int(np.sum(inside < fr.size // 2)) - 1
        self._k_neg = inside.size - 1 - self._k_pos
        if inside.size and not np.array_equal(inside, np.r_[0 : self._k_pos + 1, fr.size - self._k_neg : fr.size]):
            raise ValueError("carrier search: the bins within +-150 ppm are not one band around 0")
        self._tw = dft_twiddles(fr.size, -self._k_neg, self._k_neg + self._k_pos + 1, n_sym)

    def __repr__(self) -> str:
        return (
            f"CarrierSearch({self.fc_hz:g} Hz, power {self.power}, {self.n_sym} symbols, "
            f"{NFFT}-point DFT at the {self._k_neg + self._k_pos + 1} bins within +-{MAX_OFFSET * 1e6:g} ppm)"
        )

    def offset_hz(self, Y: np.ndarray) -> float:
        """Carrier offset: the peak of |DFT| (16384 points) of the modulation-stripped symbols
        within the crystals' +-150 ppm, refined by parabolic interpolation."""
        nfft = NFFT
        kn, kp = self._k_neg, self._k_pos
        # |X| of the bins -kn-1 .. kp+1 (the two outside are zero, as beyond the band)
        F = np.zeros(kn + kp + 3)
        F[1:-1] = np.abs(dft_bins(strip_modulation(Y, self.pre, self.power), *self._tw, 32))
        k = int(np.argmax(np.concatenate([F[kn + 1 : -1], F[1 : kn + 1]])))  # in the FFT's order: 0..kp, -kn..-1
        if k > kp:
            k -= kp + 1 + kn
        a, b, c = F[k + kn], F[k + kn + 1], F[k + kn + 2]
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        return (self._grid[0][k % nfft] + delta * P.SYMBOL_RATE_HZ / nfft) / self.power
